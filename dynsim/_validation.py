"""`validate_simulation`: every argument of `simulate` checked before anything traces."""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._problem import Problem, as_problem_metric, label_noise_base
from .data import Dataset, as_dataset
from .dynamics import AbstractDynamics, GradientDescent
from .init import get_init
from .losses import AbstractLoss, AbstractObjective, get_loss
from .losses._objective import evaluate, evaluate_and_grad, supports_minibatch
from .metrics import AbstractMetric
from .models._base import AbstractModel


class SimulationInputs(NamedTuple):
    """The checked, normalized arguments of one `simulate` configuration."""

    model: AbstractModel
    dataset: Dataset
    loss: AbstractLoss | AbstractObjective
    init: Callable
    metrics: tuple  # ((name, fn(params, problem)), ...) sorted by name


def validate_simulation(
    model: AbstractModel,
    data: Any,
    *,
    init: Any,
    dynamics: AbstractDynamics,
    loss: Any = "squared",
    seeds: int = 1,
    key: Any = None,
    chunk_size: int | None = None,
    metrics: Mapping[str, Callable] | None = None,
    seed_start: int = 0,
    save_conserved: bool = False,
) -> SimulationInputs:
    """Check the arguments of `simulate` without running anything.

    The checks `simulate` makes first, offered on their own (the study builder uses
    them to reject a study file before any point runs): types and ranges of every
    argument, finite data of shapes the model accepts, labels ±1 for classification
    losses, and an abstract trace (`jax.eval_shape`, nothing compiles) of the init,
    the loss and each metric on one seed's parameters (a metric is `fn(params)` or
    `fn(params, problem)`, `dynsim._problem.metric_arity`; the returned metrics are all
    in the two-argument form). An `AbstractObjective` loss must
    accept the model (`check_model`) and give a real scalar and a gradient of the
    parameters' shapes; minibatch SGD (`GradientDescent(batch_size=b)`, b < n) needs a
    loss that is a sum over samples. With `save_conserved`, the model's `conserved` is
    traced too (a model given no conserved quantities, `models.Custom(...,
    conserved=None)`, is a `ValueError` naming `conserved`). `key=None` checks with
    `jax.random.key(0)`.

    **Returns:** the normalized arguments (`SimulationInputs`).

    **Raises:** `ValueError` whose message starts with the offending argument's name
    (`"init: ..."`, `"data: ..."`).
    """
    if key is None:
        key = jax.random.key(0)
    if not isinstance(model, AbstractModel):
        raise ValueError(f"model: expected a dynsim model; got {type(model).__name__}")
    dataset = as_dataset(data)
    model.check_data(dataset.X, dataset.y)
    for name in ("X", "y", "X_test", "y_test"):
        arr = getattr(dataset, name)
        if arr is None or isinstance(arr, jax.core.Tracer):
            continue
        if not np.all(np.isfinite(np.asarray(arr))):
            raise ValueError(f"data: {name} contains non-finite values")
    loss_fn = get_loss(loss)
    if loss_fn.classification:
        # y's per-sample shape is the model's out_shape (check_data), also for models
        # whose out_shape is only known from the data (models.Custom, models.Equinox)
        out_shape = tuple(jnp.shape(dataset.y)[1:])
        if out_shape != ():
            raise ValueError(
                f"loss: {type(loss_fn).__name__} needs a scalar-output model; "
                f"model has out_shape {out_shape}"
            )
        y = dataset.y
        if not isinstance(y, jax.core.Tracer) and not np.all(np.abs(np.asarray(y)) == 1):
            raise ValueError(f"data: {type(loss_fn).__name__} needs labels y in {{-1, +1}}")
    if not isinstance(dynamics, AbstractDynamics):
        raise ValueError(
            f"dynamics: expected an AbstractDynamics (GradientFlow, StochasticGradientFlow, "
            f"GradientDescent); got {type(dynamics).__name__}"
        )
    _check_minibatch(loss_fn, dynamics, dataset.n)
    dynamics.check_problem(loss_fn, dataset)
    _check_label_noise(loss_fn, dynamics)
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"seeds: must be a positive integer; got {seeds!r}")
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1
    ):
        raise ValueError(f"chunk_size: must be a positive integer or None; got {chunk_size!r}")
    if isinstance(seed_start, (bool, np.bool_)) or not isinstance(seed_start, (int, np.integer)) or seed_start < 0:
        raise ValueError(f"seed_start: must be a non-negative integer; got {seed_start!r}")
    if seed_start + seeds > 2**32:
        # fold_in takes the seed index as uint32: index 2**32 would repeat seed 0's stream
        raise ValueError(
            f"seeds: seed indices must stay below 2**32 (seed_start + seeds = "
            f"{seed_start + seeds})"
        )
    key = _check_key(key)
    metric_items = ()
    if metrics is not None:
        if not isinstance(metrics, Mapping) or not all(callable(f) for f in metrics.values()):
            raise ValueError(
                "metrics: expected a mapping {name: fn(params) or fn(params, problem) -> array}"
            )
        metric_items = tuple(
            (name, as_problem_metric(fn)) for name, fn in sorted(metrics.items(), key=lambda i: i[0])
        )
    init_fn = get_init(init)
    dtype = jnp.result_type(dataset.X)
    expected = model.param_shapes(dtype)
    try:
        got = jax.eval_shape(lambda k: init_fn(model, Dataset(dataset.X, dataset.y), k), key)
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 - report any failure of the user's init
        raise ValueError(f"init: calling the initializer failed: {e}") from e
    exp_shapes = jax.tree.map(lambda s: s.shape, expected)
    got_shapes = jax.tree.map(lambda s: s.shape, got)
    if jax.tree.structure(exp_shapes) != jax.tree.structure(got_shapes) or exp_shapes != got_shapes:
        raise ValueError(
            f"init: produced parameters {got_shapes} but {type(model).__name__} expects "
            f"{exp_shapes}"
        )
    bad_dtype = [s.dtype for s in jax.tree.leaves(got) if s.dtype != dtype]
    if bad_dtype:
        raise ValueError(f"init: parameters must have the data's dtype {dtype}; got {bad_dtype[0]}")
    dynamics.check_params(got)
    if save_conserved:
        _check_conserved(model, got)
    _check_loss(loss_fn, model, dataset, got)
    if metric_items:
        problem = Problem(model, loss_fn, dataset.X, dataset.y)
        for name, fn in metric_items:
            _check_metric(name, fn, got, problem)
    return SimulationInputs(model, dataset, loss_fn, init_fn, metric_items)


