r"""Convergence of the training loss: fitted rates, hitting times, the NTK a-posteriori bound.

Save times after a trajectory stopped (`t_final` < t, e.g. at `stop_loss`) hold the
frozen final state; every function here treats the state saved at such a time as the
state at `t_final`, or excludes it.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ...dynamics import GradientFlow
from ...losses import SquaredLoss
from .._references._kernels import _flat_jacobian


def _effective_times(result) -> np.ndarray:
    """(S, T) min(t_k, t_final,s): when the saved state was actually reached."""
    ts = np.asarray(result.ts, dtype=float)
    return np.minimum(ts[None, :], np.asarray(result.t_final, dtype=float)[:, None])


def fitted_rate(
    result,
    *,
    window: tuple[float, float] = (1e-10, 1e-2),
    relative: bool = True,
    min_points: int = 3,
) -> Float[np.ndarray, " S"]:
    """Exponential rate k_s of L(t) ≈ C e^{−k t}: minus the least-squares slope of log L vs t.

    Per seed, only save times with `window[0]` ≤ L(t) ≤ `window[1]` enter the fit
    (thresholds multiplied by the seed's L(t_0) if `relative`), and only times up to the
    seed's `t_final`. Seeds with fewer than `min_points` such points get NaN.

    For the squared loss L = ½‖r‖² in the kernel regime, k ≈ 2λ_min(K) (K = JJᵀ, the
    NTK); with `reduction="mean"` K is replaced by K/n.

    **Returns:** (S,) numpy array of rates (positive for a decaying loss).
    """
    loss = np.asarray(result.loss, dtype=float)
    ts = np.broadcast_to(np.asarray(result.ts, dtype=float), loss.shape)
    lo, hi = window
    if relative:
        scale = loss[:, :1]
        lo, hi = lo * scale, hi * scale
    with np.errstate(divide="ignore", invalid="ignore"):
        logl = np.log(loss)
        mask = (loss >= lo) & (loss <= hi) & np.isfinite(logl)
        mask &= ts <= np.asarray(result.t_final, dtype=float)[:, None]
        m = mask.astype(float)
        cnt = m.sum(axis=1)
        tbar = (m * ts).sum(axis=1) / cnt
        lbar = (m * np.where(mask, logl, 0.0)).sum(axis=1) / cnt
        dt = ts - tbar[:, None]
        cov = (m * dt * (np.where(mask, logl, 0.0) - lbar[:, None])).sum(axis=1)
        var = (m * dt * dt).sum(axis=1)
        rate = -cov / var
    return np.where((cnt >= min_points) & (var > 0), rate, np.nan)


def time_to(result, eps: float) -> Float[np.ndarray, " S"]:
    """First time each seed's loss reaches `eps`: min{t : L(t) ≤ ε}, per seed.

    Between the last save time above ε and the first at or below, log L is interpolated
    linearly in t. A seed whose first saved loss is already ≤ ε gets `ts[0]`; one that
    never reaches ε gets `inf`. (Resolution: the save grid.)
    """
    loss = np.asarray(result.loss, dtype=float)
    te = _effective_times(result)
    below = loss <= eps
    hit = below.any(axis=1)
    k = np.argmax(below, axis=1)
    rows = np.arange(loss.shape[0])
    km = np.maximum(k - 1, 0)
    t0, t1 = te[rows, km], te[rows, k]
    with np.errstate(divide="ignore", invalid="ignore"):
        l0, l1 = np.log(loss[rows, km]), np.log(loss[rows, k])
        frac = (l0 - np.log(eps)) / (l0 - l1)
    frac = np.where(np.isfinite(frac), np.clip(frac, 0.0, 1.0), 1.0)
    t = np.where(k == 0, te[rows, 0], t0 + frac * (t1 - t0))
    return np.where(hit, t, np.inf)


class NTKRateBound(NamedTuple):
    """Result of [`ntk_rate_bound`][].

    - `measured`: (S, T) ‖r(t)‖² from the saved path.
    - `bound`: (S, T) exp(−2∫_{t_0}^t λ_min(K)) ‖r(t_0)‖² (quadrature as documented).
    - `lambda_min`: (S, T) λ_min(K(t)) at the save times (K includes the 1/n of a
      `reduction="mean"` loss).
    - `checked`: (S, T) which save times were checked (t ≤ t_final).
    - `holds`: (S,) measured ≤ bound·(1 + rtol) + atol·‖r(t_0)‖² at every checked time.
    """

    measured: Float[Array, "S T"]
    bound: Float[Array, "S T"]
    lambda_min: Float[Array, "S T"]
    checked: Bool[Array, "S T"]
    holds: Bool[Array, " S"]


def ntk_rate_bound(
    result,
    *,
    quadrature: str = "min",
    rtol: float = 1e-6,
    atol: float = 1e-12,
) -> NTKRateBound:
    r"""Check the a-posteriori rate ‖r(t)‖² ≤ exp(−2∫₀ᵗ λ_min K(s) ds) ‖r(0)‖² per seed.

    Convention: squared loss, r = f(X) − y (flattened sample-major), J = ∂r/∂θ,
    K = JJᵀ (the empirical NTK), as in the NTK analysis of Du, Zhai, Póczos & Singh
    (2019), whose argument this checks along the saved path. With `reduction="sum"`, L = ½‖r‖² and GF
    θ̇ = −Jᵀr gives ṙ = −Kr, so d‖r‖²/dt = −2rᵀKr ≤ −2λ_min(K)‖r‖² and Grönwall gives the
    bound. With `reduction="mean"`, L = ‖r‖²/(2n), ṙ = −(K/n)r: K is replaced by K/n.

    **Quadrature.** λ_min(K(s)) is only known at the save times t_k. `quadrature="min"`
    (default) integrates, on each [t_k, t_{k+1}], the smaller of the two endpoint
    values; this under-estimates ∫λ_min — so over-estimates the bound, making the
    check conservative — whenever λ_min is monotone on each save interval (and then
    the check is sound). It is *not* a proof between save times: λ_min can dip inside an
    interval (e.g. when a ReLU unit switches); use a fine save grid. `"trapezoid"` is
    second-order accurate but not one-sided. The comparison allows the integration
    error of the solver: measured ≤ bound·(1 + `rtol`) + `atol`·‖r(t_0)‖².

    The bound starts at the first save time t_0 (the default grids start at 0). Only
    save times up to each seed's `t_final` are checked (later ones hold the frozen
    final state).

    **Arguments:**

    - `result`: a `SimulationResult` of gradient flow with a squared loss, run with
      `save_params=True`.
    - `quadrature`: `"min"` or `"trapezoid"`.
    - `rtol`, `atol`: tolerances of the comparison (see above).

    **Returns:** an [`NTKRateBound`][].

    **Raises:** `ValueError` if the path was not saved, the loss is not the squared
    loss, or the dynamics is not gradient flow.
    """

    if result.path is None:
        raise ValueError(
            "result: ntk_rate_bound needs the parameter path; simulate with save_params=True"
        )
    if not isinstance(result.loss_fn, SquaredLoss):
        raise ValueError(
            f"result: ntk_rate_bound needs the squared loss; got {type(result.loss_fn).__name__}"
        )
    if not isinstance(result.dynamics, GradientFlow):
        raise ValueError(
            "result: ntk_rate_bound holds for gradient flow; got "
            f"{type(result.dynamics).__name__}"
        )
    if quadrature not in ("min", "trapezoid"):
        raise ValueError(f'quadrature: expected "min" or "trapezoid"; got {quadrature!r}')
    model = result.model
    X, y = jnp.asarray(result.data.X), jnp.asarray(result.data.y)
    scale = 1.0 / X.shape[0] if result.loss_fn.reduction == "mean" else 1.0

    def point(p):
        r = (model.apply(p, X) - y).reshape(-1)
        J = _flat_jacobian(model.apply, p, X)
        lam = jnp.linalg.eigvalsh(J @ J.T)[0] * scale
        return jnp.sum(r * r), lam

    measured, lam = jax.jit(jax.vmap(jax.vmap(point)))(result.path)
    ts = jnp.asarray(result.ts, measured.dtype)
    dt = jnp.diff(ts)
    if quadrature == "min":
        q = jnp.minimum(lam[:, 1:], lam[:, :-1])
    else:
        q = 0.5 * (lam[:, 1:] + lam[:, :-1])
    integral = jnp.concatenate(
        [jnp.zeros_like(lam[:, :1]), jnp.cumsum(q * dt[None, :], axis=1)], axis=1
    )
    bound = jnp.exp(-2.0 * integral) * measured[:, :1]
    checked = ts[None, :] <= jnp.asarray(result.t_final, measured.dtype)[:, None]
    ok = (measured <= bound * (1 + rtol) + atol * measured[:, :1]) | ~checked
    return NTKRateBound(measured, bound, lam, checked, jnp.all(ok, axis=1))
