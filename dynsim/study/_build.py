"""Study config -> dynsim objects (model, data, init, loss, dynamics), by name."""

import dataclasses
import functools
import inspect
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import data as data_mod
from .. import init as init_mod
from .. import models
from .._validation import validate_simulation
from ..data import Dataset
from ..dynamics import GradientDescent, GradientFlow, StochasticGradientFlow
from ..dynamics._stochastic_flow import ADDITIVE_SOLVERS
from ..losses import BY_NAME
from ._analyses import DEFAULT_ANALYSES, check_analysis
from ._config import Study, run_options
from ._errors import StudyError
from ._schema import DATA, DYNAMICS, INITS, LOSSES, MODELS, check_fields

MODEL_KINDS = ("LinearNet", "DiagonalNet", "TwoLayerNet", "HomogeneousNet")
DATA_GENERATORS = (
    "regression", "sparse_regression", "teacher_student", "separable", "whitened",
    "pairwise_independent",
)
INIT_SCHEMES = ("Gaussian", "Constant", "Balanced", "Spectral", "RowSpace", "Orthogonal")
DYNAMICS_KINDS = ("gradient_flow", "gradient_descent", "stochastic_flow")


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
    return StudyError(field, message, _where(st, field))


def study_keywords(fn) -> list[str]:
    """The keywords of constructor `fn` that a study file may name (all but `key`)."""
    params = inspect.signature(fn).parameters
    allowed = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return [n for n in allowed if n not in ("key", "self")]


def _checked(st: Study, section: str, fn, kwargs: dict, what: str, schema: dict) -> dict:
    """`kwargs` for constructor `fn`, each key known to it and each value of the type
    and range `schema` gives (normalized: integers become floats where floats belong)."""
    allowed = study_keywords(fn)
    for k in kwargs:
        if k not in allowed:
            raise _err(st, f"{section}.{k}", f"unknown key for {what}; allowed: {', '.join(allowed)}")
    return check_fields(schema, kwargs, lambda k, msg: _err(st, f"{section}.{k}", msg))


def _call(st: Study, section: str, fn, args: tuple, kwargs: dict, what: str):
    """Call a constructor; map its `TypeError`s and `ValueError`s to study fields."""
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
    name, kwargs = _pop_name(st, {section: spec}, section, "kind", MODEL_KINDS)
    fn = getattr(models, name)
    return _call(st, section, fn, (), _checked(st, section, fn, kwargs, name, MODELS[name]), name)


# Continuous fields that reach the compiled chunk program. A Python float there is
# static: compiled in as a constant, so every value of a swept float would compile a
# program of its own. The builder checks each object with the floats of the study file
# (errors then show the values), then hands `simulate` the values the study gives as 0-d
# arrays of its precision, which are arguments of the program: sweep points that differ
# only in them share one compilation, and compute what the same objects built with
# Python floats compute, bitwise (tests/test_compile_cache.py). The init schemes'
# floats are passed so as well (lists of them too). Defaults stay the constructors'
# floats (the same at every point). Integers that set shapes or loop
# bounds (`n_save`, `steps`, `max_steps`, widths) stay static, and so do the models'
# floats (`dense_scale`, `leaky_slope`): as arrays they change XLA's rewrites of the
# model's products, so results would differ from a model of Python floats at rounding
# level (in float32 enough to change step counts); a sweep over them compiles per value.
FLOW_FLOATS = ("t1", "rtol", "atol", "dt0", "stop_loss", "stop_grad_norm", "divergence")
DESCENT_FLOATS = ("learning_rate", "stop_loss", "stop_grad_norm", "divergence")
# t1, dt0 and ts are static for the SDE (they fix its step grid)
SDE_FLOATS = ("temperature", "learning_rate", "label_noise", "stop_loss", "stop_grad_norm",
              "divergence")