def _check_loss(loss_fn, model, dataset, params_like) -> None:
    """The objective on one seed's parameters, traced abstractly: a loss that does not
    give one scalar per sample, or an objective that fails or returns no real scalar,
    raises here naming `loss`, not inside the compiled run."""
    X, y = dataset.X, dataset.y
    if isinstance(loss_fn, AbstractLoss):
        jax.eval_shape(lambda p: loss_fn(model.apply(p, X), y), params_like)
        return
    loss_fn.check_model(model)
    name = type(loss_fn).__name__
    try:
        out = jax.eval_shape(lambda p: evaluate(loss_fn, model, p, X, y, X.shape[0]), params_like)
    except ValueError as e:
        if str(e).startswith("loss:"):
            raise
        raise ValueError(f"loss: calling the objective {name} failed: {e}") from e
    except Exception as e:  # noqa: BLE001 - report any failure of the user's objective
        raise ValueError(
            f"loss: calling the objective {name} failed: {type(e).__name__}: {e}"
        ) from e
    if (
        not isinstance(out, jax.ShapeDtypeStruct)
        or out.shape != ()
        or not jnp.issubdtype(out.dtype, jnp.floating)
    ):
        got = (out.shape, out.dtype) if isinstance(out, jax.ShapeDtypeStruct) else out
        raise ValueError(f"loss: the objective {name} must return a real scalar; got {got}")
    try:
        _, grads = jax.eval_shape(
            lambda p: evaluate_and_grad(loss_fn, model, p, X, y, X.shape[0]), params_like
        )
    except Exception as e:  # noqa: BLE001 - report any failure of the user's objective
        raise ValueError(
            f"loss: differentiating the objective {name} failed: {type(e).__name__}: {e}"
        ) from e
    want = jax.tree.map(lambda s: s.shape, params_like)
    if jax.tree.structure(grads) != jax.tree.structure(params_like) or (
        jax.tree.map(lambda s: s.shape, grads) != want
    ):
        raise ValueError(
            f"loss: the gradient of the objective {name} does not have the parameters' "
            f"shapes {want}"
        )


