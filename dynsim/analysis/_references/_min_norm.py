"""Minimum-norm interpolators: min-ℓ2 (pseudo-inverse) and min-ℓ1 (basis pursuit).

Reference solutions, computed once per data set with numpy / scipy in float64; not
jit-able. Inputs may be numpy or jax arrays; outputs are jax arrays (float64 when
x64 is enabled).

Both are scale covariant, β(c·X, s·y) = (s/c)·β(X, y) to rounding level for any
c, s > 0: the SVD cutoff is relative, and the LP is solved on data normalised by
powers of two ([`pow2_scale`][]), because HiGHS's feasibility and optimality
tolerances (~1e-7) are absolute.
"""

import numpy as np
import scipy.optimize
from jaxtyping import Array, ArrayLike, Float

from ._validation import as_matrix, as_positive_scalar, as_targets, to_jax


def pow2_scale(a: np.ndarray) -> float:
    """The power of two 2^e with max|a|/2^e ∈ [½, 1) (1.0 if a = 0).

    Dividing by it normalises the data of a solver with absolute tolerances to unit
    size; a power of two makes the division exact in binary floating point, so data
    that differ by a power-of-two factor give bitwise the same normalised problem
    and the answer is scale covariant to rounding level.
    """
    m = float(np.max(np.abs(a))) if np.size(a) else 0.0
    if not (np.isfinite(m) and m > 0):
        return 1.0
    return float(np.ldexp(1.0, int(np.frexp(m)[1])))


def pinv_solve(X: np.ndarray, Y: np.ndarray, rcond: float | None) -> np.ndarray:
    """X⁺Y by SVD with relative cutoff `rcond` (numpy arrays in, numpy out)."""
    n, d = X.shape
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    if rcond is None:
        rcond = max(n, d) * np.finfo(np.float64).eps
    keep = s > rcond * s[0] if s.size and s[0] > 0 else np.zeros_like(s, dtype=bool)
    UtY = U[:, keep].T @ Y
    coef = UtY / (s[keep][:, None] if Y.ndim == 2 else s[keep])
    return Vt[keep].T @ coef


def min_l2_interpolator(
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "n *m"],
    *,
    rcond: float | None = None,
) -> Float[Array, "d *m"]:
    """Minimum-Euclidean-norm least-squares solution β = X⁺y.

    β = argmin { ‖β‖₂ : β minimises ‖Xβ − y‖₂ }, computed by the SVD X = U S Vᵀ as
    β = Σ_{s_k > rcond·s_max} v_k (u_kᵀ y) / s_k. Rank-deficient `X` is handled by
    the cutoff; when y ∈ range(X) (e.g. full row rank) β interpolates, Xβ = y.
    The cutoff is relative, so β is scale covariant: β(c·X, s·y) = (s/c)·β(X, y).
    This is the α → ∞ limit of diagonal networks and the GF limit of linear
    least squares started at 0.

    **Arguments:**

    - `X`: design matrix, shape `(n, d)`.
    - `y`: targets, shape `(n,)` or `(n, m)` (each column solved independently).
    - `rcond`: relative singular-value cutoff; default `max(n, d)·eps` (numpy's).

    **Returns:**

    β of shape `(d,)` or `(d, m)`.

    **Raises:**

    `ValueError` naming `X`, `y` or `rcond` on bad shapes or non-finite values.
    """
    Xn = as_matrix("X", X)
    Yn = as_targets("y", y, Xn.shape[0])
    if rcond is not None:
        rcond = as_positive_scalar("rcond", rcond, allow_zero=True)
    return to_jax(pinv_solve(Xn, Yn, rcond))


def _l1_lp(X: np.ndarray, y: np.ndarray, noise: float | None) -> np.ndarray:
    """Solve the split LP min 1ᵀ(p+q), p, q ≥ 0, X(p−q) = y (or |X(p−q) − y| ≤ ε)."""
    n, d = X.shape
    c = np.ones(2 * d)
    A = np.hstack([X, -X])
    if noise is None:
        res = scipy.optimize.linprog(
            c, A_eq=A, b_eq=y, bounds=(0, None), method="highs"
        )
    else:
        A_ub = np.vstack([A, -A])
        b_ub = np.concatenate([y + noise, noise - y])
        res = scipy.optimize.linprog(
            c, A_ub=A_ub, b_ub=b_ub, bounds=(0, None), method="highs"
        )
    if res.status == 2:
        what = "y is not in the range of X" if noise is None else (
            "no β with ‖Xβ − y‖_∞ ≤ noise"
        )
        raise ValueError(f"y: the interpolation problem is infeasible ({what})")
    if res.status != 0:
        raise RuntimeError(f"min_l1_interpolator: HiGHS failed: {res.message}")
    return res.x[:d] - res.x[d:]


