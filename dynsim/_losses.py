r"""Losses ℓ(predictions, targets) summed (or averaged) over the data set.

Convention, used everywhere in dynsim: with `reduction="sum"` (the default),

    squared:      L = ½ Σ_i ‖f(x_i) − y_i‖²          (= ½‖r‖², r = f(X) − y)
    logistic:     L = Σ_i log(1 + exp(−y_i f(x_i)))
    exponential:  L = Σ_i exp(−y_i f(x_i))

and `reduction="mean"` divides each by n (so squared becomes 1/(2n)‖r‖²; Gram
matrices and rates then scale by 1/n, i.e. time by n).
"""

import abc
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from ._custom_types import Predictions, Scalar, Targets

REDUCTIONS = ("sum", "mean")


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: must be one of {REDUCTIONS}; got {reduction!r}")


class AbstractLoss(eqx.Module):
    """L(f(X), y): a scalar from predictions (n, *m) and targets (n, *m)."""

    reduction: eqx.AbstractVar[str]
    classification: eqx.AbstractClassVar[bool]

    @abc.abstractmethod
    def per_sample(self, pred: Predictions, target: Targets) -> Predictions: ...

    def __call__(self, pred: Predictions, target: Targets) -> Scalar:
        ls = self.per_sample(pred, target)
        total = jnp.sum(ls)
        return total / pred.shape[0] if self.reduction == "mean" else total


class SquaredLoss(AbstractLoss):
    """½‖f(x) − y‖² per sample (summed, or averaged with `reduction="mean"`)."""

    reduction: str = "sum"
    classification = False

    def __check_init__(self):
        _check_reduction(self.reduction)

    def per_sample(self, pred, target):
        r = (pred - target).reshape(pred.shape[0], -1)
        return 0.5 * jnp.sum(r * r, axis=1)


class LogisticLoss(AbstractLoss):
    """log(1 + exp(−y f(x))) per sample, labels y ∈ {−1, +1}, scalar outputs."""

    reduction: str = "sum"
    classification = True

    def __check_init__(self):
        _check_reduction(self.reduction)

    def per_sample(self, pred, target):
        return jax.nn.softplus(-target * pred)


class ExponentialLoss(AbstractLoss):
    """exp(−y f(x)) per sample, labels y ∈ {−1, +1}, scalar outputs."""

    reduction: str = "sum"
    classification = True

    def __check_init__(self):
        _check_reduction(self.reduction)

    def per_sample(self, pred, target):
        return jnp.exp(-target * pred)


class CustomLoss(AbstractLoss):
    """Any user function `fn(pred_i, target_i) -> scalar` of one sample, summed or averaged.

    `fn` receives one prediction and one target (shapes `out_shape`) and is vmapped over
    samples.
    """

    fn: Callable = eqx.field(static=True)
    reduction: str = "sum"
    classification: bool = eqx.field(default=False, static=True)

    def __check_init__(self):
        _check_reduction(self.reduction)
        if not callable(self.fn):
            raise ValueError(f"loss: CustomLoss needs a callable; got {self.fn!r}")

    def per_sample(self, pred, target):
        return jax.vmap(self.fn)(pred, target)


_BY_NAME = {
    "squared": SquaredLoss,
    "mse": SquaredLoss,
    "logistic": LogisticLoss,
    "exponential": ExponentialLoss,
}


def get_loss(loss) -> AbstractLoss:
    """A loss object from an `AbstractLoss`, a name, or a per-sample callable."""
    if isinstance(loss, AbstractLoss):
        return loss
    if isinstance(loss, str):
        try:
            return _BY_NAME[loss]()
        except KeyError:
            raise ValueError(
                f"loss: unknown loss {loss!r}; choose one of {tuple(_BY_NAME)} or pass "
                "an AbstractLoss / callable"
            ) from None
    if callable(loss):
        return CustomLoss(loss)
    raise ValueError(f"loss: expected an AbstractLoss, a name or a callable; got {loss!r}")
