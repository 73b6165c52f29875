"""Hard-margin (max-margin) linear separators without bias, ℓ2 and ℓ1."""

from typing import NamedTuple

import numpy as np
import scipy.optimize
from jaxtyping import Array, ArrayLike, Float, Int

from ._min_norm import pow2_scale
from ._validation import as_matrix, as_targets, to_jax


class MaxMarginResult(NamedTuple):
    """Result of [`max_margin`][].

    - `w`: the solution of min ‖w‖ s.t. yᵢxᵢᵀw ≥ 1 (unnormalised), shape `(d,)`.
    - `direction`: w/‖w‖ in the chosen norm, shape `(d,)`.
    - `margin`: min_i yᵢxᵢᵀw/‖w‖ = 1/‖w‖ (chosen norm), scalar.
    - `support`: indices of the support vectors (tight constraints), shape `(s,)`.
    - `dual`: Lagrange multipliers λ ≥ 0, shape `(n,)`; for ℓ2, w = Σᵢ λᵢyᵢxᵢ.
    """

    w: Float[Array, " d"]
    direction: Float[Array, " d"]
    margin: Float[Array, ""]
    support: Int[Array, " s"]
    dual: Float[Array, " n"]


_NOT_SEPARABLE = "y: the data are not linearly separable through the origin"


def _l2_max_margin(Z: np.ndarray):
    """min ½‖w‖² s.t. Zw ≥ 1 by Lawson–Hanson least-distance programming.

    NNLS: u* = argmin_{u ≥ 0} ‖Eu − f‖, E = [Zᵀ; 1ᵀ] ((d+1) × n), f = e_{d+1};
    with ρ = Eu* − f, ρ = 0 ⟺ infeasible, else w = −ρ_{1:d}/ρ_{d+1} and the
    multipliers are λ = u*/(−ρ_{d+1}).
    """
    n, d = Z.shape
    E = np.vstack([Z.T, np.ones((1, n))])
    f = np.zeros(d + 1)
    f[-1] = 1.0
    u, rnorm = scipy.optimize.nnls(E, f, maxiter=50 * n)
    rho = E @ u - f
    if rnorm <= 1e-12 or -rho[-1] <= 1e-14:
        raise ValueError(_NOT_SEPARABLE)
    w = -rho[:d] / rho[-1]
    lam = u / (-rho[-1])
    # Polish on the support S: w = Z_Sᵀλ_S, Z_S w = 1 ⇒ (Z_S Z_Sᵀ) λ_S = 1.
    S = lam > 1e-12 * max(lam.max(), 1e-300)
    lam_S, *_ = np.linalg.lstsq(Z[S] @ Z[S].T, np.ones(int(S.sum())), rcond=None)
    w_p = Z[S].T @ lam_S
    if np.all(lam_S >= 0) and np.min(Z @ w_p) >= 1 - 1e-12:
        w = w_p
        lam = np.zeros(n)
        lam[S] = lam_S
    if np.min(Z @ w) < 1 - 1e-8:
        raise ValueError(_NOT_SEPARABLE)
    return w, lam


def _l1_max_margin(Z: np.ndarray):
    """min ‖w‖₁ s.t. Zw ≥ 1 as the LP min 1ᵀ(p+q), p, q ≥ 0, −Z(p − q) ≤ −1."""
    n, d = Z.shape
    res = scipy.optimize.linprog(
        np.ones(2 * d),
        A_ub=-np.hstack([Z, -Z]),
        b_ub=-np.ones(n),
        bounds=(0, None),
        method="highs",
    )
    if res.status == 2:
        raise ValueError(_NOT_SEPARABLE)
    if res.status != 0:
        raise RuntimeError(f"max_margin: HiGHS failed: {res.message}")
    w = res.x[:d] - res.x[d:]
    lam = np.maximum(-res.ineqlin.marginals, 0.0)
    # Polish: on the support S and tight rows A, solve Z_{A,S} w_S = 1.
    scale = np.max(np.abs(w))
    S = np.abs(w) > 1e-9 * scale
    A = np.abs(Z @ w - 1) <= 1e-9
    if np.any(A):
        sol, *_ = np.linalg.lstsq(Z[np.ix_(A, S)], np.ones(int(A.sum())), rcond=None)
        cand = np.zeros(d)
        cand[S] = sol
        if (
            np.all(np.sign(cand[S]) == np.sign(w[S]))
            and np.min(Z @ cand) >= 1 - 1e-13
            and np.sum(np.abs(cand)) <= np.sum(np.abs(w)) * (1 + 1e-9)
        ):
            w = cand
    return w, lam


def max_margin(
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, " n"],
    *,
    norm: str = "l2",
) -> MaxMarginResult:
    """Hard-margin separator through the origin (no bias), in the ℓ2 or ℓ1 geometry.

    w = argmin ‖w‖_p s.t. yᵢxᵢᵀw ≥ 1 for all i, p ∈ {2, 1}. The ℓ2 solution is the
    hard-margin SVM, the limit direction of GD/GF on separable data with exponential
    or logistic loss (Soudry et al. 2018); it is solved exactly by Lawson–Hanson
    least-distance programming (scipy NNLS, active set) and polished by solving the
    KKT system (Z_S Z_Sᵀ)λ_S = 1, w = Z_Sᵀλ_S on the support S (Z = diag(y)X). The ℓ1
    problem is an LP (HiGHS), polished on its support and tight rows.

    Both are solved for Z/c, c the power of two with max|Z|/c ∈ [½, 1), and un-scaled
    (w = w′/c; λ = λ′/c² for ℓ2, λ′/c for ℓ1), since NNLS and HiGHS use absolute
    tolerances. The result is therefore scale covariant: for X → c·X the margin is
    multiplied by c, w and λ scale as above and the direction is unchanged.

    **Arguments:**

    - `X`: inputs `(n, d)`.
    - `y`: labels in {−1, +1}, shape `(n,)`.
    - `norm`: `"l2"` or `"l1"`.

    **Returns:**

    A [`MaxMarginResult`][] `(w, direction, margin, support, dual)`; `margin` =
    min_i yᵢxᵢᵀw/‖w‖_p = 1/‖w‖_p, `direction` = w/‖w‖_p.

    **Raises:**

    `ValueError` naming `X`, `y` or `norm` on bad input, and naming `y` if the
    data are not linearly separable through the origin.
    """
    if norm not in ("l2", "l1"):
        raise ValueError(f'norm: expected "l2" or "l1"; got {norm!r}')
    Xn = as_matrix("X", X)
    yn = as_targets("y", y, Xn.shape[0], allow_matrix=False)
    if not np.all(np.abs(yn) == 1):
        raise ValueError("y: labels must be -1 or +1")
    Z = yn[:, None] * Xn
    c = pow2_scale(Z)
    # Zw ≥ 1 ⟺ (Z/c)(cw) ≥ 1: solve for w′ = cw on unit-size data; multipliers of
    # ½‖w‖² (ℓ2) scale as c⁻², those of ‖w‖₁ (ℓ1) as c⁻¹.
    w, lam = _l2_max_margin(Z / c) if norm == "l2" else _l1_max_margin(Z / c)
    w = w / c
    lam = lam / (c * c if norm == "l2" else c)
    size = np.linalg.norm(w) if norm == "l2" else np.sum(np.abs(w))
    margins = Z @ w
    support = np.flatnonzero(np.abs(margins - margins.min()) <= 1e-9 * margins.min())
    return MaxMarginResult(
        to_jax(w),
        to_jax(w / size),
        to_jax(np.asarray(np.min(margins) / size)),
        to_jax(support),
        to_jax(lam),
    )
