r"""Weight decay: a loss or objective plus λ‖θ‖²."""

from typing import Any

import jax
import jax.numpy as jnp

from .._checks import check_finite
from .._custom_types import Params, RealScalarLike, Scalar
from ..data import Dataset
from ._losses import AbstractLoss, get_loss
from ._objective import AbstractObjective, evaluate, evaluate_and_grad


class Regularized(AbstractObjective):
    r"""L(θ) = L_base(θ) + λ‖θ‖², with ‖θ‖² = Σ θ_i² over every trained parameter.

    Convention: the penalty is λ times the squared Euclidean norm of all trained
    parameters together (every leaf of the parameter PyTree: weights and biases of all
    layers), without a factor ½, so its gradient is 2λθ. The outer weights of a
    `TwoLayerNet(train_outer=False)` are not trained and are not penalized. The penalty
    does not depend on the data, so under minibatch SGD the estimate is the base's
    minibatch estimate plus λ‖θ‖² (still unbiased), and `reduction` is the base's.

    For a linear model f(x) = βᵀx with the summed squared loss, the minimizer is ridge
    regression β = (XᵀX + 2λI)⁻¹Xᵀy (with `reduction="mean"`: (XᵀX + 2nλI)⁻¹Xᵀy).

    **Arguments:**

    - `base`: an `AbstractLoss` (or a loss name, or a per-sample callable, as `loss=`
      accepts) or an `AbstractObjective`. A per-sample base keeps the model's
      hand-written pullback for its gradient; the penalty adds 2λθ.
    - `l2`: λ ≥ 0 (a float or a 0-d JAX array: results are differentiable in λ).
    """

    base: AbstractLoss | AbstractObjective
    l2: RealScalarLike

    def __init__(self, base: Any, l2: RealScalarLike):
        self.base = base if isinstance(base, AbstractObjective) else get_loss(base)
        self.l2 = l2

    def __check_init__(self):
        if isinstance(self.l2, (bool, str)) or jnp.ndim(self.l2) != 0:
            raise ValueError(f"l2: must be a non-negative number; got {self.l2!r}")
        check_finite("l2", self.l2, nonnegative=True)

    @property
    def reduction(self) -> str | None:
        return self.base.reduction

    @property
    def classification(self) -> bool:
        return self.base.classification

    @property
    def per_sample_sum(self) -> bool:
        if isinstance(self.base, AbstractObjective):
            return self.base.per_sample_sum
        return True

    def check_model(self, model):
        if isinstance(self.base, AbstractObjective):
            self.base.check_model(model)

    def penalty(self, model: Any, params: Params) -> Scalar:
        """λ‖θ‖² over the trained parameters."""
        mask = trained(model, params)
        sq = [jnp.sum(jnp.square(x)) for x, t in zip(jax.tree.leaves(params), mask) if t]
        total = sum(sq) if sq else jnp.zeros((), jnp.result_type(*jax.tree.leaves(params)))
        return self.l2 * total

    def __call__(self, model, params, data):
        return self.estimate(model, params, data, data.X.shape[0])

    def estimate(self, model, params, batch: Dataset, n):
        base = evaluate(self.base, model, params, batch.X, batch.y, n)
        return base + self.penalty(model, params)

    def value_and_grad(self, model, params, batch: Dataset, n):
        value, grads = evaluate_and_grad(self.base, model, params, batch.X, batch.y, n)
        leaves, treedef = jax.tree.flatten(grads)
        lam = self.l2
        out = [
            g + (2 * lam * x).astype(g.dtype) if t else g
            for g, x, t in zip(leaves, jax.tree.leaves(params), trained(model, params))
        ]
        return value + self.penalty(model, params), jax.tree.unflatten(treedef, out)

    def per_sample(self, pred, target):
        """The base's per-sample loss, without the penalty (held-out risk)."""
        return self.base.per_sample(pred, target)


def trained(model: Any, params: Params) -> list[bool]:
    """Per leaf of `params` (in `jax.tree.leaves` order): whether gradient flow trains it.

    Every leaf, except the outer weights a (and c) of a `TwoLayerNet(train_outer=False)`.
    """
    from ..models import TwoLayerNet

    if isinstance(model, TwoLayerNet) and not model.train_outer and isinstance(params, dict):
        frozen = {"a", "c"}
        return [
            k not in frozen
            for k in sorted(params)
            for _ in jax.tree.leaves(params[k])
        ]
    return [True] * len(jax.tree.leaves(params))
