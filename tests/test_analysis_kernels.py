"""Analytic ReLU kernels vs quadrature and wide random networks; kernel interpolation."""

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate

import dynsim.analysis as da


def _raises_shape_error(request, name, *, checked=None):
    """`ValueError` naming `name` — or, when the suite runs with runtime type checking
    (`--jaxtyping-packages`), jaxtyping's `TypeCheckError`, which rejects the shape at
    the annotation before the function's own check, naming the parameter `checked`
    (default `name`) at which the shapes first disagree."""
    if request.config.getoption("jaxtyping_packages", default=None):
        from jaxtyping import TypeCheckError

        return pytest.raises(TypeCheckError, match=f"parameter '{checked or name}'")
    return pytest.raises(ValueError, match=name)


def _corr_quadrature(w, v):
    """E[relu(wᵀx)relu(vᵀx)] reduced to the plane of (w, v): radial ∫r³e^{−r²/2}dr = 2,
    so it equals ‖w‖‖v‖/π·∫₀^{2π} relu(cos φ)relu(cos(φ − θ)) dφ."""
    nw, nv = np.linalg.norm(w), np.linalg.norm(v)
    theta = np.arccos(np.clip(w @ v / (nw * nv), -1, 1))
    f = lambda p: max(np.cos(p), 0.0) * max(np.cos(p - theta), 0.0)  # noqa: E731
    pts = sorted({np.pi / 2, 3 * np.pi / 2, (theta + np.pi / 2) % (2 * np.pi),
                  (theta + 3 * np.pi / 2) % (2 * np.pi)})
    val, _ = scipy.integrate.quad(f, 0, 2 * np.pi, points=pts, epsabs=1e-14, epsrel=1e-13)
    return nw * nv * val / np.pi


def test_relu_gaussian_correlation_vs_quadrature_and_grad():
    rng = np.random.default_rng(0)
    W, V = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    V[0] = 2.0 * W[0]  # θ = 0: ‖w‖‖v‖/2
    V[1] = -W[1]  # θ = π: 0
    got = np.asarray(da.relu_gaussian_correlation(W, V))
    ref = np.array([_corr_quadrature(w, v) for w, v in zip(W, V)])
    assert np.allclose(got, ref, rtol=1e-10, atol=1e-12)  # quad accuracy
    assert abs(got[0] - np.linalg.norm(W[0]) * np.linalg.norm(V[0]) / 2) < 1e-12
    # Broadcasting gives neuron Gram matrices; zero vectors give 0.
    G = np.asarray(da.relu_gaussian_correlation(W[:, None], V[None]))
    assert G.shape == (5, 5) and np.isclose(G[2, 3], _corr_quadrature(W[2], V[3]), rtol=1e-10)
    assert float(da.relu_gaussian_correlation(np.zeros(4), V[2])) == 0.0
    # Differentiable (generic w, v): jax.grad vs central differences.
    g = np.asarray(jax.grad(da.relu_gaussian_correlation)(jnp.asarray(W[3]), jnp.asarray(V[3])))
    h = 1e-6
    fd = [
        (float(da.relu_gaussian_correlation(W[3] + h * e, V[3]))
         - float(da.relu_gaussian_correlation(W[3] - h * e, V[3]))) / (2 * h)
        for e in np.eye(4)
    ]
    assert np.allclose(g, fd, rtol=1e-7, atol=1e-9)  # O(h²) + rounding/h ≈ 1e-10


def test_relu_ntk_closed_forms(request):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6, 3))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    K = np.asarray(da.relu_ntk(X))
    G = np.clip(X @ X.T, -1, 1)
    assert np.allclose(K, G * (np.pi - np.arccos(G)) / (2 * np.pi), atol=1e-14)  # Du et al.
    # Biases: the same kernel on x̃ = (x, 1); the output layer adds the correlation kernel.
    Xt = np.hstack([X, np.ones((6, 1))])
    Kb = np.asarray(da.relu_ntk(X, bias=True, output_layer=True))
    nt = np.linalg.norm(Xt, axis=1)
    Ct = np.clip(Xt @ Xt.T / np.outer(nt, nt), -1, 1)
    hidden = Xt @ Xt.T * (np.pi - np.arccos(Ct)) / (2 * np.pi)
    outer = np.asarray(da.relu_gaussian_correlation(Xt[:, None], Xt[None]))
    assert np.allclose(Kb, hidden + outer, atol=1e-13)
    # Cross kernel and positive definiteness (pairwise independent inputs).
    K12 = np.asarray(da.relu_ntk(X[:2], X, bias=True))
    assert np.allclose(K12, np.asarray(da.relu_ntk(X, bias=True))[:2], atol=1e-14)
    assert np.linalg.eigvalsh(Kb).min() > 0
    with _raises_shape_error(request, "X2"):
        da.relu_ntk(X, X[:, :2])
    with _raises_shape_error(request, "X1"):
        da.relu_ntk(X[0])