def _floats_to_arrays(kwargs: dict, dtype) -> dict:
    """The float values of `kwargs` (and lists of floats, e.g. one std per layer) as
    0-d arrays of `dtype`."""
    def convert(v):
        if isinstance(v, float):
            return jnp.asarray(v, dtype)
        if isinstance(v, list) and v and all(isinstance(x, float) for x in v):
            return [jnp.asarray(x, dtype) for x in v]
        return v

    return {k: convert(v) for k, v in kwargs.items()}


def build_point(st: Study, cfg: dict, *, dry_run: bool = False) -> Point:
    """Build (and so validate) every object of one resolved sweep point."""
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
    gen_fn = getattr(data_mod, gen)
    seed = dkw.pop("seed", 0)
    check_fields(DATA[gen], {"seed": seed}, lambda k, msg: _err(st, f"data.{k}", msg))
    dkw = _checked(st, "data", gen_fn, dkw, gen, DATA[gen])
    if "teacher" in dkw:
        dkw["teacher"] = build_model(st, dkw["teacher"], "data.teacher")
    dataset = _call(st, "data", gen_fn, (jax.random.key(seed),), dkw, gen)
    dataset = _cast(dataset, dtype)
    try:
        model.check_data(dataset.X, dataset.y)
    except ValueError as e:
        raise _err(st, "data", f"does not fit the model: {e}") from None

    # init
    scheme, ikw = _pop_name(st, cfg, "init", "scheme", INIT_SCHEMES)
    init_cls = getattr(init_mod, scheme)
    ikw = _checked(st, "init", init_cls, ikw, scheme, INITS[scheme])
    init = _call(st, "init", init_cls, (), _floats_to_arrays(ikw, dtype), scheme)

    # loss
    lkw = dict(cfg.get("loss", {}))
    lname = lkw.pop("name", "squared")
    if not isinstance(lname, str) or lname not in BY_NAME:
        raise _err(st, "loss.name", f"unknown loss {lname!r}; choose from {', '.join(BY_NAME)}")
    lkw = _checked(st, "loss", BY_NAME[lname], lkw, lname, LOSSES)
    loss = _call(st, "loss", BY_NAME[lname], (), lkw, lname)
    if loss.classification and not np.all(np.abs(np.asarray(dataset.y)) == 1):
        raise _err(st, "loss.name", f"{lname} needs labels ±1 (e.g. data.generator = \"separable\")")

    dynamics = build_dynamics(st, cfg, dtype)

    analyses = tuple(cfg.get("analyses", DEFAULT_ANALYSES))
    for a in analyses:
        problem = check_analysis(a, model, dataset, loss, init)
        if problem:
            raise _err(st, "analyses", f"{a}: {problem}")
    # check that the initializer runs and fits the model (shapes, dtypes), cheaply
    try:
        validate_simulation(model, dataset, init=init, dynamics=dynamics, loss=loss)
    except ValueError as e:
        head = str(e).partition(":")[0]
        if head in ("init", "data", "loss", "model", "dynamics"):
            field = head
        elif head in cfg.get("dynamics", {}):  # a field of the dynamics, e.g. label_noise
            field = f"dynamics.{head}"
        else:
            field = "init"
        raise _err(st, field, str(e).partition(":")[2].strip() or str(e)) from None
    return Point(model, dataset, init, loss, dynamics, jax.random.key(opts["key"]), opts,
                 analyses, cfg)


@functools.cache
def ode_solvers() -> dict:
    """diffrax's ODE solvers that build without arguments, by name: the values of
    `dynamics.solver` (SDE solvers and solvers of several terms are not ODE solvers)."""
    out = {}
    for name in dir(diffrax):
        cls = getattr(diffrax, name)
        if not (inspect.isclass(cls) and issubclass(cls, diffrax.AbstractSolver)):
            continue
        try:
            solver = cls()
        except Exception:  # noqa: BLE001 - abstract, or needs arguments
            continue
        if getattr(solver, "term_structure", None) is diffrax.AbstractTerm:
            out[name] = cls
    return out


