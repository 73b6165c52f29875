"""The training objective of one seed and the summaries saved along its trajectory."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._custom_types import Array, Int, Params, Scalar
from .losses import AbstractLoss, AbstractObjective
from .losses._objective import evaluate, evaluate_and_grad


class Problem(eqx.Module):
    """Model, loss, training data and saved metrics: everything a dynamics needs.

    L(θ) = loss(model.apply(θ, X), y) for a per-sample loss (`AbstractLoss`), or
    L(θ) = loss(model, θ, Dataset(X, y)) for a whole objective (`AbstractObjective`);
    the dynamics integrate θ̇ = −∇L(θ) (or step it).
    """

    model: Any
    loss: AbstractLoss | AbstractObjective
    X: Array
    y: Array
    metrics: tuple = eqx.field(static=True, default=())
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
        self, params: Params, batch: Int[Array, " b"] | None = None
    ) -> tuple[Scalar, Params]:
        """(L(θ), ∇L(θ)), or with `batch` the minibatch estimate and its gradient.

        For a per-sample loss, by the chain rule through the predictions f = f(θ; X):
        ∇L(θ) = (∂f/∂θ)ᵀ ∂ℓ/∂f, where ∂ℓ/∂f (n, *out_shape) is reverse mode of the loss
        alone (any loss, reduction or minibatch estimate) and (∂f/∂θ)ᵀ is the model's
        `apply_and_pullback`: hand-written for the built-in families, JAX's reverse mode
        for other models (then this is `jax.value_and_grad(value)`). For an objective,
        its own `value_and_grad` (reverse mode of the objective; `Regularized` keeps the
        pullback of a per-sample base).
        """
        X, y = self._split(batch)
        return evaluate_and_grad(self.loss, self.model, params, X, y, self.X.shape[0])

    def summary(self, params: Params) -> dict[str, Any]:
        """What is saved at each save time: loss, ‖∇L‖₂, metrics (and params if asked)."""
        value, grads = self.value_and_grad(params)
        out = {"loss": value, "grad_norm": tree_norm(grads)}
        if self.metrics:
            out["metrics"] = {name: fn(params) for name, fn in self.metrics}
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