def _exact_kernel_parts(x, x2):
    """(K_w, K_a) of relu_ntk for one pair of float64 vectors, from exact arithmetic.

    A = ‖x‖², B = ‖x′‖², C = xᵀx′ and N = AB − C² = ‖x ∧ x′‖² are exact rationals
    (Fractions of the float inputs), so θ = atan2(√N, C) and π − θ = atan2(√N, −C)
    are rounded only once each: relative error ≲ 2 ulps, for every angle. The angular
    factor J(ψ) = sin ψ − ψ cos ψ (ψ = π − θ) is summed from its Taylor series
    Σ (−1)^{k+1} 2k ψ^{2k+1}/(2k+1)! (no cancellation) for ψ < 1, directly otherwise
    (there the cancellation of sin ψ against ψ cos ψ costs at most a factor 3).
    """
    x = [Fraction(float(a)) for a in x]
    x2 = [Fraction(float(b)) for b in x2]
    A, B = sum(a * a for a in x), sum(b * b for b in x2)
    C = sum(a * b for a, b in zip(x, x2))
    sqrtN = math.sqrt(float(A * B - C * C))
    psi = math.atan2(sqrtN, -float(C))
    if psi < 1.0:
        J = sum((-1) ** (k + 1) * 2 * k * psi ** (2 * k + 1) / math.factorial(2 * k + 1)
                for k in range(1, 20))
    else:
        J = math.sin(psi) - psi * math.cos(psi)
    return float(C) * psi / (2 * math.pi), math.sqrt(float(A * B)) * J / (2 * math.pi)


@pytest.mark.parametrize("bias_scale", [1.0, 0.3, 1e3])
def test_relu_ntk_diagonal_is_exact(bias_scale):
    # θ(x̃, x̃) = 0: K_w(x, x) = ‖x̃‖²(π − 0)/(2π) = ‖x̃‖²/2, and the output layer adds
    # ‖x̃‖²(sin 0 + π cos 0)/(2π) = ‖x̃‖²/2. arccos(cos θ) with cos θ = 1 − O(eps) was
    # off by √(2 eps) ≈ 2e-8 in θ, i.e. ~8e-9 relative; now only the rounding of
    # ‖x̃‖², x̃ᵀx̃ and the factor π/(2π) remain (a few ulps): 1e-14.
    rng = np.random.default_rng(7)
    X = rng.standard_normal((8, 4)) * np.logspace(-3, 3, 8)[:, None]
    for bias in (False, True):
        sq = np.sum(X**2, axis=1) + (bias_scale**2 if bias else 0.0)
        for output_layer in (False, True):
            kw = {"bias": bias, "output_layer": output_layer, "bias_scale": bias_scale}
            want = sq * (1.0 if output_layer else 0.5)
            for K in (da.relu_ntk(X, **kw), da.relu_ntk(X, X.copy(), **kw)):
                np.testing.assert_allclose(np.diag(np.asarray(K)), want, rtol=1e-14, atol=0)


@pytest.mark.parametrize("delta", [1e-3, 1e-6, 1e-9, 1e-12, 1e-15])
def test_relu_ntk_nearly_parallel_vs_exact_arithmetic(delta):
    # x′ = x + δu: θ ≈ δ. Against the exact-arithmetic reference (≲ 2 ulps): the NTK
    # near θ = 0 is well conditioned (K ∝ π − θ), so a stable angle gives a few ulps
    # too; bound 1e-13 (measured ≤ 5e-16; arccos gave up to 7e-9).
    rng = np.random.default_rng(8)
    X = rng.standard_normal((5, 3))
    X2 = X + delta * rng.standard_normal((5, 3))
    for bias in (False, True):
        aug = (lambda Z: np.hstack([Z, np.ones((len(Z), 1))])) if bias else (lambda Z: Z)
        ref = [_exact_kernel_parts(a, b) for a, b in zip(aug(X), aug(X2))]
        Kw = np.diag(np.asarray(da.relu_ntk(X, X2, bias=bias)))
        K = np.diag(np.asarray(da.relu_ntk(X, X2, bias=bias, output_layer=True)))
        np.testing.assert_allclose(Kw, [r[0] for r in ref], rtol=1e-13, atol=0)
        np.testing.assert_allclose(K, [r[0] + r[1] for r in ref], rtol=1e-13, atol=0)
        corr = np.asarray(da.relu_gaussian_correlation(aug(X), aug(X2)))
        np.testing.assert_allclose(corr, [r[1] for r in ref], rtol=1e-13, atol=0)


