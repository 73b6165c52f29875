"""Initializations and data generators: the properties their docstrings promise."""

import jax
import numpy as np
import pytest

import dynsim
from dynsim.models import DiagonalNet, LinearNet, TwoLayerNet

KEY = jax.random.key(3)


def _data(d=6, m=None, n=4):
    return dynsim.data.regression(KEY, n, d, out_dim=m)


@pytest.mark.parametrize("hidden", [[5], [5, 4, 6]])
def test_balanced_init_is_balanced_and_ratio_keeps_product(hidden):
    model = LinearNet(3, hidden, 2)
    data = _data(3, 2)
    p = dynsim.init.Balanced(std=0.7)(model, data, KEY)
    for D in model.conserved(p).values():
        assert np.max(np.abs(D)) < 1e-12
    q = dynsim.init.Balanced(std=0.7, ratio=2.0)(model, data, KEY)
    np.testing.assert_allclose(model.predictor(q), model.predictor(p), atol=1e-12)
    D = model.conserved(q)["imbalance1"]
    assert np.max(np.abs(D)) > 0.1


def test_gaussian_width_exponent_scales_std():
    model = LinearNet(10, [4000])
    p = dynsim.init.Gaussian(std=1.0, width_exponent=0.5)(model, _data(10), KEY)
    # sample std of 40,000 N(0, 1/4000) entries: relative error ~ 1/√(2·40000) ≈ 0.4%
    assert np.std(np.asarray(p["W"][0])) == pytest.approx(4000**-0.5, rel=0.02)


def test_rowspace_init_and_min_norm_limit():
    """U₂(0) = 0 ⇒ GF converges to exactly X⁺y (Min et al.)."""
    data = dynsim.data.regression(KEY, 5, 12)
    model = LinearNet(12, [20])
    p = dynsim.init.RowSpace(0.3)(model, data, KEY)
    X = np.asarray(data.X)
    P_null = np.eye(12) - np.linalg.pinv(X) @ X
    assert np.max(np.abs(np.asarray(p["W"][0]) @ P_null)) < 1e-12
    flow = dynsim.GradientFlow(t1=1e3, rtol=1e-12, atol=1e-14, stop_loss=1e-26)
    res = dynsim.simulate(model, data, init=dynsim.init.RowSpace(0.3), dynamics=flow, seeds=3, key=KEY)
    beta_star = np.linalg.lstsq(X, np.asarray(data.y), rcond=None)[0]
    beta = np.asarray(res.predictor())
    assert np.max(np.linalg.norm(beta - beta_star, axis=1)) / np.linalg.norm(beta_star) < 1e-7


def test_constant_init_diagonal():
    data = _data(6)
    p = dynsim.init.Constant(0.1)(DiagonalNet(6), data, KEY)
    assert np.all(p["u"] == 0.1) and np.all(DiagonalNet(6).predictor(p) == 0)
    q = dynsim.init.Constant(0.1, shape=2.0)(DiagonalNet(6, "uv"), data, KEY)
    np.testing.assert_allclose(q["u"], 0.2, rtol=1e-15)  # u₀ = α·s
    np.testing.assert_allclose(q["v"], 0.05, rtol=1e-15)  # v₀ = α/s
    r = dynsim.init.Constant(0.1, dense_init=0.5)(DiagonalNet(6, "uu-vv+w"), data, KEY)
    np.testing.assert_allclose(r["w"], 0.5)


def test_orthogonal_init():
    model = LinearNet(6, [6], 6)
    p = dynsim.init.Orthogonal(gain=2.0)(model, _data(6, 6), KEY)
    W = np.asarray(p["W"][0])
    np.testing.assert_allclose(W @ W.T, 4.0 * np.eye(6), atol=1e-12)


def test_whitened_data():
    S = [2.0, 0.5]
    d = dynsim.data.whitened(KEY, 10, 4, S, out_dim=3)
    X, Y = np.asarray(d.X), np.asarray(d.y)
    np.testing.assert_allclose(X.T @ X, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(np.linalg.svd(Y.T @ X, compute_uv=False)[:2], S, rtol=1e-12)


def test_sparse_and_separable_and_pairwise():
    d = dynsim.data.sparse_regression(KEY, 20, 50, 3, n_test=7, noise=0.0)
    assert d.X_test.shape == (7, 50) and int(np.sum(d.info["beta"] != 0)) == 3
    np.testing.assert_allclose(d.y, d.X @ d.info["beta"], atol=1e-12)
    s = dynsim.data.separable(KEY, 30, 5, margin=0.4, n_test=10)
    assert np.all(np.asarray(s.y * (s.X @ s.info["w_star"])) >= 0.4 - 1e-12)
    assert set(np.unique(np.asarray(s.y))) == {-1.0, 1.0}
    p = dynsim.data.pairwise_independent(KEY, 15, 3, min_angle=0.05)
    G = np.abs(np.asarray(p.X @ p.X.T))
    assert np.max(G - 2 * np.eye(15)) <= np.cos(0.05) + 1e-12
    np.testing.assert_allclose(np.linalg.norm(p.X, axis=1), 1.0)


def test_teacher_student_data():
    teacher = TwoLayerNet(4, 2, "relu", bias=False)
    d = dynsim.data.teacher_student(KEY, 12, teacher, n_test=5)
    np.testing.assert_allclose(d.y, teacher.apply(d.info["teacher_params"], d.X), atol=1e-12)
    assert d.y_test.shape == (5,)


def test_generators_are_deterministic():
    a = dynsim.data.sparse_regression(KEY, 10, 20, 2)
    b = dynsim.data.sparse_regression(KEY, 10, 20, 2)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