def _polish_l1(
    X: np.ndarray, y: np.ndarray, beta: np.ndarray, noise: float | None
) -> np.ndarray:
    """Re-solve the active equalities on the LP support in float64.

    Support S = {i : |β_i| > 1e-9·max|β|}. Equality case: X_S β_S = y. Noise case:
    on the active rows A (|r_j| = ε up to 1e-9 relative), X_{A,S} β_S = y_A + ε·sign(r_A).
    The polished point is kept only if it keeps the signs on S, is feasible to
    1e-11 (relative) and does not increase ‖β‖₁ by more than 1e-9 relative.
    """
    scale = np.max(np.abs(beta)) if beta.size else 0.0
    if scale == 0.0:
        return beta
    S = np.abs(beta) > 1e-9 * scale
    if noise is None:
        A_rows = np.ones(X.shape[0], dtype=bool)
        rhs = y
    else:
        r = X @ beta - y
        A_rows = np.abs(np.abs(r) - noise) <= 1e-9 * max(noise, np.max(np.abs(y)), 1e-300)
        if not np.any(A_rows):
            return beta
        rhs = y[A_rows] + noise * np.sign(r[A_rows])
    sol, *_ = np.linalg.lstsq(X[np.ix_(A_rows, S)], rhs, rcond=None)
    cand = np.zeros_like(beta)
    cand[S] = sol
    if np.any(np.sign(cand[S]) != np.sign(beta[S])):
        return beta
    r = X @ cand - y
    ynorm = max(np.max(np.abs(y)), 1e-300)
    feasible = (
        np.max(np.abs(r)) <= 1e-11 * ynorm
        if noise is None
        else np.max(np.abs(r)) <= noise + 1e-11 * ynorm
    )
    l1_ok = np.sum(np.abs(cand)) <= np.sum(np.abs(beta)) * (1 + 1e-9)
    return cand if (feasible and l1_ok) else beta


def min_l1_interpolator(
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "n *m"],
    *,
    noise: float | None = None,
) -> Float[Array, "d *m"]:
    """Minimum-ℓ1 interpolator (basis pursuit) or its ℓ∞-constrained denoising variant.

    With `noise=None`: β = argmin ‖β‖₁ s.t. Xβ = y (basis pursuit; the α → 0 limit
    of diagonal networks). With `noise=ε ≥ 0`: β = argmin ‖β‖₁ s.t. ‖Xβ − y‖_∞ ≤ ε.
    The constraint is **ℓ∞** (not ℓ2) so that the problem stays a linear program.

    Solved as the LP min 1ᵀ(p + q), p, q ≥ 0, β = p − q, with scipy's HiGHS, on the
    data normalised by powers of two, X/c, y/s, ε/s (c ≈ max|X|, s ≈ max(‖y‖_∞, ε)),
    and un-scaled, β = (s/c)·β′: HiGHS's tolerances are absolute, so this makes the
    result scale covariant, β(c·X, s·y; s·ε) = (s/c)·β(X, y; ε). The
    vertex returned is then polished: on its support S (and active rows) the
    equality system is re-solved by least squares in float64 so that the
    interpolation residual is at rounding level. When the min-ℓ1
    solution is not unique, one optimal vertex is returned.

    **Arguments:**

    - `X`: design matrix, shape `(n, d)`.
    - `y`: targets, `(n,)` or `(n, m)` (one LP per column).
    - `noise`: ℓ∞ tolerance ε ≥ 0 on the residual, or `None` for exact interpolation.

    **Returns:**

    β of shape `(d,)` or `(d, m)`.

    **Raises:**

    `ValueError` naming `X`, `y` or `noise` on bad input, or naming `y` when the
    problem is infeasible (y ∉ range(X)).
    """
    Xn = as_matrix("X", X)
    Yn = as_targets("y", y, Xn.shape[0])
    if noise is not None:
        noise = as_positive_scalar("noise", noise, allow_zero=True)
    cols = Yn[:, None] if Yn.ndim == 1 else Yn
    cX = pow2_scale(Xn)
    Xs = Xn / cX
    out = np.empty((Xn.shape[1], cols.shape[1]))
    for j in range(cols.shape[1]):
        # One scale per column: each LP is solved on unit-size data (see above).
        sy = pow2_scale(np.append(cols[:, j], 0.0 if noise is None else noise))
        ys = cols[:, j] / sy
        ns = None if noise is None else noise / sy
        beta = _polish_l1(Xs, ys, _l1_lp(Xs, ys, ns), ns)
        out[:, j] = beta * (sy / cX)
    return to_jax(out[:, 0] if Yn.ndim == 1 else out)