def build_dynamics(st: Study, cfg: dict, dtype):
    kind, kw = _pop_name(st, cfg, "dynamics", "kind", DYNAMICS_KINDS)
    if kind == "gradient_flow":
        kw = _checked(st, "dynamics", GradientFlow, kw, kind, DYNAMICS[kind])
        if "solver" in kw:
            name = kw["solver"]
            solvers = ode_solvers()
            if name not in solvers:
                raise _err(st, "dynamics.solver",
                           f"unknown diffrax ODE solver {name!r}; choose from {', '.join(solvers)}")
            kw["solver"] = solvers[name]()
        flow = _call(st, "dynamics", GradientFlow, (), kw, kind)
        return _dynamic_flow(flow, [k for k in FLOW_FLOATS if k in kw], dtype)
    if kind == "stochastic_flow":
        kw = _checked(st, "dynamics", StochasticGradientFlow, kw, kind, DYNAMICS[kind])
        if "solver" in kw:
            allowed = {cls.__name__: cls for cls in ADDITIVE_SOLVERS}
            if kw["solver"] not in allowed:
                raise _err(st, "dynamics.solver",
                           f"unknown SDE solver {kw['solver']!r}; choose from {', '.join(allowed)}")
            kw["solver"] = allowed[kw["solver"]]()
        if "ts" in kw:
            kw["ts"] = tuple(kw["ts"])
        flow = _call(st, "dynamics", StochasticGradientFlow, (), kw, kind)
        return _replace_floats(flow, [k for k in SDE_FLOATS if k in kw], dtype)
    kw = _checked(st, "dynamics", GradientDescent, kw, kind, DYNAMICS[kind])
    if "optimizer" in kw:
        name = kw["optimizer"]
        opt = getattr(optax, name, None)
        try:
            is_optimizer = callable(opt) and isinstance(opt(0.1), optax.GradientTransformation)
        except Exception:  # noqa: BLE001 - optax functions that are not optimizers
            is_optimizer = False
        if not is_optimizer:
            raise _err(st, "dynamics.optimizer",
                       f"unknown optax optimizer {name!r} (e.g. sgd, adam, rmsprop)")
        kw["optimizer"] = opt
    if "save_steps" in kw:
        kw["save_steps"] = tuple(kw["save_steps"])
    descent = _call(st, "dynamics", GradientDescent, (), kw, kind)
    return _replace_floats(descent, [k for k in DESCENT_FLOATS if k in kw], dtype)


def _replace_floats(obj, names: list, dtype, **changes):
    """`obj` (a dynamics, already checked) with its fields `names` as 0-d arrays of
    `dtype`, and `changes`."""
    arrays = {n: jnp.asarray(getattr(obj, n), dtype) for n in names
              if getattr(obj, n) is not None}
    return dataclasses.replace(obj, **arrays, **changes) if arrays or changes else obj


def _dynamic_flow(flow: GradientFlow, names: list, dtype) -> GradientFlow:
    """`flow` with its fields `names` as arrays, and its save times `ts` if given.
    Without `ts`, `GradientFlow` builds its default grid on the host from a float `t1`
    (0, then geometric from min(10⁻², t1/10³) to t1), but for an array `t1` a grid
    relative to t1 (geometric from t1/10³): so for an array `t1` the grid of the float
    `t1` is computed here and passed as `ts`, and the points of a sweep over `t1` keep
    the save times of separate runs (`n_save` of them) and share one compilation."""
    ts = {} if flow.ts is None and "t1" not in names else {
        "ts": jnp.asarray(flow.save_times(), dtype)}  # the checked ts, or t1's grid
    return _replace_floats(flow, names, dtype, **ts)


def _cast(ds: Dataset, dtype) -> Dataset:
    cast = lambda a: None if a is None else jnp.asarray(a, dtype)
    return Dataset(cast(ds.X), cast(ds.y), cast(ds.X_test), cast(ds.y_test), ds.info)
