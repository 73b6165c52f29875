"""Theory checks of the analysis measures on gradient-flow runs (Min et al. 2021; Woodworth et al. 2020), float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim
from dynsim import analysis as A
from dynsim._status import Status

# ‖r‖ ≤ 1e-11 ⇔ L = ½‖r‖² ≤ 5e-23 (implicit-bias limits are checked to 1e-6).
STOP = 5e-23
_OK = (Status.CONVERGED,)


def _flow(t1, **kw):
    return dynsim.GradientFlow(t1=t1, rtol=1e-12, atol=1e-14, stop_loss=STOP, max_steps=200_000, **kw)


@pytest.fixture(scope="module")
def sparse_data():
    return dynsim.data.sparse_regression(jax.random.key(0), 6, 12, 2, n_test=20)


@pytest.mark.parametrize("alpha", [0.1, 0.3])
def test_diagonal_reaches_implicit_bias(sparse_data, alpha):
    res = dynsim.simulate(
        dynsim.models.DiagonalNet(12), sparse_data, init=dynsim.init.Constant(alpha),
        dynamics=_flow(1e4), seeds=1, key=jax.random.key(1),
    )
    assert int(res.status[0]) in _OK  # stopped at ‖r‖ ≤ 1e-11, not at t1 / max_steps
    ref = A.implicit_bias_interpolator(sparse_data.X, sparse_data.y, alpha=alpha)
    # Residual ≤ 1e-11 and solver rtol 1e-12: the limit is reached to ~1e-11; 1e-6 is the
    # tolerance for implicit-bias limits.
    assert float(A.distance(res, ref)[0]) < 1e-6
    assert float(A.cosine(res, ref)[0]) > 1 - 1e-12


def test_diagonal_uv_reaches_its_link(sparse_data):
    res = dynsim.simulate(
        dynsim.models.DiagonalNet(12, "uv"), sparse_data, init=dynsim.init.Constant(0.5),
        dynamics=_flow(1e4), seeds=1, key=jax.random.key(1),
    )
    assert int(res.status[0]) in _OK
    ref = A.implicit_bias_interpolator(sparse_data.X, sparse_data.y, parametrization="uv", alpha=0.5)
    assert float(A.distance(res, ref)[0]) < 1e-6


@pytest.fixture(scope="module")
def reg_data():
    return dynsim.data.regression(jax.random.key(2), 5, 8, n_test=10)


def test_rowspace_init_reaches_pinv(reg_data):
    res = dynsim.simulate(
        dynsim.models.LinearNet(8, [10]), reg_data, init=dynsim.init.RowSpace(0.5),
        dynamics=_flow(1e4), seeds=4, key=jax.random.key(3),
    )
    assert np.all(np.asarray(res.status) == Status.CONVERGED)
    assert np.all(np.asarray(A.min_invariant_set(res)))
    # Inside the invariant set UVᵀ → X⁺y exactly; the residual floor 1e-11 and rtol 1e-12
    # leave ~1e-11 relative error; 1e-7 is the brief's target.
    assert np.max(np.asarray(A.distance(res, A.min_l2_interpolator(reg_data.X, reg_data.y)))) < 1e-7


@pytest.fixture(scope="module")
def min_run(reg_data):
    # 1,000 seeds of Min et al.'s shallow net, Gaussian init (not in the invariant set).
    return dynsim.simulate(
        dynsim.models.LinearNet(8, [10]), reg_data, init=dynsim.init.Gaussian(0.5),
        dynamics=dynsim.GradientFlow(t1=20.0, n_save=41, rtol=1e-10, atol=1e-12),
        seeds=1000, key=jax.random.key(4), save_params=True, chunk_size=500,
    )


def test_min_rate_bound_every_seed(min_run):
    mb = A.min_rate_bound(min_run)
    # Solver rtol 1e-10: relative slack 1e-6 on the bound is far above the loss error.
    assert bool(jnp.all(mb.holds))
    assert bool(jnp.all(A.check_min_rate_bound(min_run)))
    assert np.all(np.asarray(mb.c) >= 0) and np.mean(np.asarray(mb.c) > 0) > 0.5
    # c from a direct numpy computation for one seed (X full row rank: Φ₁ = row basis).
    X = np.asarray(min_run.data.X)
    _, s, Vt = np.linalg.svd(X)
    U = np.asarray(min_run.params0["W"][0][7]).T
    V = np.asarray(min_run.params0["W"][1][7])
    U1 = Vt[:5] @ U
    ev = np.sort(np.linalg.eigvalsh(U1.T @ U1 - V.T @ V))[::-1]
    c = max(ev[4], 0) + max(-ev[-1], 0)  # λ_5(Λ) and λ_1(−Λ) (m = 1)
    np.testing.assert_allclose(float(mb.c[7]), c, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(float(mb.rate[7]), 2 * s[4] ** 2 * c, rtol=1e-10)
    # A rate 2× too fast must be violated somewhere (the check is not vacuous).
    gap0 = np.asarray(mb.gap[:, :1])
    fast = np.exp(-2 * np.asarray(mb.rate)[:, None] * np.asarray(min_run.ts)) * gap0
    assert np.mean(np.any(np.asarray(mb.gap) > fast * 1.001, axis=1)) > 0.1


def test_min_distance_bound_and_invariants(min_run):
    md = A.min_distance_bound(min_run)
    assert bool(jnp.all(md.holds))
    assert not np.any(np.asarray(A.min_invariant_set(min_run)))
    # U₂ constant and Λ constant along GF: the conserved imbalance drifts ≤ ~rtol.
    assert float(jnp.max(A.conserved_drift(min_run).final)) < 1e-8
    # Once converged, UVᵀ − X⁺y lives in ker(X): distance = ‖U₂Vᵀ‖_F.
    done = np.asarray(min_run.loss[:, -1]) < 1e-16
    assert done.mean() > 0.5
    np.testing.assert_allclose(
        np.asarray(md.distance)[done], np.asarray(md.null_part[:, -1])[done], rtol=1e-6
    )
    assert np.all(np.asarray(md.distance)[done] <= np.asarray(md.bound[:, -1])[done])
