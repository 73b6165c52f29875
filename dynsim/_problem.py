"""The training objective of one seed and the summaries saved along its trajectory."""

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._custom_types import Array, Int, Params, Scalar
from .losses import AbstractLoss, AbstractObjective, Regularized
from .losses._objective import evaluate, evaluate_and_grad


def metric_arity(fn: Callable) -> int:
    """How a metric is called: 2 for `fn(params, problem)`, 1 for `fn(params)`.

    The rule reads the signature once: a metric with two required positional
    parameters (no default) is `fn(params, problem)`, one with one is `fn(params)`;
    one whose signature cannot be read, or that takes only `*args` or only optional
    parameters, is `fn(params)` (metrics were one-argument before). More than two
    required positional parameters, or required keyword-only ones, are a `ValueError`
    naming `metrics`.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = sig.parameters.values()
    required = [p for p in params if p.kind in kinds and p.default is p.empty]
    kw_required = [p for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if len(required) > 2 or kw_required:
        raise ValueError(
            f"metrics: a metric is fn(params) or fn(params, problem); {fn!r} has the "
            f"signature {sig}"
        )
    return 2 if len(required) == 2 else 1


@dataclasses.dataclass(frozen=True)
class ParamsOnly:
    """A one-argument metric `fn(params)` as a `(params, problem)` one (equal, and hashed
    alike, for equal `fn`: the compiled program of a configuration is reused)."""

    fn: Callable

    def __call__(self, params, problem):
        return self.fn(params)


def as_problem_metric(fn: Callable) -> Callable:
    """`fn` as a metric called `fn(params, problem)` (`metric_arity` decides)."""
    if isinstance(fn, ParamsOnly) or metric_arity(fn) == 2:
        return fn
    return ParamsOnly(fn)


def _problem_metrics(items) -> tuple:
    return tuple((name, as_problem_metric(fn)) for name, fn in items)


def label_noise_base(loss: Any) -> AbstractLoss | None:
    """The per-sample loss whose targets label noise perturbs: `loss` itself, or the
    base of a `Regularized` one; `None` if there is none (a whole objective) or it is a
    classification loss (labels ±1 are not perturbed)."""
    base = loss.base if isinstance(loss, Regularized) else loss
    if isinstance(base, AbstractLoss) and not base.classification:
        return base
    return None


class Problem(eqx.Module):
    """Model, loss, training data and saved metrics: everything a dynamics needs.

    L(θ) = loss(model.apply(θ, X), y) for a per-sample loss (`AbstractLoss`), or
    L(θ) = loss(model, θ, Dataset(X, y)) for a whole objective (`AbstractObjective`);
    the dynamics integrate θ̇ = −∇L(θ) (or step it).

    `metrics`: `((name, fn), ...)`; each `fn` is `fn(params)` or `fn(params, problem)`
    (`metric_arity`) and is stored as the two-argument form (`as_problem_metric`), so
    `summary` calls `fn(params, self)`: a metric sees the model, the data, the loss,
    `value` and `grad` (the built-in `dynsim.metrics`).
    """

    model: Any
    loss: AbstractLoss | AbstractObjective
    X: Array
    y: Array
    metrics: tuple = eqx.field(static=True, default=(), converter=_problem_metrics)
    save_params: bool = eqx.field(static=True, default=False)
    save_conserved: bool = eqx.field(static=True, default=False)

    def _split(self, batch):
        if batch is None:
            return self.X, self.y
        return self.X[batch], self.y[batch]

    def value(self, params: Params, batch: Int[Array, " b"] | None = None) -> Scalar:
        """L(θ), or with `batch` (sample indices drawn uniformly without replacement)
        its unbiased minibatch estimate (`AbstractLoss.estimate`,
        `AbstractObjective.estimate`: the same convention, sum or mean over the whole
        data set)."""
        X, y = self._split(batch)
        return evaluate(self.loss, self.model, params, X, y, self.X.shape[0])

    def value_and_grad(
        self,
        params: Params,
        batch: Int[Array, " b"] | None = None,
        targets: Array | None = None,
    ) -> tuple[Scalar, Params]:
        """(L(θ), ∇L(θ)), or with `batch` the minibatch estimate and its gradient.

        `targets`: the targets to use in place of y (of the batch, if given: shape
        (b, *out_shape)), e.g. y + δξ for label-noise GD; the loss and its gradient are
        the same functions of them (for `Regularized`, its base's targets).

        For a per-sample loss, by the chain rule through the predictions f = f(θ; X):
        ∇L(θ) = (∂f/∂θ)ᵀ ∂ℓ/∂f, where ∂ℓ/∂f (n, *out_shape) is reverse mode of the loss
        alone (any loss, reduction or minibatch estimate) and (∂f/∂θ)ᵀ is the model's
        `apply_and_pullback`: hand-written for the built-in families, JAX's reverse mode
        for other models (then this is `jax.value_and_grad(value)`). For an objective,
        its own `value_and_grad` (reverse mode of the objective; `Regularized` keeps the
        pullback of a per-sample base).
        """
        X, y = self._split(batch)
        if targets is not None:
            y = targets
        return evaluate_and_grad(self.loss, self.model, params, X, y, self.X.shape[0])

    def grad(self, params: Params) -> Params:
        """∇L(θ), the gradient of `value_and_grad` (the model's pullback for a per-sample
        loss)."""
        return self.value_and_grad(params)[1]

    def summary(self, params: Params) -> dict[str, Any]:
        """What is saved at each save time: loss, ‖∇L‖₂, metrics `fn(params, self)` (and
        params if asked)."""
        value, grads = self.value_and_grad(params)
        out = {"loss": value, "grad_norm": tree_norm(grads)}
        if self.metrics:
            out["metrics"] = {name: fn(params, self) for name, fn in self.metrics}
        if self.save_conserved:
            out["conserved"] = self.model.conserved(params)
        if self.save_params:
            out["params"] = params
        return out


def tree_norm(tree) -> Scalar:
    """Euclidean norm of all leaves of a PyTree together."""
    leaves = jax.tree.leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in leaves))


def tree_max_abs(tree) -> Scalar:
    """max_i |θ_i| over all leaves; NaN if any entry is NaN (XLA's max propagates NaN)."""
    return jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in jax.tree.leaves(tree)]))


