"""Implicit-bias (mirror-descent) interpolators of diagonal networks by a dual Newton solve."""

from typing import NamedTuple

import numpy as np
import scipy.linalg
from jaxtyping import Array, ArrayLike, Float

from ._links import DiagonalLink, diagonal_link
from ._validation import as_matrix, as_positive_scalar, as_targets, as_vector, to_jax


class ImplicitBiasSolution(NamedTuple):
    """Result of [`implicit_bias_solve`][].

    - `beta`: β∞ = φ(Xᵀν*), shape `(d,)`.
    - `nu`: dual variable ν* (the GF limit of −∫₀^∞ r dt), shape `(n,)`.
    - `z`: Xᵀν* = φ⁻¹(β∞) = ∇Q(β∞), shape `(d,)`.
    - `residual`: ‖Xβ∞ − y‖₂ (scalar).
    - `num_steps`: Newton steps taken (int).
    """

    beta: Array
    nu: Array
    z: Array
    residual: Array
    num_steps: int


def _rounding_floor(X, link, nu, z):
    """Residual attainable in float64 at ν: eps·(|X|·(φ′(z)·|Xᵀ||ν|) + |X|·|φ(z)|)."""
    eps = np.finfo(np.float64).eps
    aX = np.abs(X)
    dz = aX.T @ np.abs(nu) + np.abs(z)
    return eps * np.linalg.norm(aX @ (link.dphi(z) * dz) + aX @ np.abs(link.phi(z)))