@pytest.mark.parametrize("delta", [1e-3, 1e-6, 1e-9, 1e-12])
def test_relu_ntk_nearly_antiparallel_vs_exact_arithmetic(delta):
    # x′ = −x + δu: π − θ ≈ δ and K_w ≈ −‖x‖²δ/(2π), K_a ≈ ‖x‖²δ³/(6π) are tiny.
    # Rounding the inputs' unit vectors perturbs π − θ by ~eps absolutely, so the
    # attainable error is a few ulps of ‖x‖‖x′‖ (relative error ~eps/δ: the
    # conditioning): measured ≤ 1e-17·‖x‖‖x′‖; arccos gave 4e-14 … 2e-9 of it here.
    rng = np.random.default_rng(9)
    X = rng.standard_normal((5, 3))
    X2 = -X + delta * rng.standard_normal((5, 3))
    scale = np.linalg.norm(X, axis=1) * np.linalg.norm(X2, axis=1)
    ref = np.array([_exact_kernel_parts(a, b) for a, b in zip(X, X2)])
    Kw = np.diag(np.asarray(da.relu_ntk(X, X2)))
    K = np.diag(np.asarray(da.relu_ntk(X, X2, output_layer=True)))
    corr = np.asarray(da.relu_gaussian_correlation(X, X2))
    assert np.all(np.abs(Kw - ref[:, 0]) <= 1e-15 * scale)
    assert np.all(np.abs(K - ref.sum(axis=1)) <= 1e-15 * scale)
    assert np.all(np.abs(corr - ref[:, 1]) <= 1e-15 * scale)
    # The angular factor of K_a is summed without cancellation: J(ψ) ≈ ψ³/3 keeps
    # ~3× the relative error of ψ (≲ eps/δ), not eps/δ² (direct sin ψ − ψ cos ψ).
    assert np.all(np.abs(corr - ref[:, 1]) <= 1e-13 * np.abs(ref[:, 1]) / delta)


def test_relu_kernels_broadcast_and_gradient_at_parallel_inputs():
    rng = np.random.default_rng(10)
    W, V = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    # Broadcasting between different numbers of leading axes (numpy rules).
    row = np.asarray(da.relu_gaussian_correlation(W[0], V))
    assert row.shape == (5,)
    np.testing.assert_allclose(row, np.asarray(da.relu_gaussian_correlation(W[:1], V)), rtol=1e-15)
    G = np.asarray(da.relu_gaussian_correlation(W[:, None], V[None]))
    np.testing.assert_allclose(G[0], row, rtol=1e-15)
    # At θ = 0 the correlation is differentiable (its θ-derivative −(π − θ)sin θ
    # vanishes): ∂/∂w [‖w‖‖v‖/2] = ‖v‖ŵ/2; the stable angle has a finite gradient.
    w = jnp.asarray(W[1])
    g = np.asarray(jax.grad(da.relu_gaussian_correlation)(w, 2.0 * w))
    want = np.linalg.norm(2.0 * W[1]) * W[1] / np.linalg.norm(W[1]) / 2
    np.testing.assert_allclose(g, want, rtol=1e-14)
    # d/dX tr K(X, X) = x̃_i-part of ∇(‖x̃_i‖²/2) = x_i (hidden-layer NTK diagonal).
    X = jnp.asarray(rng.standard_normal((4, 3)))
    gX = np.asarray(jax.grad(lambda X: jnp.trace(da.relu_ntk(X, bias=True)))(X))
    np.testing.assert_allclose(gX, np.asarray(X), rtol=1e-14)


def _relu_net(params, X, a):
    m = a.shape[0]
    pre = X @ params["W"].T + (params["b"][None, :] if "b" in params else 0.0)
    return jax.nn.relu(pre) @ a / jnp.sqrt(m)


