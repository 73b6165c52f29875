"""Study config -> dynsim objects (model, data, init, loss, dynamics), by name."""

import dataclasses
import inspect
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._data import Dataset
from ._config import Study, run_options

MODEL_KINDS = ("LinearNet", "DiagonalNet", "TwoLayerNet", "HomogeneousNet")
DATA_GENERATORS = (
    "regression", "sparse_regression", "teacher_student", "separable", "whitened",
    "pairwise_independent",
)
INIT_SCHEMES = ("Gaussian", "Constant", "Balanced", "Spectral", "RowSpace", "Orthogonal")
DYNAMICS_KINDS = ("gradient_flow", "gradient_descent")


@dataclasses.dataclass
class Point:
    """The objects of one sweep point."""

    model: Any
    data: Dataset | None
    init: Any
    loss: Any
    dynamics: Any
    key: Any
    options: dict
    analyses: tuple
    config: dict


def _where(st: Study, field: str) -> str | None:
    if field in st.config.get("sweep", {}):
        return st.where(f"sweep.{field}")
    return st.where(field)


def _err(st: Study, field: str, message: str):
    from ._config import StudyError

    return StudyError(field, message, _where(st, field))


def _call(st: Study, section: str, fn, args: tuple, kwargs: dict, what: str):
    """Call a constructor; map unknown kwargs and its `ValueError`s to study fields."""
    sig = inspect.signature(fn)
    params = sig.parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    allowed = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    allowed = [n for n in allowed if n not in ("key", "self")]
    for k in kwargs:
        if k not in allowed and not var_kw:
            raise _err(st, f"{section}.{k}", f"unknown key for {what}; allowed: {', '.join(allowed)}")
    try:
        return fn(*args, **kwargs)
    except TypeError as e:
        raise _err(st, section, f"{what}: {e}") from None
    except ValueError as e:
        msg = str(e)
        head, _, rest = msg.partition(":")
        head = head.strip()
        if rest and head in kwargs:
            raise _err(st, f"{section}.{head}", rest.strip()) from None
        raise _err(st, section, f"{what}: {msg}") from None


def _pop_name(st: Study, cfg: dict, section: str, key: str, choices) -> tuple[str, dict]:
    sec = dict(cfg.get(section, {}))
    if key not in sec:
        raise _err(st, section, f"missing `{key}` (one of {', '.join(choices)})")
    name = sec.pop(key)
    if name not in choices:
        raise _err(st, f"{section}.{key}", f"unknown {key} {name!r}; choose from {', '.join(choices)}")
    return name, sec


def build_model(st: Study, spec: dict, section: str = "model"):
    from .. import models

    name, kwargs = _pop_name(st, {section: spec}, section, "kind", MODEL_KINDS)
    return _call(st, section, getattr(models, name), (), kwargs, name)


def _floats_to_arrays(kwargs: dict, dtype) -> dict:
    """Float values become JAX arrays: sweep points then share one compilation."""
    return {
        k: jnp.asarray(v, dtype) if isinstance(v, float) else v for k, v in kwargs.items()
    }


