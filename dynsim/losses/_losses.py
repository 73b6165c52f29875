r"""Losses ℓ(predictions, targets) summed (or averaged) over the data set.

Convention, used everywhere in dynsim: with `reduction="sum"` (the default),

    squared:      L = ½ Σ_i ‖f(x_i) − y_i‖²          (= ½‖r‖², r = f(X) − y)
    logistic:     L = Σ_i log(1 + exp(−y_i f(x_i)))
    exponential:  L = Σ_i exp(−y_i f(x_i))

and `reduction="mean"` divides each by n (so squared becomes 1/(2n)‖r‖²; Gram
matrices and rates then scale by 1/n, i.e. time by n).

A minibatch B of b samples drawn uniformly without replacement estimates L without bias
by `AbstractLoss.estimate`: (n/b) Σ_{i∈B} ℓ_i under `"sum"`, (1/b) Σ_{i∈B} ℓ_i under
`"mean"`, whatever the per-sample loss ℓ.

Loss names accepted wherever a loss is asked for: `"squared"`, `"logistic"`,
`"exponential"` (each with `reduction="sum"`).
"""

import abc
from collections.abc import Callable, Mapping
from types import MappingProxyType

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Predictions, Scalar, Targets

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
        """L over the samples given: Σ_i ℓ_i, or (1/n) Σ_i ℓ_i under `"mean"`."""
        return self.estimate(pred, target, pred.shape[0])

    def estimate(self, pred: Predictions, target: Targets, n: int) -> Scalar:
        r"""Unbiased estimate of L on a data set of `n` samples from b of them.

        The b samples (leading axis of `pred`, `target`) are drawn uniformly without
        replacement; each of the n samples is in the batch with probability b/n, so
        (n/b) Σ_{i∈B} ℓ_i has expectation Σ_i ℓ_i, the `"sum"` loss, and dividing by n
        gives the `"mean"` loss. With b = n it is L exactly.
        """
        ls = self.per_sample(pred, target)
        if ls.shape != pred.shape[:1]:
            raise ValueError(
                f"loss: per_sample must return one scalar per sample, shape {pred.shape[:1]}; "
                f"got shape {ls.shape}"
            )
        total = jnp.sum(ls)
        if self.reduction == "mean":
            return total / ls.shape[0]
        return total * (n / ls.shape[0])


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


BY_NAME: Mapping[str, type[AbstractLoss]] = MappingProxyType({
    "squared": SquaredLoss,
    "logistic": LogisticLoss,
    "exponential": ExponentialLoss,
})
"""The built-in losses by the names `get_loss` and study files accept."""


def get_loss(loss):
    """A loss object from an `AbstractLoss`, an `AbstractObjective` (returned as it is), a
    name, or a per-sample callable."""
    from ._objective import AbstractObjective

    if isinstance(loss, (AbstractLoss, AbstractObjective)):
        return loss
    if isinstance(loss, str):
        if loss == "mse":
            raise ValueError(
                "loss: 'mse' is not a loss name (it was an alias of the summed loss "
                "½‖r‖²); use 'squared' for ½Σ‖f(x_i) − y_i‖² or "
                "SquaredLoss(reduction='mean') for 1/(2n)Σ‖f(x_i) − y_i‖²"
            )
        try:
            return BY_NAME[loss]()
        except KeyError:
            raise ValueError(
                f"loss: unknown loss {loss!r}; choose one of {tuple(BY_NAME)} or pass "
                "an AbstractLoss / callable"
            ) from None
    if callable(loss):
        return CustomLoss(loss)
    raise ValueError(
        "loss: expected an AbstractLoss, an AbstractObjective, a name or a callable; "
        f"got {loss!r}"
    )
