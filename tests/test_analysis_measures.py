"""Per-seed measures against direct numpy computations (float64, small sizes)."""

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim
from dynsim import analysis as A


def _gf(t1=2.0, **kw):
    return dynsim.GradientFlow(t1=t1, rtol=1e-10, atol=1e-12, **kw)


@pytest.fixture(scope="module")
def lin_run():
    data = dynsim.data.regression(jax.random.key(0), 5, 7, n_test=9, out_dim=3)
    return dynsim.simulate(
        dynsim.models.LinearNet(7, [6], 3), data, init=dynsim.init.Gaussian(0.5),
        dynamics=_gf(), seeds=6, key=jax.random.key(1),
        save_conserved=True,
    )


def test_distance_cosine_numpy(lin_run):
    W1, W2 = (np.asarray(w) for w in lin_run.params["W"])
    P = np.einsum("smh,shd->smd", W2, W1)  # end-to-end (S, m, d)
    ref = np.asarray(A.min_l2_interpolator(lin_run.data.X, lin_run.data.y))  # (d, m)
    D = (P - ref.T).reshape(6, -1)
    want = np.linalg.norm(D, axis=1) / np.linalg.norm(ref)
    np.testing.assert_allclose(np.asarray(A.distance(lin_run, ref)), want, rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(A.distance(lin_run, ref.T, relative=False)), want * np.linalg.norm(ref), rtol=1e-12
    )
    Pf = P.reshape(6, -1)
    cos = Pf @ ref.T.ravel() / (np.linalg.norm(Pf, axis=1) * np.linalg.norm(ref))
    np.testing.assert_allclose(np.asarray(A.cosine(lin_run, ref)), cos, rtol=1e-12)
    with pytest.raises(ValueError, match="reference"):
        A.distance(lin_run, np.zeros(4))


def test_test_risk_direct(lin_run):
    W1, W2 = (np.asarray(w) for w in lin_run.params["W"])
    Xt, yt = np.asarray(lin_run.data.X_test), np.asarray(lin_run.data.y_test)
    pred = np.einsum("nd,shd,smh->snm", Xt, W1, W2)
    want = 0.5 * np.sum((pred - yt) ** 2, axis=(1, 2)) / Xt.shape[0]
    np.testing.assert_allclose(np.asarray(A.test_risk(lin_run)), want, rtol=1e-12)


def test_conserved_drift_gf(lin_run):
    cd = A.conserved_drift(lin_run)
    # GF at rtol 1e-10: conserved quantities drift at the solver-error level.
    assert cd.final.shape == (6,) and float(jnp.max(cd.final)) < 1e-8
    assert cd.path.shape == (6, lin_run.ts.shape[0])
    assert float(jnp.max(jnp.abs(cd.path[:, -1] - cd.final))) < 1e-14


@pytest.fixture(scope="module")
def sep_run():
    data = dynsim.data.separable(jax.random.key(2), 12, 4, margin=0.2)
    return dynsim.simulate(
        dynsim.models.LinearNet(4, [5]), data, init=dynsim.init.Gaussian(0.3), loss="exponential",
        dynamics=_gf(t1=50.0, n_save=20), seeds=4, key=jax.random.key(3), save_params=True,
    )


def test_margins_numpy(sep_run):
    X, y = np.asarray(sep_run.data.X), np.asarray(sep_run.data.y)
    W1, W2 = (np.asarray(w) for w in sep_run.params["W"])
    beta = np.einsum("sh,shd->sd", W2[:, 0], W1)
    norm2 = np.sum(W1**2, axis=(1, 2)) + np.sum(W2**2, axis=(1, 2))  # ‖θ‖², L = 2
    gamma = np.min(y * (beta @ X.T), axis=1) / norm2
    np.testing.assert_allclose(np.asarray(A.normalized_margin(sep_run)), gamma, rtol=1e-12)
    loss = np.sum(np.exp(-y * (beta @ X.T)), axis=1)
    sm = A.smoothed_margin(sep_run)
    np.testing.assert_allclose(np.asarray(sm.final), -np.log(loss) / norm2, rtol=1e-10)
    assert sm.path.shape == (4, 20)
    np.testing.assert_allclose(np.asarray(sm.path[:, -1]), np.asarray(sm.final), rtol=1e-8)
    assert np.all(np.asarray(sm.final) <= gamma + 1e-12)  # log(1/Σe^{−q}) ≤ min q
    mm = A.max_margin(X, y)
    u = beta / np.linalg.norm(beta, axis=1, keepdims=True)
    want = np.linalg.norm(u - np.asarray(mm.direction), axis=1)
    np.testing.assert_allclose(np.asarray(A.direction_error(sep_run, mm.direction)), want, rtol=1e-10)
    assert A.homogeneity_degree(sep_run.model) == 2
    assert A.homogeneity_degree(dynsim.models.HomogeneousNet(3, [4, 4])) == 3
    assert A.homogeneity_degree(dynsim.models.TwoLayerNet(3, 4)) == 2


