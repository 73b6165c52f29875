"""Reference solvers checked against independent methods (float64).

Tolerances: LP / NNLS / Newton solutions are exact up to rounding after polishing, so
comparisons between two exact methods use ~1e-9 (conditioning of the small random
systems ≲ 1e3 times eps-level solver tolerances ~1e-12); comparisons against
iterative references (SLSQP, ODE integration) use the accuracy of that reference.
"""

import itertools

import jax
import numpy as np
import pytest
import scipy.integrate
import scipy.optimize

import dynsim.analysis as da


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def _raises_shape_error(request, name):
    """`ValueError` naming `name` — or, when the suite runs with runtime type checking
    (`--jaxtyping-packages`), jaxtyping's `TypeCheckError`, which rejects the shape at
    the annotation, before the solver's own check, and names the same parameter."""
    if request.config.getoption("jaxtyping_packages", default=None):
        from jaxtyping import TypeCheckError

        return pytest.raises(TypeCheckError, match=f"parameter '{name}'")
    return pytest.raises(ValueError, match=name)


def _data(seed, n, d):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal(n)


# ----------------------------------------------------------------------------- min-ℓ2


def test_min_l2_matches_lstsq_and_normal_equations():
    X, y = _data(0, 6, 15)
    beta = da.min_l2_interpolator(X, y)
    assert beta.dtype == np.float64 and beta.shape == (15,)
    ref = np.linalg.lstsq(X, y, rcond=None)[0]
    normal = X.T @ np.linalg.solve(X @ X.T, y)
    assert _rel(beta, ref) < 1e-12
    assert _rel(beta, normal) < 1e-10  # normal equations square cond(X) ≈ 10
    assert np.linalg.norm(X @ np.asarray(beta) - y) < 1e-12 * np.linalg.norm(y)


def test_min_l2_rank_deficient_and_matrix_targets():
    X, _ = _data(1, 5, 12)
    X = np.vstack([X, X[:2]])  # duplicate rows: rank 5, n = 7
    rng = np.random.default_rng(2)
    Y = X @ rng.standard_normal((12, 3))  # consistent targets, matrix output
    B = np.asarray(da.min_l2_interpolator(X, Y))
    assert B.shape == (12, 3)
    assert np.allclose(X @ B, Y, rtol=0, atol=1e-11 * np.abs(Y).max())
    assert _rel(B, np.linalg.pinv(X) @ Y) < 1e-11
    # Minimum norm: B lies in the row space of X.
    P_null = np.eye(12) - np.linalg.pinv(X) @ X
    assert np.linalg.norm(P_null @ B) < 1e-11 * np.linalg.norm(B)


def test_min_l2_validation(request):
    X, y = _data(3, 4, 6)
    with _raises_shape_error(request, "y"):
        da.min_l2_interpolator(X, y[:3])
    with pytest.raises(ValueError, match="X"):
        da.min_l2_interpolator(np.full((4, 6), np.nan), y)
    with _raises_shape_error(request, "X"):
        da.min_l2_interpolator(X[0], y)


# ----------------------------------------------------------------------------- min-ℓ1


def _l1_t_formulation(X, y, noise=None):
    """min Σt s.t. −t ≤ β ≤ t, Xβ = y (or |Xβ − y| ≤ ε): a different LP than the solver's."""
    n, d = X.shape
    c = np.concatenate([np.zeros(d), np.ones(d)])
    eye = np.eye(d)
    A_ub = np.block([[eye, -eye], [-eye, -eye]])
    b_ub = np.zeros(2 * d)
    bounds = [(None, None)] * d + [(0, None)] * d
    Xz = np.hstack([X, np.zeros((n, d))])
    if noise is None:
        res = scipy.optimize.linprog(c, A_ub, b_ub, Xz, y, bounds=bounds, method="highs")
    else:
        A_ub = np.vstack([A_ub, Xz, -Xz])
        b_ub = np.concatenate([b_ub, y + noise, noise - y])
        res = scipy.optimize.linprog(c, A_ub, b_ub, bounds=bounds, method="highs")
    assert res.status == 0
    return res.x[:d]


