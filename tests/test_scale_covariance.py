"""Reference solvers do not depend on the units of the data (float64).

Each solver's answer is covariant under rescaling X → c·X, y → s·y (and, for the
implicit bias, the init scale that maps the problem onto itself):

- min-ℓ1 / min-ℓ2: β(c·X, s·y) = (s/c)·β(X, y); ℓ∞-noise ε scales with y;
- max-margin: w(c·X) = w/c, margin(c·X) = c·margin, direction unchanged, ℓ2 dual λ/c²;
- implicit bias, β homogeneous of degree D in the initial parameters p:
  β(c·X, s·y; t^{1/D}·p) = t·β(X, y; p), t = s/c (for "uu-vv" with u₀ = v₀ = α:
  β(X, s·y; α√s) = s·β(X, y; α));
- kernels: K⁺ (s·y) / c for c·K; relu_ntk(c·X) = c²·relu_ntk(X).

Tolerance rtol 1e-6 for every identity, scales 1e-9 … 1e9. In exact arithmetic each
identity is exact; the scaled problem differs from the unscaled one only by the
rounding of c·X, s·y (relative eps), amplified by the conditioning of these small
Gaussian problems (≲ 1e3) and by the solvers' own relative targets (Newton: residual
1e-12·‖y‖; LP vertices are polished to rounding level). Measured: ≤ 1e-14. The bound
1e-6 leaves room for BLAS and pivoting differences between machines while catching
absolute tolerances, which at these scales give errors of 1e-5 … 1 (e.g. β = 0 for
min-ℓ1 at s = 1e-9, "not separable" for max-margin at c = 1e-8).
"""

import functools

import numpy as np
import pytest

import dynsim.analysis as da

RTOL = 1e-6
SCALES = [1e-9, 1e-6, 1e-3, 1e3, 1e6, 1e9]
N, D = 12, 40


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@functools.cache
def _data():
    rng = np.random.default_rng(20240611)
    return rng.standard_normal((N, D)), rng.standard_normal(N)


@functools.cache
def _separable():
    rng = np.random.default_rng(7)
    w_true = rng.standard_normal(D)
    X = rng.standard_normal((3 * N, D))
    X = X[np.abs(X @ w_true) > 0.1 * np.linalg.norm(w_true)][: 2 * N]
    return X, np.sign(X @ w_true)


@functools.cache
def _l1(noise=None):
    X, y = _data()
    return np.asarray(da.min_l1_interpolator(X, y, noise=noise))


# ------------------------------------------------------------------ min-ℓ1, min-ℓ2


@pytest.mark.parametrize("s", SCALES)
def test_min_l1_scales_with_y(s):
    X, y = _data()
    assert _rel(da.min_l1_interpolator(X, s * y), s * _l1()) < RTOL


@pytest.mark.parametrize("c", SCALES)
def test_min_l1_scales_inversely_with_X(c):
    X, y = _data()
    assert _rel(da.min_l1_interpolator(c * X, y), _l1() / c) < RTOL


@pytest.mark.parametrize("s", SCALES)
def test_min_l1_noise_scales_with_y(s):
    X, y = _data()
    eps = 0.1 * np.max(np.abs(y))
    ref = _l1(eps)
    assert np.count_nonzero(ref) > 0  # not the trivial β = 0 (ε < ‖y‖_∞)
    assert _rel(da.min_l1_interpolator(X, s * y, noise=s * eps), s * ref) < RTOL


@pytest.mark.parametrize("s", SCALES)
def test_min_l1_matrix_columns_at_different_scales(s):
    # Each column is its own LP: a column 1e-9 times smaller than another is solved at
    # its own scale, not at the scale of the matrix.
    X, y = _data()
    y2 = np.random.default_rng(3).standard_normal(N)
    B = np.asarray(da.min_l1_interpolator(X, np.stack([y, s * y2], axis=1)))
    assert _rel(B[:, 0], _l1()) < RTOL
    assert _rel(B[:, 1], s * np.asarray(da.min_l1_interpolator(X, y2))) < RTOL


@pytest.mark.parametrize("c", SCALES)
@pytest.mark.parametrize("s", [1e-9, 1.0, 1e9])
def test_min_l2_is_scale_covariant(c, s):
    X, y = _data()
    ref = np.asarray(da.min_l2_interpolator(X, y))
    assert _rel(da.min_l2_interpolator(c * X, s * y), (s / c) * ref) < RTOL
    # The relative SVD cutoff drops the same directions at any scale.
    Xd = np.vstack([X, X[:2]])
    yd = np.concatenate([y, y[:2]])
    assert _rel(da.min_l2_interpolator(c * Xd, s * yd), (s / c) * ref) < RTOL


# ------------------------------------------------------------------ max-margin


@pytest.mark.parametrize("c", SCALES)
@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_max_margin_scales_with_X(c, norm):
    X, y = _separable()
    ref = da.max_margin(X, y, norm=norm)
    res = da.max_margin(c * X, y, norm=norm)
    assert abs(float(res.margin) - c * float(ref.margin)) < RTOL * c * float(ref.margin)
    assert _rel(res.direction, ref.direction) < RTOL
    assert _rel(res.w, np.asarray(ref.w) / c) < RTOL
    assert set(np.asarray(res.support).tolist()) == set(np.asarray(ref.support).tolist())
    if norm == "l2":  # w = Zᵀλ: λ scales as c⁻²
        assert _rel(res.dual, np.asarray(ref.dual) / c**2) < RTOL