def test_sparsity_and_support(sep_run):
    # Any vector predictor will do (β of the scalar LinearNet run); the measure is numpy-checked.
    beta = np.asarray(sep_run.predictor())
    true = np.array([True, False, True, False])
    tau = 0.5 * np.median(np.abs(beta))
    sr = A.support_recovery(sep_run, [0, 2], threshold=tau)
    est = np.abs(beta) > tau
    np.testing.assert_array_equal(np.asarray(sr.exact), np.all(est == true, axis=1))
    np.testing.assert_allclose(float(sr.fraction), np.mean(np.all(est == true, axis=1)))
    np.testing.assert_allclose(np.asarray(sr.recall), (est & true).sum(1) / 2)
    np.testing.assert_allclose(np.asarray(sr.precision), (est & true).sum(1) / np.maximum(est.sum(1), 1))
    same = A.support_recovery(sep_run, beta_true=np.array([1.0, 0, -2, 0]), threshold=tau)
    np.testing.assert_array_equal(np.asarray(same.estimated), est)
    with pytest.raises(ValueError, match="support"):
        A.support_recovery(sep_run, threshold=tau)  # separable data carry no support
    sp = A.sparsity(sep_run)
    ratio = np.abs(beta).sum(1) / np.linalg.norm(beta, axis=1)
    np.testing.assert_allclose(np.asarray(sp.l1_l2), ratio, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(sp.effective_support), ratio**2, rtol=1e-12)


def test_rates_closed_form():
    # X = s·I (n = d): r(t) = r(0)e^{−s²t}, L(t) = L(0)e^{−2s²t} for f = Xβ from β(0).
    s, d = 1.5, 3
    X = s * jnp.eye(d)
    y = jnp.array([1.0, -2.0, 0.5])
    res = dynsim.simulate(
        dynsim.models.LinearNet(d), (X, y), init=dynsim.init.Gaussian(0.1),
        dynamics=dynsim.GradientFlow(t1=8.0, ts=jnp.linspace(0, 8.0, 81), rtol=1e-12, atol=1e-14),
        seeds=3, key=jax.random.key(6),
    )
    rate = A.fitted_rate(res, window=(1e-12, 1e-1))
    np.testing.assert_allclose(rate, 2 * s**2, rtol=1e-7)  # exact exponential: solver error only
    L0 = np.asarray(res.loss[:, 0])
    eps = 1e-6 * L0.min()
    want = np.log(L0 / eps) / (2 * s**2)
    np.testing.assert_allclose(A.time_to(res, eps), want, rtol=1e-7)  # log-linear interp exact
    assert np.all(np.isinf(A.time_to(res, 1e-300)))
    np.testing.assert_allclose(A.time_to(res, 10 * L0.max()), 0.0)