def test_min_l1_matches_t_formulation_lp():
    X, y = _data(4, 8, 20)
    beta = np.asarray(da.min_l1_interpolator(X, y))
    ref = _l1_t_formulation(X, y)
    # Generic data: the min-ℓ1 solution is unique, so both LPs return it.
    assert _rel(beta, ref) < 1e-9
    # Polishing brings the interpolation residual to rounding level.
    assert np.linalg.norm(X @ beta - y) < 1e-12 * np.linalg.norm(y)
    assert np.count_nonzero(beta) <= 8


def test_min_l1_brute_force_support_enumeration():
    X, y = _data(5, 3, 7)
    beta = np.asarray(da.min_l1_interpolator(X, y))
    # An LP optimum is attained at a basic solution: support of size n.
    best = np.inf
    for S in itertools.combinations(range(7), 3):
        XS = X[:, S]
        if abs(np.linalg.det(XS)) < 1e-12:
            continue
        best = min(best, np.abs(np.linalg.solve(XS, y)).sum())
    assert abs(np.abs(beta).sum() - best) < 1e-12 * best


def test_min_l1_sparse_recovery_and_matrix_targets():
    rng = np.random.default_rng(6)
    n, d, k = 40, 120, 3  # n ≫ 2k log(d/k) ≈ 22: exact recovery w.h.p.
    X = rng.standard_normal((n, d))
    B = np.zeros((d, 2))
    B[rng.choice(d, k, replace=False), 0] = rng.standard_normal(k) + 2.0
    B[rng.choice(d, k, replace=False), 1] = -rng.standard_normal(k) - 2.0
    out = np.asarray(da.min_l1_interpolator(X, X @ B))
    assert out.shape == (d, 2)
    assert np.max(np.abs(out - B)) < 1e-12 * np.max(np.abs(B))


def test_min_l1_noise_is_linf_constrained():
    X, y = _data(7, 8, 20)
    eps = 0.1
    beta = np.asarray(da.min_l1_interpolator(X, y, noise=eps))
    ref = _l1_t_formulation(X, y, noise=eps)
    assert np.max(np.abs(X @ beta - y)) <= eps * (1 + 1e-10)
    assert abs(np.abs(beta).sum() - np.abs(ref).sum()) < 1e-9 * np.abs(ref).sum()
    # ε ≥ ‖y‖_∞ makes β = 0 feasible, hence optimal.
    assert np.all(np.asarray(da.min_l1_interpolator(X, y, noise=np.abs(y).max())) == 0)


def test_min_l1_infeasible_raises():
    X, y = _data(8, 6, 3)  # n > d: generic y ∉ range(X)
    with pytest.raises(ValueError, match="y"):
        da.min_l1_interpolator(X, y)
    with pytest.raises(ValueError, match="noise"):
        da.min_l1_interpolator(X, y, noise=-1.0)


# ------------------------------------------------------------------ implicit bias


def _null_projector(X):
    return np.eye(X.shape[1]) - np.linalg.pinv(X) @ X


@pytest.mark.parametrize("alpha", [1e-6, 1e-3, 0.3, 1e3])
def test_implicit_bias_interpolates_and_kkt(alpha):
    X, y = _data(9, 10, 30)
    sol = da.implicit_bias_solve(
        X, y, da.diagonal_link("uu-vv", {"u": np.full(30, alpha), "v": np.full(30, alpha)})
    )
    beta = np.asarray(sol.beta)
    assert np.linalg.norm(X @ beta - y) <= 1e-10 * np.linalg.norm(y)
    assert sol.num_steps < 50
    # KKT of argmin Q_α s.t. Xβ = y: ∇Q_α(β) ∈ row(X); ∇Q_α from its closed form.
    grad = np.asarray(da.q_alpha_grad(beta, alpha))
    assert np.linalg.norm(_null_projector(X) @ grad) < 1e-9 * np.linalg.norm(grad)
    # z = Xᵀν* is ∇Q up to the factor ¼ of the z-scaling.
    assert _rel(4 * np.asarray(sol.z), grad) < 1e-9