def _dual_newton(X, y, link, nu, tol, max_steps):
    """Damped Newton on G(ν) = Σ Φ(Xᵀν) − yᵀν; returns (ν, steps, ‖r‖).

    Every test is homogeneous in the units of the data: `tol` is the caller's
    (relative) target, a decrease of G counts when it exceeds 1e-12 of the size of
    its terms, Σ|Φ(Xᵀν)| + |yᵀν|, and the fallback step is the Cauchy step of the
    quadratic model, so that rescalings that map the problem onto itself (see
    [`implicit_bias_solve`][]) take the same steps.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return _dual_newton_loop(X, y, link, nu, tol, max_steps)


def _dual_newton_loop(X, y, link, nu, tol, max_steps):
    def objective(nu, z):
        Phi, ynu = link.Phi(z), y @ nu
        return np.sum(Phi) - ynu, np.sum(np.abs(Phi)) + abs(ynu)

    z = X.T @ nu
    G, G_size = objective(nu, z)
    if not np.isfinite(G):
        raise ValueError("nu0: the starting point lies outside the domain of the link")
    best, stall, G_prev = np.inf, 0, np.inf
    for step in range(max_steps + 1):
        beta = link.phi(z)
        r = X @ beta - y
        rn = np.linalg.norm(r)
        if rn <= tol:
            return nu, step, rn
        if rn < 0.9 * best or G < G_prev - 1e-12 * G_size:
            best, stall = min(rn, best), 0
        else:
            stall += 1
        G_prev = G
        if step == max_steps or stall > 20:
            break
        H = (X * link.dphi(z)) @ X.T
        try:
            delta = scipy.linalg.cho_solve(scipy.linalg.cho_factor(H), -r)
            if not np.all(np.isfinite(delta)):
                raise np.linalg.LinAlgError
        except (np.linalg.LinAlgError, ValueError):
            delta = np.linalg.lstsq(H, -r, rcond=None)[0]
        slope = r @ delta
        if not (np.isfinite(slope) and slope < 0):
            # Fallback: the Cauchy step −r·‖r‖²/(rᵀHr) (minimiser of the quadratic
            # model along −∇G), in the units of ν whatever the units of X and y.
            curv = r @ (H @ r)
            t0 = rn * rn / curv if np.isfinite(curv) and curv > 0 else 1.0
            delta, slope = -t0 * r, -t0 * rn * rn
        t = 1.0
        for _ in range(100):
            nu_t = nu + t * delta
            z_t = X.T @ nu_t
            G_t, G_t_size = objective(nu_t, z_t)
            if np.isfinite(G_t):
                if G_t <= G + 1e-4 * t * slope:
                    break
                # Near the solution the decrease of G falls below the rounding of G;
                # a step that halves the residual is then accepted as well.
                r_t = np.linalg.norm(X @ link.phi(z_t) - y)
                if r_t <= 0.5 * rn:
                    break
            t *= 0.5
        else:
            break
        nu, z, G, G_size = nu_t, z_t, G_t, G_t_size
    floor = _rounding_floor(X, link, nu, z)
    if rn <= 100 * floor:
        return nu, step, rn
    raise RuntimeError(
        f"implicit_bias_solve: no convergence after {step} Newton steps "
        f"(‖Xβ − y‖ = {rn:.3e}, target {tol:.3e}, rounding floor {floor:.1e}); is y "
        "in the range of the link, i.e. is the interpolation problem feasible?"
    )


def implicit_bias_solve(
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, " n"],
    link: DiagonalLink,
    *,
    nu0: Float[ArrayLike, " n"] | None = None,
    rtol: float = 1e-12,
    max_steps: int = 500,
) -> ImplicitBiasSolution:
    """Gradient-flow limit β∞ = φ(Xᵀν*) of a diagonal network with link φ.

    Solves the strictly convex dual (X of full row rank)
    ν* = argmin_ν G(ν) = Σ_i Φ((Xᵀν)_i) − yᵀν,  ∇G = Xφ(Xᵀν) − y,
    ∇²G = X diag(φ′(Xᵀν)) Xᵀ, by damped Newton in float64 (Cholesky, Armijo
    backtracking on G; Φ = +inf outside the link's domain rejects such steps)
    until ‖Xβ − y‖₂ ≤ `rtol`·‖y‖₂ (`rtol`·‖Xφ(Xᵀν₀)‖₂, the initial residual, if
    y = 0), or, if Newton stalls first, until the residual is
    within 100× the float64 rounding floor of evaluating Xφ(Xᵀν) (this only happens
    for `"depth"` links at extreme init scales, where u^D − v^D cancels; check the
    returned `residual`). Equivalently β∞ = argmin Q(β) s.t. Xβ = y with
    Q = Φ* ([`link_potential`][]). Rank-deficient X is first reduced exactly to
    its row space. Links are evaluated in the log domain, so init scales from
    1e-6 to 1e3 converge from ν = 0 in a few tens of steps.

    All tolerances are relative, so the solution is covariant under the rescalings
    that map the problem onto itself: for c, s, κ > 0 and the link
    φ̃(z) = (s/c)·φ(κz), β(c·X, s·y; φ̃) = (s/c)·β(X, y; φ) up to rounding (the dual
    point is ν̃ = ν/(cκ)). Multiplying the initial parameters (and λ of
    `"uu-vv+w"`) by t^{1/D}, t = s/c, gives exactly such a link, with κ = t^{(D−2)/D},
    where D is the degree of β in them: 2 for `"uu-vv"` (so β(X, s·y; α√s) =
    s·β(X, y; α)), `"uv"` and `"uu-vv+w"`, D for `"depth"`.

    **Arguments:**

    - `X`: design matrix `(n, d)`.
    - `y`: targets `(n,)`.
    - `link`: a [`DiagonalLink`][], e.g. from [`diagonal_link`][].
    - `nu0`: starting dual point (default 0, i.e. β = β₀ = φ(0)).
    - `rtol`: residual tolerance relative to ‖y‖ (to the initial residual if y = 0).
    - `max_steps`: maximum number of Newton steps.

    **Returns:**

    An [`ImplicitBiasSolution`][] `(beta, nu, z, residual, num_steps)`.

    **Raises:**

    `ValueError` naming `X`, `y`, `nu0` or `rtol` on bad input or if y ∉ range(X);
    `RuntimeError` if Newton does not reach the tolerance (e.g. y is outside the
    range of the link, such as negative targets for a sign-constrained init).
    """
    Xn = as_matrix("X", X)
    yn = as_targets("y", y, Xn.shape[0], allow_matrix=False)
    rtol = as_positive_scalar("rtol", rtol)
    n, d = Xn.shape
    nu_start = np.zeros(n) if nu0 is None else as_vector("nu0", nu0, n)
    ynorm = np.linalg.norm(yn)
    if ynorm > 0:
        tol = rtol * ynorm
    else:  # relative to the initial residual: no absolute scale (units of X and β)
        with np.errstate(over="ignore", invalid="ignore"):
            r0 = np.linalg.norm(Xn @ link.phi(Xn.T @ nu_start))
        tol = rtol * r0 if np.isfinite(r0) else rtol
    # Reduce to the row space if X is rank deficient: X = U S Vᵀ, X' = S_r V_rᵀ.
    U, s, Vt = np.linalg.svd(Xn, full_matrices=False)
    rank = int(np.sum(s > max(n, d) * np.finfo(np.float64).eps * s[0])) if s[0] > 0 else 0
    if rank == 0:
        raise ValueError("X: must be nonzero")
    if rank < n:
        Ur = U[:, :rank]
        if np.linalg.norm(yn - Ur @ (Ur.T @ yn)) > 1e-10 * max(ynorm, 1e-300):
            raise ValueError("y: not in the range of X (rank-deficient X); no interpolator")
        Xr, yr = s[:rank, None] * Vt[:rank], Ur.T @ yn
        nu_r, steps, _ = _dual_newton(Xr, yr, link, Ur.T @ nu_start, tol, max_steps)
        nu = Ur @ nu_r
    else:
        nu, steps, _ = _dual_newton(Xn, yn, link, nu_start, tol, max_steps)
    z = Xn.T @ nu
    beta = link.phi(z)
    res = np.linalg.norm(Xn @ beta - yn)
    return ImplicitBiasSolution(to_jax(beta), to_jax(nu), to_jax(z), to_jax(np.asarray(res)), steps)


def implicit_bias_interpolator(
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, " n"],
    *,
    link: DiagonalLink | None = None,
    parametrization: str = "uu-vv",
    params0: dict | None = None,
    alpha: float | None = None,
    depth: int | None = None,
    dense_scale: float = 1.0,
    rtol: float = 1e-12,
    max_steps: int = 500,
) -> Float[Array, " d"]:
    """The interpolator gradient flow of a diagonal network converges to.

    β∞ = argmin Q(β) s.t. Xβ = y, Q the potential of the link (see
    [`diagonal_link`][]); for `"uu-vv"` with u₀ = v₀ = α this is Woodworth et al.'s
    argmin Q_α(β) s.t. Xβ = y, tending to min-ℓ1 as α → 0 and to min-ℓ2 (X⁺y)
    as α → ∞. Solved by [`implicit_bias_solve`][].

    **Arguments:**

    - `X`, `y`: data, `(n, d)` and `(n,)`.
    - `link`: a [`DiagonalLink`][]; if given, the next four arguments are ignored.
    - `parametrization`: `"uu-vv"`, `"uv"`, `"depth"` or `"uu-vv+w"`.
    - `params0`: initial parameters `{"u": (d,), "v": (d,)[, "w": (d,)]}`.
    - `alpha`: shortcut for `params0 = {"u": α·1, "v": α·1[, "w": 0]}` (exactly one of
      `params0`, `alpha`). For `"uv"` this means β₀ = α² and β restricted to β > 0
      (b₀ = u₀ − v₀ = 0); pass `params0` with v₀ = 0 for the symmetric k = 2α² model.
    - `depth`, `dense_scale`: as in [`diagonal_link`][].
    - `rtol`, `max_steps`: as in [`implicit_bias_solve`][].

    **Returns:**

    β∞ of shape `(d,)`.
    """
    if link is None:
        if (params0 is None) == (alpha is None):
            raise ValueError("params0: give exactly one of params0 and alpha")
        if alpha is not None:
            a = as_positive_scalar("alpha", alpha)
            d = as_matrix("X", X).shape[1]
            params0 = {"u": np.full(d, a), "v": np.full(d, a)}
            if parametrization == "uu-vv+w":
                params0["w"] = np.zeros(d)
        link = diagonal_link(parametrization, params0, depth=depth, dense_scale=dense_scale)
    return implicit_bias_solve(X, y, link, rtol=rtol, max_steps=max_steps).beta