def build_point(st: Study, cfg: dict, *, dry_run: bool = False) -> Point:
    """Build (and so validate) every object of one resolved sweep point."""
    from .. import data as data_mod
    from .. import init as init_mod
    from .._losses import _BY_NAME
    from ._analyses import check_analysis

    opts = run_options(cfg)
    dtype = jnp.float32 if opts["precision"] == "float32" else jnp.float64
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise _err(
            st, "run.precision",
            "float64 needs JAX's x64 mode (the CLI enables it; from Python call "
            "jax.config.update('jax_enable_x64', True) first, or use precision = \"float32\")",
        )

    model = build_model(st, cfg["model"])

    # data
    gen, dkw = _pop_name(st, cfg, "data", "generator", DATA_GENERATORS)
    seed = dkw.pop("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _err(st, "data.seed", f"must be a non-negative integer; got {seed!r}")
    if "teacher" in dkw:
        if not isinstance(dkw["teacher"], dict):
            raise _err(st, "data.teacher", "must be a table {kind = ..., ...} describing a model")
        dkw["teacher"] = build_model(st, dkw["teacher"], "data.teacher")
    if "target" in dkw:
        raise _err(st, "data.target", "callable targets cannot be given in a study file")
    dataset = _call(st, "data", getattr(data_mod, gen), (jax.random.key(seed),), dkw, gen)
    dataset = _cast(dataset, dtype)
    try:
        model.check_data(dataset.X, dataset.y)
    except ValueError as e:
        raise _err(st, "data", f"does not fit the model: {e}") from None

    # init
    scheme, ikw = _pop_name(st, cfg, "init", "scheme", INIT_SCHEMES)
    init = _call(st, "init", getattr(init_mod, scheme), (), _floats_to_arrays(ikw, dtype), scheme)

    # loss
    lkw = dict(cfg.get("loss", {}))
    lname = lkw.pop("name", "squared")
    if lname not in _BY_NAME:
        raise _err(st, "loss.name", f"unknown loss {lname!r}; choose from {', '.join(_BY_NAME)}")
    loss = _call(st, "loss", _BY_NAME[lname], (), lkw, lname)
    if loss.classification and not np.all(np.abs(np.asarray(dataset.y)) == 1):
        raise _err(st, "loss.name", f"{lname} needs labels ±1 (e.g. data.generator = \"separable\")")

    dynamics = build_dynamics(st, cfg, dtype)

    analyses = tuple(cfg.get("analyses", ("final_loss", "status")))
    for a in analyses:
        problem = check_analysis(a, model, dataset, loss, init)
        if problem:
            raise _err(st, "analyses", f"{a}: {problem}")
    # check that the initializer runs and fits the model (shapes, dtypes), cheaply
    from .._simulate import _validate

    try:
        _validate(model, dataset, init, dynamics, 1, jax.random.key(0), loss, None, None, 0)
    except ValueError as e:
        head = str(e).partition(":")[0]
        section = head if head in ("init", "data", "loss", "model", "dynamics") else "init"
        raise _err(st, section, str(e).partition(":")[2].strip() or str(e)) from None
    return Point(model, dataset, init, loss, dynamics, jax.random.key(opts["key"]), opts,
                 analyses, cfg)


def build_dynamics(st: Study, cfg: dict, dtype):
    import diffrax
    import optax

    from .._gradient_descent import GradientDescent
    from .._gradient_flow import GradientFlow

    kind, kw = _pop_name(st, cfg, "dynamics", "kind", DYNAMICS_KINDS)
    if kind == "gradient_flow":
        if "solver" in kw:
            name = kw["solver"]
            solver = getattr(diffrax, name, None) if isinstance(name, str) else None
            if not (inspect.isclass(solver) and issubclass(solver, diffrax.AbstractSolver)):
                raise _err(st, "dynamics.solver",
                           f"unknown diffrax solver {name!r} (e.g. Tsit5, Dopri5, Dopri8, Heun, Euler)")
            try:
                kw["solver"] = solver()
            except TypeError as e:
                raise _err(st, "dynamics.solver", f"{name} cannot be built without arguments: {e}") from None
        if isinstance(kw.get("ts"), list):
            kw["ts"] = jnp.asarray(kw["ts"], dtype)
        if "adjoint" in kw:
            raise _err(st, "dynamics.adjoint", "not configurable from a study file")
        return _call(st, "dynamics", GradientFlow, (), kw, "gradient_flow")
    if "optimizer" in kw:
        name = kw["optimizer"]
        opt = getattr(optax, name, None) if isinstance(name, str) else None
        if not callable(opt):
            raise _err(st, "dynamics.optimizer", f"unknown optax optimizer {name!r} (e.g. sgd, adam)")
        kw["optimizer"] = opt
    for k in ("projection",):
        if k in kw:
            raise _err(st, f"dynamics.{k}", "not configurable from a study file")
    if isinstance(kw.get("learning_rate"), float):
        kw["learning_rate"] = jnp.asarray(kw["learning_rate"], dtype)
    if isinstance(kw.get("save_steps"), list):
        kw["save_steps"] = tuple(kw["save_steps"])
    return _call(st, "dynamics", GradientDescent, (), kw, "gradient_descent")


def _cast(ds: Dataset, dtype) -> Dataset:
    cast = lambda a: None if a is None else jnp.asarray(a, dtype)
    return Dataset(cast(ds.X), cast(ds.y), cast(ds.X_test), cast(ds.y_test), ds.info)