def is_diverged(params, bound) -> Array:
    """Non-finite parameters, or max|θ_i| above `bound` (the dynamics' `divergence`).

    One pass over the parameters: m = max|θ_i| is NaN if any θ_i is NaN and +inf if any
    is infinite, so `not (m <= bound) or m == inf` covers all three cases.
    """
    return max_abs_diverged(tree_max_abs(params), bound)


def max_abs_diverged(m, bound) -> Array:
    """`is_diverged` from m = max|θ_i| (`tree_max_abs`, NaN-propagating)."""
    return ~(m <= bound) | jnp.isinf(m)


def is_nonfinite(value, grads=None) -> Array:
    """A non-finite loss (or, if given, gradient): the flow cannot continue from here.

    An adaptive solver would reject every step from such a state (its error estimate is
    NaN) until `max_steps`; dynsim stops the seed at once with status `DIVERGED`.
    """
    bad = ~jnp.isfinite(value)
    if grads is not None:
        bad = bad | ~jnp.isfinite(tree_max_abs(grads))
    return bad


def at_steady_state(value, grad_norm, stop_loss, stop_grad_norm) -> Array:
    """L < `stop_loss` or ‖∇L‖ < `stop_grad_norm` (either threshold may be None).

    `grad_norm` is a zero-argument callable, evaluated only when `stop_grad_norm` is set.
    """
    done = jnp.zeros(jnp.shape(value), bool)
    if stop_loss is not None:
        done = done | (value < stop_loss)
    if stop_grad_norm is not None:
        done = done | (grad_norm() < stop_grad_norm)
    return done