def test_implicit_bias_small_alpha_is_min_l1():
    X, y = _data(4, 6, 10)
    l1 = np.asarray(da.min_l1_interpolator(X, y))
    # Strict complementarity of the (unique, support size n) basis-pursuit solution:
    # dual certificate η = Xᵀλ, λ = X_S⁻ᵀ sign(β_S), |η_i| < 1 off S. As α → 0,
    # z = Xᵀν* ≈ ¼ln(1/α²)·η, so off-support coordinates of β_α are
    # ≈ α²e^{4|z_i|} = α^{2(1 − |η_i|)}·O(1), and on S, X_Sβ_S = y − X_{S^c}β_{S^c}
    # moves by the same order. The convergence rate is set by max|η_i| off S
    # (for generic data ~0.8–0.97, i.e. very slow); this seed has a large gap.
    S = np.abs(l1) > 0
    assert S.sum() == 6
    lam = np.linalg.solve(X[:, S].T, np.sign(l1[S]))
    eta_off = np.max(np.abs(X[:, ~S].T @ lam))
    assert eta_off < 0.5  # precondition: predicted error ≈ (1e-12)^{1 − η} ≤ 1e-6
    alpha = 1e-6
    predicted = alpha ** (2 * (1 - eta_off))
    beta = np.asarray(da.implicit_bias_interpolator(X, y, alpha=alpha))
    err = _rel(beta, l1)
    assert err < 1e-4
    assert err < 100 * predicted  # constant O(1) factors (|β_i|, log terms)
    # Monotone approach: a larger α is farther from min-ℓ1.
    beta3 = np.asarray(da.implicit_bias_interpolator(X, y, alpha=1e-3))
    assert err < _rel(beta3, l1)


def test_implicit_bias_large_alpha_is_min_l2():
    X, y = _data(11, 8, 24)
    l2 = np.asarray(da.min_l2_interpolator(X, y))
    beta = np.asarray(da.implicit_bias_interpolator(X, y, alpha=1e3))
    # Q_α(β) = ‖β‖²/(4α²)·(1 + O((β/α²)²)): relative deviation ~ (|β|/α²)² ≈ 1e-11.
    assert _rel(beta, l2) < 1e-8


def test_implicit_bias_matches_constrained_minimisation():
    X, y = _data(12, 4, 9)
    alpha = 0.5
    beta = np.asarray(da.implicit_bias_interpolator(X, y, alpha=alpha))
    res = scipy.optimize.minimize(
        lambda b: float(da.q_alpha(b, alpha)),
        np.asarray(da.min_l2_interpolator(X, y)),
        jac=lambda b: np.asarray(da.q_alpha_grad(b, alpha)),
        constraints=[{"type": "eq", "fun": lambda b: X @ b - y, "jac": lambda b: X}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 500},
    )
    assert res.success
    assert _rel(beta, res.x) < 1e-6  # SLSQP's own accuracy
    # The generic potential (Φ* by bisection) is Q_α/4 up to a constant.
    link = da.diagonal_link("uu-vv", {"u": np.full(9, alpha), "v": np.full(9, alpha)})
    const = -9 * alpha**2 / 2
    for b in (beta, res.x, np.zeros(9)):
        assert abs(float(da.link_potential(link, b)) - (float(da.q_alpha(b, alpha)) / 4 + const)) < 1e-12


def test_implicit_bias_rank_deficient_rows():
    X, y = _data(13, 5, 12)
    X2, y2 = np.vstack([X, X[:1]]), np.concatenate([y, y[:1]])
    b1 = np.asarray(da.implicit_bias_interpolator(X, y, alpha=0.1))
    b2 = np.asarray(da.implicit_bias_interpolator(X2, y2, alpha=0.1))
    assert _rel(b2, b1) < 1e-10
    with pytest.raises(ValueError, match="y"):
        da.implicit_bias_interpolator(X2, np.concatenate([y, [y[0] + 1.0]]), alpha=0.1)


# GF ODEs in the original parameters, integrated independently of the links.
def _gf_field(parametrization, X, y, D=3, lam=0.5):
    d = X.shape[1]

    def split(p):
        return p[:d], p[d : 2 * d], p[2 * d :]

    def beta_of(p):
        u, v, w = split(p)
        if parametrization == "uu-vv":
            return u * u - v * v
        if parametrization == "uv":
            return u * v
        if parametrization == "depth":
            return u**D - v**D
        return u * u - v * v + lam * w

    def field(_, p):
        u, v, _w = split(p)
        g = X.T @ (X @ beta_of(p) - y)
        if parametrization == "uu-vv":
            return np.concatenate([-2 * u * g, 2 * v * g])
        if parametrization == "uv":
            return np.concatenate([-v * g, -u * g])
        if parametrization == "depth":
            return np.concatenate([-D * u ** (D - 1) * g, D * v ** (D - 1) * g])
        return np.concatenate([-2 * u * g, 2 * v * g, -lam * g])

    return field, beta_of