# ------------------------------------------------------------------ implicit bias

_D3 = np.random.default_rng(11)
# parametrization → (degree of β in the initial parameters, params0, options)
_PARAMETRIZATIONS = {
    "uu-vv": (2, {"u": np.full(D, 0.3), "v": np.full(D, 0.3)}, {}),
    "uv": (2, {"u": np.full(D, 0.3), "v": np.zeros(D)}, {}),  # symmetric k = 2u₀² model
    "depth": (3, {"u": _D3.uniform(0.3, 0.9, D), "v": _D3.uniform(0.3, 0.9, D)}, {"depth": 3}),
    "uu-vv+w": (
        2,
        {"u": np.full(D, 0.3), "v": np.full(D, 0.3), "w": 0.3 * _D3.standard_normal(D)},
        {"dense_scale": 0.5},
    ),
}


def _implicit(X, y, parametrization, t=1.0):
    """β∞ with the initial parameters (and λ) multiplied by t^{1/D}."""
    degree, params0, kw = _PARAMETRIZATIONS[parametrization]
    k = t ** (1.0 / degree)
    kw = {**kw, **({"dense_scale": k * kw["dense_scale"]} if "dense_scale" in kw else {})}
    p = {name: k * v for name, v in params0.items()}
    return np.asarray(
        da.implicit_bias_interpolator(X, y, parametrization=parametrization, params0=p, **kw)
    )


@pytest.mark.parametrize("s", SCALES)
@pytest.mark.parametrize("parametrization", list(_PARAMETRIZATIONS))
def test_implicit_bias_scales_with_y_and_init(parametrization, s):
    X, y = _data()
    ref = _implicit(X, y, parametrization)
    assert _rel(_implicit(X, s * y, parametrization, t=s), s * ref) < RTOL


@pytest.mark.parametrize("c", SCALES)
@pytest.mark.parametrize("parametrization", list(_PARAMETRIZATIONS))
def test_implicit_bias_scales_with_X_and_init(parametrization, c):
    X, y = _data()
    ref = _implicit(X, y, parametrization)
    assert _rel(_implicit(c * X, y, parametrization, t=1 / c), ref / c) < RTOL


@pytest.mark.parametrize("s", SCALES)
def test_implicit_bias_alpha_shortcut(s):
    # Q_{α√s}(s·β) = s·Q_α(β) (Woodworth et al.'s potential is 2-homogeneous in (β, α²)),
    # hence β(X, s·y; α√s) = s·β(X, y; α), and X → c·X is y → y/c.
    X, y = _data()
    alpha = 0.1
    ref = np.asarray(da.implicit_bias_interpolator(X, y, alpha=alpha))
    got = da.implicit_bias_interpolator(X, s * y, alpha=alpha * np.sqrt(s))
    assert _rel(got, s * ref) < RTOL
    got = da.implicit_bias_interpolator(s * X, y, alpha=alpha / np.sqrt(s))
    assert _rel(got, ref / s) < RTOL
    b = np.asarray(ref)
    assert abs(float(da.q_alpha(s * b, alpha * np.sqrt(s))) - s * float(da.q_alpha(b, alpha))) < (
        1e-13 * s * float(da.q_alpha(b, alpha))
    )


@pytest.mark.parametrize("c", SCALES)
def test_implicit_bias_zero_targets(c):
    # y = 0 with β₀ = u₀² − v₀² ≠ 0: the flow still moves (to the point of {Xβ = 0}
    # nearest β₀ in Q), and Xβ = 0 does not depend on c. The residual target must then
    # be relative to the initial residual ‖Xβ₀‖, not an absolute 1e-12.
    X, _ = _data()
    rng = np.random.default_rng(5)
    link = da.diagonal_link("uu-vv", {"u": rng.uniform(0.3, 0.9, D), "v": rng.uniform(0.3, 0.9, D)})
    ref = da.implicit_bias_solve(X, np.zeros(N), link)
    got = da.implicit_bias_solve(c * X, np.zeros(N), link)
    assert _rel(got.beta, ref.beta) < RTOL
    assert float(got.residual) <= 1e-12 * c * np.linalg.norm(X @ np.asarray(link.phi(np.zeros(D))))


# ------------------------------------------------------------------ kernels


@pytest.mark.parametrize("c", SCALES)
def test_kernel_interpolator_and_relu_ntk_are_homogeneous(c):
    X, y = _data()
    X = X[:, :3]
    K = np.asarray(da.relu_ntk(X, bias=True, output_layer=True))
    # x̃ = (x, s) is homogeneous when the bias constant scales with x.
    Kc = np.asarray(da.relu_ntk(c * X, bias=True, output_layer=True, bias_scale=c))
    assert _rel(Kc, c**2 * K) < RTOL
    coef = np.asarray(da.kernel_interpolator(K, y))
    assert _rel(da.kernel_interpolator(c * K, c * y), coef) < RTOL
    assert _rel(da.kernel_interpolator(K, c * y), c * coef) < RTOL
