r"""Min, Tarmoun, Vidal & Mallada (ICML 2021): shallow linear networks f(X) = XUVᵀ.

Notation (theirs): X ∈ ℝ^{n×d} of rank r, Y ∈ ℝ^{n×m}, f(U, V) = ½‖XUVᵀ − Y‖_F²,
U ∈ ℝ^{d×h}, V ∈ ℝ^{m×h}. In dynsim this is `LinearNet(d, [h], m)` (no biases) with
W_1 = Uᵀ and W_2 = V (m = 1 for scalar outputs). Φ₁ ∈ ℝ^{d×r} is an orthonormal basis of
row(X), Φ₂ ∈ ℝ^{d×(d−r)} one of ker(X); U₁ = Φ₁ᵀU, U₂ = Φ₂ᵀU; λ_1 ≥ … ≥ λ_r > 0 are the
nonzero eigenvalues of XᵀX. Under GF, U₂(t) ≡ U₂(0) and Λ = U₁ᵀU₁ − VᵀV is constant.

**Rate** (derivation checked here). With X̃ = XΦ₁ (full column rank), E = X̃U₁Vᵀ − Y and
G = X̃ᵀE: ḟ = −tr(G VVᵀ Gᵀ) − tr(Gᵀ U₁U₁ᵀ G) ≤ −(λ_min(U₁U₁ᵀ) + λ_min(VVᵀ))‖G‖_F².
U₁U₁ᵀ (r×r) has the r largest eigenvalues of U₁ᵀU₁ = Λ + VᵀV ⪰ Λ, so
λ_min(U₁U₁ᵀ) = λ_r(U₁ᵀU₁) ≥ [λ_r(Λ)]₊; likewise VᵀV = U₁ᵀU₁ − Λ ⪰ −Λ gives
λ_min(VVᵀ) = λ_m(VᵀV) ≥ [λ_m(−Λ)]₊ (λ_k(·) = k-th *largest* eigenvalue of an h×h
matrix; a term is 0 when h < r, resp. h < m). Finally ‖G‖_F² ≥ 2λ_r(f − f*), so

    f(t) − f* ≤ exp(−2 λ_r c t) (f(0) − f*),   c = [λ_r(Λ)]₊ + [λ_m(−Λ)]₊,

f* = ½‖(I − XX⁺)Y‖_F². With `reduction="mean"` (L = f/n) the rate is 2λ_r c/n.

**Distance** (deterministic). z = (VU₂ᵀ, U₁U₂ᵀ) obeys ‖ż‖_F ≤ ‖XᵀR‖₂‖z‖_F (R = XUVᵀ − Y),
so ‖z(t)‖_F ≤ ‖z(0)‖_F exp(∫₀ᵗ‖XᵀR‖₂ ds), and at convergence
‖U∞V∞ᵀ − X⁺Y‖_F = ‖U₂V∞ᵀ‖_F ≤ ‖z(∞)‖_F. **Invariant set:** z(0) = 0 ⇒ UVᵀ → X⁺Y.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ...models import LinearNet
from .._references._min_norm import pinv_solve


def _setup(result):
    model = result.model
    if not isinstance(model, LinearNet) or model.depth != 2 or model.bias:
        raise ValueError(
            f"result: Min et al.'s bounds need a two-layer LinearNet without biases; got {model!r}"
        )
    if type(result.loss_fn).__name__ != "SquaredLoss":
        raise ValueError("result: Min et al.'s bounds need the squared loss")
    X = np.asarray(result.data.X, dtype=float)
    Y = np.asarray(result.data.y, dtype=float).reshape(X.shape[0], -1)
    _, s, Vt = np.linalg.svd(X, full_matrices=True)
    tol = max(X.shape) * np.finfo(float).eps * (s[0] if s.size else 0.0)
    r = int(np.sum(s > tol))
    scale = 1.0 / X.shape[0] if result.loss_fn.reduction == "mean" else 1.0
    resid = Y - X @ pinv_solve(X, Y, None)
    return dict(
        X=X,
        Y=Y,
        r=r,
        lam_r=float(s[r - 1] ** 2) if r else 0.0,
        Phi1=jnp.asarray(Vt[:r].T),
        Phi2=jnp.asarray(Vt[r:].T),
        scale=scale,
        f_star=0.5 * float(np.sum(resid**2)) * scale,
    )


def _uv(params):
    """U (…, d, h), V (…, m, h) from {"W": (W_1 = Uᵀ, W_2 = V)}."""
    W1, W2 = params["W"]
    return jnp.swapaxes(jnp.asarray(W1), -1, -2), jnp.asarray(W2)


class MinRateBound(NamedTuple):
    """Result of [`min_rate_bound`][].

    - `c`: (S,) [λ_r(Λ)]₊ + [λ_m(−Λ)]₊ from each seed's initialization.
    - `rate`: (S,) 2λ_r(XᵀX)·c (divided by n for `reduction="mean"`).
    - `gap`: (S, T) measured L(t) − L*.  `bound`: (S, T) exp(−rate (t − t_0))(L(t_0) − L*).
    - `holds`: (S,) gap ≤ bound·(1 + rtol) + atol·gap(t_0) at every save time ≤ t_final.
    """

    c: Float[Array, " S"]
    rate: Float[Array, " S"]
    gap: Float[Array, "S T"]
    bound: Float[Array, "S T"]
    holds: Bool[Array, " S"]


def min_rate_constant(result) -> tuple[Float[Array, " S"], Float[Array, " S"]]:
    """(c, rate) per seed from the initialization θ₀; see [`min_rate_bound`][]."""
    st = _setup(result)
    U, V = _uv(result.params0)
    U1 = jnp.einsum("dr,sdh->srh", st["Phi1"], U)
    Lam = jnp.swapaxes(U1, 1, 2) @ U1 - jnp.swapaxes(V, 1, 2) @ V
    eig = jnp.linalg.eigvalsh(Lam)[:, ::-1]  # descending, (S, h)
    h, r, m = Lam.shape[1], st["r"], V.shape[1]
    term_r = jnp.maximum(eig[:, r - 1], 0.0) if 1 <= r <= h else jnp.zeros(eig.shape[0])
    neg = -eig[:, ::-1]  # eigenvalues of −Λ, descending
    term_m = jnp.maximum(neg[:, m - 1], 0.0) if m <= h else jnp.zeros(eig.shape[0])
    c = term_r + term_m
    return c, 2.0 * st["lam_r"] * c * st["scale"]


def min_rate_bound(result, *, rtol: float = 1e-6, atol: float = 1e-12) -> MinRateBound:
    r"""Min et al.'s linear rate f(t) − f* ≤ exp(−2λ_r c t)(f(0) − f*), per seed.

    c = [λ_r(Λ)]₊ + [λ_m(−Λ)]₊, Λ = U₁ᵀU₁ − VᵀV at initialization, λ_r the smallest
    nonzero eigenvalue of XᵀX, λ_k(A) the k-th largest eigenvalue of the h×h matrix A
    (see the module docstring for the derivation and conventions). The measured gap uses
    the saved training loss `result.loss`; the tolerances absorb the solver error:
    gap ≤ bound·(1 + `rtol`) + `atol`·gap(t_0), checked at save times ≤ `t_final`.

    **Returns:** a [`MinRateBound`][].
    """
    st = _setup(result)
    c, rate = min_rate_constant(result)
    loss = jnp.asarray(result.loss)
    ts = jnp.asarray(result.ts, loss.dtype)
    gap = loss - st["f_star"]
    bound = jnp.exp(-rate[:, None] * (ts - ts[0])[None, :]) * gap[:, :1]
    checked = ts[None, :] <= jnp.asarray(result.t_final, loss.dtype)[:, None]
    ok = (gap <= bound * (1 + rtol) + atol * jnp.abs(gap[:, :1])) | ~checked
    return MinRateBound(c, rate, gap, bound, jnp.all(ok, axis=1))


def check_min_rate_bound(result, *, rtol: float = 1e-6, atol: float = 1e-12) -> Bool[Array, " S"]:
    """(S,) whether each seed's loss curve satisfies [`min_rate_bound`][]."""
    return min_rate_bound(result, rtol=rtol, atol=atol).holds