@pytest.mark.parametrize("parametrization", ["uu-vv", "uv", "depth", "uu-vv+w"])
def test_links_match_gradient_flow_ode(parametrization):
    rng = np.random.default_rng(14)
    n, d = 3, 6
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    params0 = {
        "u": rng.uniform(0.3, 0.9, d),
        "v": rng.uniform(0.3, 0.9, d),
        "w": rng.standard_normal(d) * 0.3,
    }
    kw = {"depth": 3} if parametrization == "depth" else {"dense_scale": 0.5}
    link = da.diagonal_link(parametrization, params0, **kw)
    field, beta_of = _gf_field(parametrization, X, y)
    p0 = np.concatenate([params0["u"], params0["v"]])
    if parametrization == "uu-vv+w":
        p0 = np.concatenate([p0, params0["w"]])
    assert np.allclose(np.asarray(link.phi(np.zeros(d))), beta_of(p0), atol=1e-15)

    def small_residual(t, p):
        return np.linalg.norm(X @ beta_of(p) - y) - 1e-11

    small_residual.terminal = True
    # Radau, not an explicit method: once converged, DOP853 at rtol 1e-11 lets its step grow
    # to the stability limit and the residual then hovers at ~1e-9 (tolerance-driven
    # oscillation, rounding-dependent: it reached 1e-11 on one CPU and not on another).
    ode = scipy.integrate.solve_ivp(
        field, (0, 1e4), p0, method="Radau", rtol=1e-11, atol=1e-13, events=small_residual
    )
    assert ode.status == 1  # stopped by ‖r‖ < 1e-11
    beta_ode = beta_of(ode.y[:, -1])
    beta = np.asarray(da.implicit_bias_solve(X, y, link).beta)
    # rtol 1e-11 over the O(30) time units it takes: trajectory error ≲ 1e-9;
    # remaining drift ≲ ‖r‖/λ_min(K) ≈ 1e-10.
    assert _rel(beta, beta_ode) < 1e-6
    # Generic KKT through the bisection inverse: φ⁻¹(β∞) ∈ row(X).
    z = np.asarray(da.link_inverse(link, beta))
    assert np.linalg.norm(_null_projector(X) @ z) < 1e-9 * np.linalg.norm(z)


@pytest.mark.parametrize("parametrization", ["uu-vv", "uv", "depth", "uu-vv+w"])
def test_links_broadcast_over_batch_axes(parametrization):
    # Links are coordinatewise on (..., d): a batch of z (jax or numpy) is evaluated
    # row by row (also under jax_numpy_rank_promotion="raise": no implicit rank promotion).
    rng = np.random.default_rng(19)
    d = 5
    p = {"u": rng.uniform(0.3, 0.9, d), "v": rng.uniform(0.3, 0.9, d), "w": rng.standard_normal(d)}
    kw = {"depth": 3} if parametrization == "depth" else {"dense_scale": 0.5}
    link = da.diagonal_link(parametrization, p, **kw)
    Z = 0.05 * rng.standard_normal((3, d))
    for f in link:
        rows = np.stack([np.asarray(f(jax.numpy.asarray(z))) for z in Z])
        # Same elementwise operations; 1e-15 allows vectorised transcendentals to round
        # differently on other CPUs.
        np.testing.assert_allclose(np.asarray(f(jax.numpy.asarray(Z))), rows, rtol=1e-15)
        np.testing.assert_allclose(f(Z), np.stack([f(z) for z in Z]), rtol=1e-15)
    B = np.asarray(link.phi(jax.numpy.asarray(Z)))
    assert np.allclose(np.asarray(da.link_inverse(link, B)), Z, rtol=0, atol=1e-14)
    assert np.asarray(da.link_potential(link, B)).shape == (3,)


