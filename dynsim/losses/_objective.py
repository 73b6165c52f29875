r"""Whole training objectives L(θ) that are not (or not only) a sum of per-sample losses.

An `AbstractLoss` gives L(θ) = Σ_i ℓ(f(θ; x_i), y_i) and its gradient goes through the
model's hand-written pullback. An `AbstractObjective` is any scalar function of the
model, the parameters of one seed and the training data,

    L(θ) = objective(model, θ, data),        data = Dataset(X, y) (the training split),

and its gradient is reverse-mode autodiff of that function (`jax.value_and_grad`).

**Minibatch SGD** needs an unbiased estimate of L from b of the n samples. An objective
declares that it is a sum over samples by its `reduction`:

- `"sum"`: L = Σ_i ℓ_i; the estimate from a batch B is (n/b)·objective(batch);
- `"mean"`: L = (1/n) Σ_i ℓ_i; the estimate is objective(batch);
- `None`: not a sum over samples (a population loss, a penalty of θ alone…):
  `GradientDescent(batch_size=b)` with it is refused before anything compiles.

`evaluate` and `evaluate_and_grad` are the one entry point for both kinds of loss;
`dynsim.Problem` calls them.
"""

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax

from .._custom_types import Array, Params, Scalar
from ..data import Dataset
from ._losses import AbstractLoss

OBJECTIVE_REDUCTIONS = (None, "sum", "mean")


class AbstractObjective(eqx.Module):
    """L(θ) = objective(model, θ, data): a scalar of one seed's parameters and the data.

    Subclasses implement `__call__(model, params, data)` and set `reduction` (`"sum"`,
    `"mean"` or `None`, see the module notes). `estimate` and `value_and_grad` come
    with the base class; `check_model` may reject models the objective cannot handle.
    """

    reduction: eqx.AbstractVar[str | None]
    classification = False

    @abc.abstractmethod
    def __call__(self, model: Any, params: Params, data: Dataset) -> Scalar: ...

    def check_model(self, model: Any) -> None:
        """Raise a `ValueError` naming `loss` if the objective cannot train `model`."""

    @property
    def per_sample_sum(self) -> bool:
        """Whether L is a sum (or mean) over samples, so that SGD may estimate it."""
        return self.reduction is not None

    def estimate(self, model: Any, params: Params, batch: Dataset, n: int) -> Scalar:
        """Unbiased estimate of L on n samples from the b samples of `batch` (drawn
        uniformly without replacement): (n/b)·L(batch) under `"sum"`, L(batch) under
        `"mean"`. With b = n it is L."""
        b = batch.X.shape[0]
        if b == n:
            return self(model, params, batch)
        if self.reduction is None:
            raise ValueError(
                f"loss: {type(self).__name__} is not a sum over samples (reduction=None), "
                "so a minibatch cannot estimate it; use full-batch dynamics"
            )
        value = self(model, params, batch)
        return value * (n / b) if self.reduction == "sum" else value

    def value_and_grad(
        self, model: Any, params: Params, batch: Dataset, n: int
    ) -> tuple[Scalar, Params]:
        """(`estimate`, its gradient in θ) by reverse-mode autodiff."""
        return jax.value_and_grad(lambda p: self.estimate(model, p, batch, n))(params)

    def per_sample(self, pred: Array, target: Array) -> Array:
        """A per-sample loss for held-out data (`dynsim.analysis.test_risk`), if the
        objective has one; the base class has none."""
        raise NotImplementedError(
            f"loss: {type(self).__name__} has no per-sample loss (test risk needs one)"
        )


class Objective(AbstractObjective):
    r"""Any function `fn(model, params, data) -> scalar` as the whole training objective.

    `params` is one seed's parameter PyTree, `data` a `dynsim.data.Dataset` holding the
    training split (X, y) (a minibatch of it under SGD); the gradient is autodiff's.

    **Arguments:**

    - `fn`: the objective, a function of (model, params, data) returning a real scalar.
    - `reduction`: `None` (default): not a sum over samples, full-batch dynamics only;
      `"sum"` if fn(data) = Σ_i ℓ_i or `"mean"` if fn(data) = (1/n) Σ_i ℓ_i, which
      allows minibatch SGD with the estimate (n/b)·fn(batch) or fn(batch).

    Example, the summed squared loss written out:
    `Objective(lambda m, p, d: 0.5 * jnp.sum((m.apply(p, d.X) - d.y) ** 2), reduction="sum")`.
    """

    fn: Callable = eqx.field(static=True)
    reduction: str | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if not callable(self.fn):
            raise ValueError(f"loss: Objective needs a callable fn(model, params, data); got {self.fn!r}")
        if self.reduction not in OBJECTIVE_REDUCTIONS:
            raise ValueError(
                f"reduction: must be one of {OBJECTIVE_REDUCTIONS}; got {self.reduction!r}"
            )

    def __call__(self, model, params, data):
        return self.fn(model, params, data)


def supports_minibatch(loss: Any) -> bool:
    """Whether minibatch SGD can estimate `loss` (every per-sample loss can)."""
    if isinstance(loss, AbstractObjective):
        return loss.per_sample_sum
    return True


def evaluate(loss: Any, model: Any, params: Params, X: Array, y: Array, n: int) -> Scalar:
    """L(θ) from the b samples (X, y) of a data set of n: L itself when b = n, else the
    unbiased minibatch estimate (`AbstractLoss.estimate`, `AbstractObjective.estimate`)."""
    if isinstance(loss, AbstractObjective):
        return loss.estimate(model, params, Dataset(X, y), n)
    return loss.estimate(model.apply(params, X), y, n)


def evaluate_and_grad(
    loss: Any, model: Any, params: Params, X: Array, y: Array, n: int
) -> tuple[Scalar, Params]:
    r"""(`evaluate`, its gradient in θ).

    A per-sample loss goes through the predictions f = f(θ; X):
    ∇L(θ) = (∂f/∂θ)ᵀ ∂ℓ/∂f, with ∂ℓ/∂f (n, *out_shape) reverse mode of the loss alone
    and (∂f/∂θ)ᵀ the model's `apply_and_pullback` (hand-written for the built-in
    families). An objective uses its own `value_and_grad` (autodiff, unless it knows
    better: `Regularized` keeps the pullback for a per-sample base).
    """
    if isinstance(loss, AbstractObjective):
        return loss.value_and_grad(model, params, Dataset(X, y), n)
    if not isinstance(loss, AbstractLoss):
        raise ValueError(f"loss: expected an AbstractLoss or AbstractObjective; got {loss!r}")
    pred, pullback = model.apply_and_pullback(params, X)
    value, dpred = jax.value_and_grad(lambda f: loss.estimate(f, y, n))(pred)
    return value, pullback(dpred)
