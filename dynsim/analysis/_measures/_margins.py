"""Margins of homogeneous models trained on classification losses, per seed.

For an L-homogeneous model f(cθ; x) = c^L f(θ; x) (c > 0) the normalized margin
γ(θ) = min_i y_i f(θ; x_i)/‖θ‖^L is scale-invariant; under GF on an exponential-type
loss with separable data it increases towards a KKT point of the max-margin problem
(Lyu & Li 2020), and for a linear model the direction tends to the hard-margin SVM
(Soudry et al. 2018). ‖θ‖ is the Euclidean norm of all parameters together.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ..._problem import tree_norm
from ...models import homogeneity_degree
from ._predictor import _flat, _match_reference, _predictors


def _labels(result) -> Array:
    y = jnp.asarray(result.data.y)
    if y.ndim != 1:
        raise ValueError("result: margins need scalar outputs and labels y in {-1, +1}")
    return y


def normalized_margin(
    result, params=None, *, degree: int | None = None
) -> Float[Array, " S"]:
    """γ_s = min_i y_i f(θ_s; x_i) / ‖θ_s‖^L per seed (training data).

    `params` (leaves (S, ...)) defaults to the final parameters; `degree` L defaults to
    [`homogeneity_degree`][]`(result.model)`.
    """
    L = homogeneity_degree(result.model) if degree is None else int(degree)
    X, y = jnp.asarray(result.data.X), _labels(result)
    params = result.params if params is None else params

    def one(p):
        return jnp.min(y * result.model.apply(p, X)) / tree_norm(p) ** L

    return jax.vmap(one)(params)


class SmoothedMargin(NamedTuple):
    """Result of [`smoothed_margin`][]: `final` (S,) and `path` (S, T) or None."""

    final: Float[Array, " S"]
    path: Float[Array, "S T"] | None


def smoothed_margin(result, *, degree: int | None = None) -> SmoothedMargin:
    """Lyu & Li's smoothed margin γ̃(θ) = log(1/L(θ)) / ‖θ‖^L per seed.

    L(θ) is the *summed* training loss Σ_i ℓ(y_i f(x_i)) (a `reduction="mean"` loss is
    multiplied back by n). γ̃ ≤ γ for the exponential loss, and γ̃ is non-decreasing
    along GF once L < 1 (Lyu & Li 2020). Along the path only if `result.path` was
    saved (`save_params=True`); it uses the saved loss values.
    """
    Ldeg = homogeneity_degree(result.model) if degree is None else int(degree)
    X, y = jnp.asarray(result.data.X), _labels(result)
    factor = X.shape[0] if result.loss_fn.reduction == "mean" else 1.0

    def one(p):
        loss = result.loss_fn(result.model.apply(p, X), y) * factor
        return -jnp.log(loss) / tree_norm(p) ** Ldeg

    final = jax.vmap(one)(result.params)
    path = None
    if result.path is not None:
        norms = jax.vmap(jax.vmap(tree_norm))(result.path)
        path = -jnp.log(jnp.asarray(result.loss) * factor) / norms**Ldeg
    return SmoothedMargin(final, path)


def direction_error(result, reference: ArrayLike) -> Float[Array, " S"]:
    """‖p_s/‖p_s‖ − p*/‖p*‖‖₂ per seed, e.g. against `max_margin(X, y).direction`.

    p_s is the end-to-end predictor (`LinearNet`, `DiagonalNet`); the error is
    2 sin(angle/2), in [0, 2].
    """
    pred = _predictors(result)
    ref = jnp.broadcast_to(_match_reference(pred, reference), pred.shape)
    p, r = _flat(pred), _flat(ref)
    p = p / jnp.linalg.norm(p, axis=1, keepdims=True)
    r = r / jnp.linalg.norm(r, axis=1, keepdims=True)
    return jnp.linalg.norm(p - r, axis=1)