def _check_minibatch(loss_fn, dynamics, n) -> None:
    """Minibatch SGD needs a loss that is a sum over samples."""
    b = getattr(dynamics, "batch_size", None)
    if isinstance(dynamics, GradientDescent) and b is not None and b < n:
        if not supports_minibatch(loss_fn):
            raise ValueError(
                f"batch_size: minibatch SGD (batch_size={b} < n={n}) needs a loss that is a "
                f"sum over samples; loss {type(loss_fn).__name__} is not (reduction=None). "
                "Use full-batch dynamics, or declare the objective's reduction "
                "(Objective(fn, reduction='sum' or 'mean')) if it is such a sum"
            )


def _check_label_noise(loss_fn, dynamics) -> None:
    """Label noise perturbs the targets of a per-sample regression loss (or of the base
    of a `Regularized` one): an objective has no such targets, labels ±1 are not
    perturbed."""
    delta = getattr(dynamics, "label_noise", None)
    if isinstance(dynamics, GradientDescent) and delta is not None:
        if label_noise_base(loss_fn) is None:
            raise ValueError(
                f"label_noise: label-noise GD (label_noise={delta}) perturbs the targets of "
                "a per-sample regression loss (an AbstractLoss, or Regularized of one); "
                f"loss {type(loss_fn).__name__} is "
                + ("a classification loss" if loss_fn.classification else "a whole objective")
            )


def _check_conserved(model, params_like) -> None:
    """`model.conserved` on one seed's parameters, traced abstractly: a model without
    conserved quantities says so (its own `ValueError`), a failing one names `conserved`."""
    try:
        jax.eval_shape(model.conserved, params_like)
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 - report any failure of the user's function
        raise ValueError(
            f"conserved: {type(model).__name__}.conserved failed on one seed's parameters: "
            f"{type(e).__name__}: {e}"
        ) from e


def _check_metric(name, fn, params_like, problem) -> None:
    """A metric (already in its two-argument form, `as_problem_metric`) must map one
    seed's parameters and the problem to arrays (a PyTree of them). A built-in metric
    first checks its own arguments against the parameters (`AbstractMetric.check_params`,
    a `ValueError` naming its argument, e.g. `reference`)."""
    if isinstance(fn, AbstractMetric):
        fn.check_params(params_like)
    try:
        out = jax.eval_shape(lambda p: fn(p, problem), params_like)
    except Exception as e:  # noqa: BLE001 - report any failure of the user's metric
        raise ValueError(
            f"metrics: metric {name!r} failed on one seed's parameters "
            f"{jax.tree.map(lambda s: s.shape, params_like)}: {type(e).__name__}: {e}"
        ) from e
    leaves = jax.tree.leaves(out)
    if not leaves or not all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves):
        raise ValueError(
            f"metrics: metric {name!r} must return an array or a PyTree of arrays; got {out!r}"
        )




def _check_key(key):
    try:
        if jnp.issubdtype(jnp.result_type(key), jax.dtypes.prng_key):
            if jnp.shape(key) == ():
                return key
        elif jnp.shape(key) == (2,) and jnp.result_type(key) == jnp.uint32:
            return key
    except TypeError:
        pass
    raise ValueError(
        f"key: expected a JAX PRNG key (jax.random.key(0) or jax.random.PRNGKey(0)); got {key!r}"
    )