def test_ntk_bound_two_layer():
    data = dynsim.data.regression(jax.random.key(7), 4, 3)
    res = dynsim.simulate(
        dynsim.models.TwoLayerNet(3, 32), data, init=dynsim.init.Gaussian(1.0),
        dynamics=dynsim.GradientFlow(t1=5.0, ts=jnp.linspace(0, 5.0, 101), rtol=1e-10, atol=1e-12),
        seeds=8, key=jax.random.key(8), save_params=True,
    )
    nb = A.ntk_rate_bound(res)
    assert bool(jnp.all(nb.holds)) and bool(jnp.all(nb.lambda_min > 0))
    np.testing.assert_allclose(np.asarray(nb.measured), 2 * np.asarray(res.loss), rtol=1e-10)
    # λ_min of K = JJᵀ at t = 0 for one seed, from jax.jacfwd directly.
    p0 = jax.tree.map(lambda x: x[2], res.params0)
    J = jax.jit(jax.jacfwd(lambda p: res.model.apply(p, data.X)))(p0)
    J = np.concatenate([np.asarray(v).reshape(4, -1) for v in jax.tree.leaves(J)], axis=1)
    np.testing.assert_allclose(float(nb.lambda_min[2, 0]), np.linalg.eigvalsh(J @ J.T)[0], rtol=1e-9)
    js = A.jacobian_spectrum(res.model, res.params0, data.X)
    np.testing.assert_allclose(float(js.sigma_min[2]), np.linalg.svd(J, compute_uv=False)[-1], rtol=1e-9)
    assert np.all(np.asarray(js.rank) == 4)
    with pytest.raises(ValueError, match="save_params"):
        A.ntk_rate_bound(dataclasses.replace(res, path=None))


def test_neuron_alignment_permuted_teacher():
    teacher = dynsim.models.TwoLayerNet(3, 3)
    tp = teacher.gaussian(jax.random.key(9), 1.0)
    data = dynsim.data.teacher_student(jax.random.key(10), 20, teacher, tp)
    perm = jnp.array([2, 0, 1, 1])  # width 4: a duplicated teacher neuron
    params = {k: jnp.stack([v[perm]] * 2) for k, v in tp.items()}  # 2 seeds
    # The measure only reads model, data and params: a stand-in result avoids a compile.
    res = types.SimpleNamespace(model=dynsim.models.TwoLayerNet(3, 4), data=data, params=params)
    al = A.neuron_alignment(res, delta=0.05)
    np.testing.assert_array_equal(np.asarray(al.best), np.broadcast_to(np.asarray(perm), (2, 4)))
    assert float(jnp.max(al.angle)) < 0.05 and np.all(np.asarray(al.recovered) == 1.0)
    w = np.concatenate([np.asarray(tp["w"]), np.asarray(tp["b"])[:, None]], 1)
    s = np.concatenate([np.asarray(res.params["w"][0]), np.asarray(res.params["b"][0])[:, None]], 1)
    cos = (s / np.linalg.norm(s, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    np.testing.assert_allclose(np.asarray(al.cosine[0]), cos, rtol=1e-12, atol=1e-14)


def test_summarize_bootstrap_coverage():
    # 400 replicate experiments of 60 seeds from N(μ, 1): the 95% bootstrap CI of the mean
    # should cover μ in ≈95% of them; a binomial(400, 0.95) stays in [0.90, 0.99] w.p. >0.999
    # (percentile bootstrap under-covers slightly at n = 60).
    rng = np.random.default_rng(0)
    mu = 0.7
    vals = mu + rng.standard_normal((60, 400))
    out = A.summarize(vals, bootstrap=1000, seed=1)
    cover = np.mean((out.ci_low.values <= mu) & (mu <= out.ci_high.values))
    assert 0.90 <= cover <= 0.99
    np.testing.assert_allclose(out["mean"].values, vals.mean(0), rtol=1e-12)
    np.testing.assert_allclose(out["std"].values, vals.std(0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(out["quantiles"].sel(quantile=0.5).values, np.median(vals, 0), rtol=1e-12)


def test_summarize_excludes_nonfinite():
    import xarray as xr

    x = np.array([1.0, 2.0, np.nan, 4.0, np.inf, 6.0])
    out = A.summarize(x, bootstrap=200)
    assert int(out["count"]) == 4 and int(out["excluded"]) == 2
    np.testing.assert_allclose(float(out["mean"]), 3.25)
    assert float(out["ci_low"]) >= 1.0 and float(out["ci_high"]) <= 6.0
    da = xr.DataArray(np.stack([x, 2 * x], 1), dims=("seed", "time"), coords={"time": [0.0, 1.0]})
    out2 = A.summarize(da, mask=np.array([1, 1, 1, 1, 1, 0], bool), bootstrap=100)
    np.testing.assert_allclose(out2["mean"].values, [7 / 3, 14 / 3])
    assert list(out2["count"].values) == [3, 3] and "time" in out2.coords