@pytest.mark.parametrize("bias", [False, True])
def test_relu_ntk_matches_wide_network(bias):
    m, n, d = 20_000, 6, 3
    key_w, key_b, key_a = jax.random.split(jax.random.PRNGKey(2), 3)
    X = np.random.default_rng(3).standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    params = {"W": jax.random.normal(key_w, (m, d), dtype=jnp.float64)}
    if bias:
        params["b"] = jax.random.normal(key_b, (m,), dtype=jnp.float64)
    a = jax.random.rademacher(key_a, (m,), dtype=jnp.float64)  # a² = 1 exactly

    # Hidden layer only (a fixed): K_emp = (1/m)Σ_r ξ_r, ξ_r = x̃ᵀx̃′·1[w_r·x̃ > 0]1[w_r·x̃′ > 0],
    # Var ξ ≤ (x̃ᵀx̃′)²/4, so each entry has std ≤ ‖x̃‖‖x̃′‖/(2√m); 5 std bounds all
    # n(n+1)/2 = 21 entries with probability ≥ 1 − 21·6e-7 (fixed key: deterministic).
    K_emp = np.asarray(da.empirical_ntk(lambda p, X: _relu_net(p, X, a), params, X))
    K = np.asarray(da.relu_ntk(X, bias=bias))
    norms = np.sqrt(1.0 + bias) * np.ones(n)
    scale = np.outer(norms, norms) / np.sqrt(m)
    assert np.all(np.abs(K_emp - K) <= 5 * 0.5 * scale)

    # Outer layer too: ζ_r = relu(w_r·x̃)relu(w_r·x̃′), Var ζ ≤ E[(w·x̃)²(w·x̃′)²] ≤ 3‖x̃‖²‖x̃′‖².
    full = {**params, "a": a}
    K_emp2 = np.asarray(
        da.empirical_ntk(lambda p, X: _relu_net({k: p[k] for k in params}, X, p["a"]), full, X)
    )
    K2 = np.asarray(da.relu_ntk(X, bias=bias, output_layer=True))
    assert np.all(np.abs(K_emp2 - K2) <= 5 * (0.5 + np.sqrt(3.0)) * scale)
    # And the deviation is really of order m^{−½}, not much smaller (kernel not trivial).
    assert np.max(np.abs(K_emp2 - K2) / scale) > 0.05


def test_empirical_ntk_vector_output_ordering():
    rng = np.random.default_rng(4)
    X, X2 = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    params = {"W": jnp.asarray(rng.standard_normal((2, 3)))}
    apply = lambda p, X: X @ p["W"].T  # (n, 2); ∂f_{ik}/∂W_{kj} = x_ij  # noqa: E731
    K = np.asarray(da.empirical_ntk(apply, params, X))
    assert K.shape == (8, 8)
    assert np.allclose(K, np.kron(X @ X.T, np.eye(2)), atol=1e-13)  # sample-major
    K12 = np.asarray(da.empirical_ntk(apply, params, X, X2))
    assert np.allclose(K12, np.kron(X @ X2.T, np.eye(2)), atol=1e-13)


def test_kernel_interpolator_and_predict(request):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((7, 3))
    y = rng.standard_normal(7)
    K = da.relu_ntk(X, bias=True, output_layer=True)
    c = np.asarray(da.kernel_interpolator(K, y))
    assert np.allclose(c, np.linalg.solve(np.asarray(K), y), rtol=1e-9, atol=1e-11)
    assert np.allclose(np.asarray(da.kernel_predict(K, c)), y, atol=1e-11)
    # Matrix targets and test-point predictions.
    Y = rng.standard_normal((7, 2))
    C = da.kernel_interpolator(K, Y)
    Xt = rng.standard_normal((3, 3))
    pred = np.asarray(da.kernel_predict(da.relu_ntk(Xt, X, bias=True, output_layer=True), C))
    assert pred.shape == (3, 2)
    # Singular K (duplicate point, consistent targets): min-norm coefficients K⁺y.
    Xd = np.vstack([X, X[:1]])
    Kd = np.asarray(da.relu_ntk(Xd))
    yd = np.concatenate([y, y[:1]])
    cd = np.asarray(da.kernel_interpolator(Kd, yd))
    assert np.allclose(cd, np.linalg.pinv(Kd, rcond=1e-12) @ yd, atol=1e-9)
    assert np.allclose(Kd @ cd, yd, atol=1e-9)
    with _raises_shape_error(request, "y"):
        da.kernel_interpolator(K, y[:3])
    # Under runtime checks K_test (n_test, 3) binds n = 3 and coef (7,) is the mismatch.
    with _raises_shape_error(request, "K_test", checked="coef"):
        da.kernel_predict(K[:, :3], c)