class MinDistanceBound(NamedTuple):
    """Result of [`min_distance_bound`][].

    - `z_norm`: (S, T) ‖z(t)‖_F, z = (VU₂ᵀ, U₁U₂ᵀ), from the path.
    - `null_part`: (S, T) ‖U₂V(t)ᵀ‖_F (= ‖UVᵀ − X⁺Y‖_F once XUVᵀ = XX⁺Y).
    - `bound`: (S, T) ‖z(0)‖_F exp(∫₀ᵗ‖XᵀR‖₂ ds) (quadrature: max of the interval ends).
    - `distance`: (S,) ‖U_T V_Tᵀ − X⁺Y‖_F at the final parameters.
    - `holds`: (S,) z_norm ≤ bound·(1 + rtol) + atol at every save time ≤ t_final.
    """

    z_norm: Float[Array, "S T"]
    null_part: Float[Array, "S T"]
    bound: Float[Array, "S T"]
    distance: Float[Array, " S"]
    holds: Bool[Array, " S"]


def min_distance_bound(result, *, rtol: float = 1e-6, atol: float = 1e-12) -> MinDistanceBound:
    r"""Deterministic distance bound ‖U∞V∞ᵀ − X⁺Y‖_F = ‖U₂V∞ᵀ‖_F ≤ ‖z(0)‖_F exp(∫₀^∞‖XᵀR‖₂dt).

    Evaluated along the saved path (needs `save_params=True`): at each save time,
    ‖z(t)‖_F ≤ ‖z(0)‖_F exp(∫₀ᵗ‖XᵀR‖₂ ds) (‖·‖₂ the spectral norm; the integrand is
    divided by n for `reduction="mean"`). The integral uses, on each save interval, the
    larger endpoint value — an over-estimate (so a conservative check) when ‖XᵀR‖₂ is
    monotone on each interval, which holds once the residual decays; a fine save grid
    is needed early on. The last `bound` value bounds the limit distance only up to the
    tail ∫_{t_T}^∞, which is small once the loss has converged.

    **Returns:** a [`MinDistanceBound`][].
    """
    st = _setup(result)
    if result.path is None:
        raise ValueError(
            "result: min_distance_bound needs the parameter path; simulate with save_params=True"
        )
    X = jnp.asarray(st["X"])
    Y = jnp.asarray(st["Y"])
    Phi1, Phi2 = st["Phi1"], st["Phi2"]

    def point(p):
        U, V = _uv(p)
        U1, U2 = Phi1.T @ U, Phi2.T @ U
        z = jnp.sqrt(jnp.sum((V @ U2.T) ** 2) + jnp.sum((U1 @ U2.T) ** 2))
        R = X @ U @ V.T - Y
        g = jnp.linalg.norm(X.T @ R, ord=2) if R.size else jnp.zeros(())
        return z, jnp.linalg.norm(U2 @ V.T), g

    z, null, g = jax.jit(jax.vmap(jax.vmap(point)))(result.path)
    g = g * st["scale"]
    ts = jnp.asarray(result.ts, z.dtype)
    q = jnp.maximum(g[:, 1:], g[:, :-1]) * jnp.diff(ts)[None, :]
    integral = jnp.concatenate([jnp.zeros_like(g[:, :1]), jnp.cumsum(q, axis=1)], axis=1)
    bound = z[:, :1] * jnp.exp(integral)
    checked = ts[None, :] <= jnp.asarray(result.t_final, z.dtype)[:, None]
    ok = (z <= bound * (1 + rtol) + atol) | ~checked
    pinv = jnp.asarray(pinv_solve(st["X"], st["Y"], None))  # (d, m)
    U, V = _uv(result.params)
    dist = jnp.linalg.norm((U @ jnp.swapaxes(V, 1, 2) - pinv[None]).reshape(U.shape[0], -1), axis=1)
    return MinDistanceBound(z, null, bound, dist, jnp.all(ok, axis=1))


def min_invariant_set(result, *, atol: float = 1e-10) -> Bool[Array, " S"]:
    """(S,) whether each seed starts in Min et al.'s invariant set: V₀U₂,₀ᵀ = 0, U₁,₀U₂,₀ᵀ = 0.

    Checked as ‖z(0)‖_F ≤ `atol`·(‖U₀‖_F² + ‖V₀‖_F²). From such an init GF converges to
    exactly UVᵀ = X⁺Y (e.g. `dynsim.init.RowSpace`, which sets U₂(0) = 0).
    """
    st = _setup(result)
    U, V = _uv(result.params0)
    U1 = jnp.einsum("dr,sdh->srh", st["Phi1"], U)
    U2 = jnp.einsum("dr,sdh->srh", st["Phi2"], U)
    U2t = jnp.swapaxes(U2, 1, 2)
    z = jnp.sqrt(jnp.sum((V @ U2t) ** 2, axis=(1, 2)) + jnp.sum((U1 @ U2t) ** 2, axis=(1, 2)))
    size = jnp.sum(U**2, axis=(1, 2)) + jnp.sum(V**2, axis=(1, 2))
    return z <= atol * size
