"""Per-seed measures of the end-to-end predictor p_s = `model.predictor(θ_s)` of a result.

Distance and cosine to a reference predictor, support recovery and sparsity. Every
function takes a result with S seeds and returns arrays with a leading seed axis
(S, ...), computed with array operations over the seed axis; nothing loops over seeds
in Python.
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

_TINY = 1e-300


def _predictors(result) -> Array:
    """(S, ...) end-to-end predictors; a clear error for models without one."""
    try:
        return jnp.asarray(result.predictor())
    except NotImplementedError as e:
        raise ValueError(f"result: {e}") from None


def _match_reference(pred: Array, reference: ArrayLike) -> Array:
    """Broadcast `reference` ((...) or (S, ...)) against predictors (S, ...).

    A 2-D reference given as (d, m) (the layout of `min_l2_interpolator`) is transposed
    to the predictor layout (m, d) when the shapes say so unambiguously (d ≠ m).
    """
    ref = jnp.asarray(reference, pred.dtype)
    single = pred.shape[1:]
    if ref.shape in (single, pred.shape):
        return ref
    if len(single) == 2 and single[0] != single[1]:
        if ref.shape == single[::-1]:
            return ref.T
        if ref.shape == (pred.shape[0], *single[::-1]):
            return jnp.swapaxes(ref, 1, 2)
    raise ValueError(
        f"reference: shape {ref.shape} matches neither one predictor {single} nor the "
        f"batch {pred.shape}"
    )


def _flat(x: Array) -> Array:
    return x.reshape(x.shape[0], -1)


def distance(result, reference: ArrayLike, *, relative: bool = True) -> Float[Array, " S"]:
    """‖p_s − p*‖_F per seed (divided by ‖p*‖_F if `relative`), p_s = `model.predictor(θ_s)`.

    **Arguments:**

    - `result`: a `SimulationResult` of a model with a predictor (`LinearNet`,
      `DiagonalNet`).
    - `reference`: p*, with the predictor's shape (β (d,) or W_e (m, d)) or a batch
      (S, ...); a (d, m) reference such as `min_l2_interpolator(X, Y)` is transposed
      automatically when d ≠ m (pass `reference.T` yourself when d = m).
    - `relative`: divide by ‖p*‖_F.

    **Returns:** (S,) distances.
    """
    pred = _predictors(result)
    ref = jnp.broadcast_to(_match_reference(pred, reference), pred.shape)
    num = jnp.linalg.norm(_flat(pred - ref), axis=1)
    if relative:
        num = num / jnp.maximum(jnp.linalg.norm(_flat(ref), axis=1), _TINY)
    return num


def cosine(result, reference: ArrayLike) -> Float[Array, " S"]:
    """⟨p_s, p*⟩_F / (‖p_s‖_F‖p*‖_F) per seed (NaN where p_s = 0); see [`distance`][]."""
    pred = _predictors(result)
    ref = jnp.broadcast_to(_match_reference(pred, reference), pred.shape)
    p, r = _flat(pred), _flat(ref)
    den = jnp.linalg.norm(p, axis=1) * jnp.linalg.norm(r, axis=1)
    return jnp.where(den > 0, jnp.sum(p * r, axis=1) / jnp.where(den > 0, den, 1.0), jnp.nan)


class SupportRecovery(NamedTuple):
    """Result of [`support_recovery`][].

    - `exact`: (S,) whether the estimated support equals the true one.
    - `fraction`: scalar, the fraction of seeds with exact recovery.
    - `precision`, `recall`: (S,) |Ŝ ∩ S*|/|Ŝ| (1 when Ŝ = ∅) and |Ŝ ∩ S*|/|S*|.
    - `estimated`: (S, d) boolean masks Ŝ.
    """

    exact: Bool[Array, " S"]
    fraction: Float[Array, ""]
    precision: Float[Array, " S"]
    recall: Float[Array, " S"]
    estimated: Bool[Array, "S d"]


def support_recovery(
    result,
    support: ArrayLike | Sequence[int] | None = None,
    *,
    beta_true: ArrayLike | None = None,
    threshold: float,
    relative: bool = False,
) -> SupportRecovery:
    """Support recovery of sparse regression: Ŝ_s = {i : |β_s,i| > τ}.

    τ = `threshold`, or `threshold`·max_i|β_s,i| if `relative`. The true support S* is
    `support` (indices or a boolean mask of length d), else {i : β*_i ≠ 0} of
    `beta_true`, else `result.data.info["support"]` (set by `dynsim.data.sparse_regression`).

    **Returns:** a [`SupportRecovery`][].
    """
    beta = _predictors(result)
    if beta.ndim != 2:
        raise ValueError(f"result: support recovery needs vector predictors; got {beta.shape[1:]}")
    d = beta.shape[1]
    if support is None and beta_true is None:
        info = getattr(result.data, "info", None) or {}
        if "support" in info:
            support = info["support"]
        elif "beta" in info:
            beta_true = info["beta"]
        else:
            raise ValueError("support: give `support` or `beta_true` (data.info has neither)")
    if support is not None:
        s = np.asarray(support)
        if s.dtype == bool:
            if s.shape != (d,):
                raise ValueError(f"support: a boolean mask must have shape ({d},); got {s.shape}")
            true = s
        else:
            true = np.zeros(d, bool)
            true[s.astype(int)] = True
    else:
        true = np.asarray(beta_true) != 0
        if true.shape != (d,):
            raise ValueError(f"beta_true: expected shape ({d},); got {true.shape}")
    mag = jnp.abs(beta)
    tau = threshold * jnp.max(mag, axis=1, keepdims=True) if relative else threshold
    est = mag > tau
    true = jnp.asarray(true)[None, :]
    hit = jnp.sum(est & true, axis=1)
    n_est = jnp.sum(est, axis=1)
    precision = jnp.where(n_est > 0, hit / jnp.maximum(n_est, 1), 1.0)
    recall = hit / jnp.maximum(jnp.sum(true), 1)
    exact = jnp.all(est == true, axis=1)  # (S, d) against (1, d)
    return SupportRecovery(exact, jnp.mean(exact), precision, recall, est)


class Sparsity(NamedTuple):
    """Result of [`sparsity`][], all (S,).

    - `l1_l2`: ‖β‖₁/‖β‖₂ ∈ [1, √d].
    - `effective_support`: (‖β‖₁/‖β‖₂)², a smooth count of active coordinates.
    - `support_size`: #{i : |β_i| > `threshold`·max|β|}.
    """

    l1_l2: Float[Array, " S"]
    effective_support: Float[Array, " S"]
    support_size: Int[Array, " S"]


def sparsity(result, *, threshold: float = 1e-3) -> Sparsity:
    """ℓ1/ℓ2 ratio, effective support size and thresholded support size per seed."""
    beta = _flat(_predictors(result))
    mag = jnp.abs(beta)
    l1 = jnp.sum(mag, axis=1)
    l2 = jnp.linalg.norm(beta, axis=1)
    ratio = jnp.where(l2 > 0, l1 / jnp.where(l2 > 0, l2, 1.0), jnp.nan)
    size = jnp.sum(mag > threshold * jnp.max(mag, axis=1, keepdims=True), axis=1)
    return Sparsity(ratio, ratio**2, size)