def test_link_validation():
    d = 4
    p = {"u": np.ones(d), "v": np.ones(d)}
    with pytest.raises(ValueError, match="parametrization"):
        da.diagonal_link("uvw", p)
    with pytest.raises(ValueError, match="depth"):
        da.diagonal_link("depth", p)
    with pytest.raises(ValueError, match="params0"):
        da.diagonal_link("depth", {"u": -np.ones(d), "v": np.ones(d)}, depth=3)
    with pytest.raises(ValueError, match="params0"):
        da.diagonal_link("uv", {"u": np.ones(d)})
    with pytest.raises(ValueError, match="params0"):
        da.diagonal_link("uv", {"u": np.ones(d), "v": np.ones(d + 1)})
    X, y = _data(15, 3, d)
    with pytest.raises(ValueError, match="params0"):
        da.implicit_bias_interpolator(X, y, params0=p, alpha=1.0)
    with pytest.raises(ValueError, match="alpha"):
        da.implicit_bias_interpolator(X, y, alpha=0.0)
    # depth = 2 is the "uu-vv" link.
    z = np.linspace(-1, 1, d)
    assert np.allclose(
        da.diagonal_link("depth", p, depth=2).phi(z), da.diagonal_link("uu-vv", p).phi(z)
    )


# ----------------------------------------------------------------------- max-margin


def _separable(seed, n, d, gap=0.1):
    rng = np.random.default_rng(seed)
    w_true = rng.standard_normal(d)
    X = rng.standard_normal((n * 3, d))
    s = X @ w_true / np.linalg.norm(w_true)
    X = X[np.abs(s) > gap][:n]
    return X, np.sign(X @ w_true)


def test_max_margin_l2_matches_slsqp_and_kkt():
    X, y = _separable(16, 20, 5)
    res = da.max_margin(X, y)
    w, lam = np.asarray(res.w), np.asarray(res.dual)
    Z = y[:, None] * X
    ref = scipy.optimize.minimize(
        lambda v: 0.5 * v @ v,
        np.asarray(da.min_l2_interpolator(X, y)) * 10,
        jac=lambda v: v,
        constraints=[{"type": "ineq", "fun": lambda v: Z @ v - 1, "jac": lambda v: Z}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    assert ref.success
    assert _rel(w, ref.x) < 1e-7  # SLSQP accuracy
    # KKT (exact after the support polish): feasibility, stationarity,
    # dual feasibility, complementary slackness.
    m = Z @ w
    assert m.min() >= 1 - 1e-12
    assert np.all(lam >= 0)
    assert np.linalg.norm(w - Z.T @ lam) < 1e-12 * np.linalg.norm(w)
    assert np.max(np.abs(lam * (m - 1))) < 1e-12
    assert abs(float(res.margin) - 1 / np.linalg.norm(w)) < 1e-12
    assert abs(np.linalg.norm(np.asarray(res.direction)) - 1) < 1e-14
    assert set(np.flatnonzero(lam > 0)) <= set(np.asarray(res.support).tolist())


def test_max_margin_l1_matches_t_formulation():
    X, y = _separable(17, 20, 6)
    res = da.max_margin(X, y, norm="l1")
    w = np.asarray(res.w)
    Z = y[:, None] * X
    d = X.shape[1]
    eye = np.eye(d)
    lp = scipy.optimize.linprog(
        np.concatenate([np.zeros(d), np.ones(d)]),
        A_ub=np.block([[eye, -eye], [-eye, -eye], [-Z, np.zeros_like(Z)]]),
        b_ub=np.concatenate([np.zeros(2 * d), -np.ones(len(y))]),
        bounds=[(None, None)] * d + [(0, None)] * d,
        method="highs",
    )
    assert lp.status == 0
    assert abs(np.abs(w).sum() - lp.fun) < 1e-9 * lp.fun
    assert (Z @ w).min() >= 1 - 1e-12
    assert abs(float(res.margin) - 1 / np.abs(w).sum()) < 1e-12


def test_max_margin_validation():
    X, y = _separable(18, 10, 3)
    with pytest.raises(ValueError, match="y"):
        da.max_margin(np.vstack([X, -X[:1]]), np.concatenate([y, y[:1]]))
    with pytest.raises(ValueError, match="y"):
        da.max_margin(np.vstack([X, -X[:1]]), np.concatenate([y, y[:1]]), norm="l1")
    with pytest.raises(ValueError, match="y"):
        da.max_margin(X, 2 * y)
    with pytest.raises(ValueError, match="norm"):
        da.max_margin(X, y, norm="linf")
