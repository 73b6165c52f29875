"""The batched gradient-flow loop against the per-seed diffrax path (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim
from dynsim import Status
from dynsim._problem import Problem
from dynsim.losses import get_loss
from dynsim.models import DiagonalNet, LinearNet, TwoLayerNet

TOL = dict(rtol=1e-10, atol=1e-12)


def _both(model, data, init, seeds=4, **flow):
    out = []
    for batched in (True, False):
        gf = dynsim.GradientFlow(batched=batched, **{**TOL, **flow})
        out.append(
            dynsim.simulate(model, data, init=init, dynamics=gf, seeds=seeds, key=jax.random.key(3))
        )
    return out


def _assert_same(a, b, loss_rtol=1e-5):
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.num_steps, b.num_steps)
    np.testing.assert_allclose(a.t_final, b.t_final, rtol=1e-5)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        scale = np.max(np.abs(y))
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(a.loss, b.loss, rtol=loss_rtol, atol=1e-14)
    np.testing.assert_allclose(a.grad_norm, b.grad_norm, rtol=loss_rtol, atol=1e-12)
    np.testing.assert_allclose(a.ts, b.ts)


def test_linear_net_stop_loss():
    key = jax.random.key(0)
    data = dynsim.data.regression(key, 10, 8)
    a, b = _both(LinearNet(8, [6]), data, dynsim.init.Gaussian(0.3), t1=50.0, stop_loss=1e-6)
    assert np.all(a.status == Status.CONVERGED)
    _assert_same(a, b)
    assert np.all(a.loss[:, -1] < 1e-6)


def test_diagonal_net_log_time():
    key = jax.random.key(1)
    data = dynsim.data.sparse_regression(key, 8, 12, 2)
    a, b = _both(
        DiagonalNet(12), data, dynsim.init.Constant(0.1), seeds=2, t1=1e4, log_time=True,
        stop_grad_norm=1e-5,
    )
    _assert_same(a, b)


def test_two_layer_with_biases_end_and_max_steps():
    """A smooth activation: ReLU kinks make the accepted-step sequence depend on the last
    bits of the batched vs per-seed matmuls, so step-for-step equality is not expected
    there (tests/test_conservation.py covers ReLU)."""
    key = jax.random.key(2)
    data = dynsim.data.teacher_student(key, 12, TwoLayerNet(5, 2))
    model = TwoLayerNet(5, 6, "tanh", bias=True, output_bias=True)
    kw = dict(t1=3.0, n_save=9)
    a, b = _both(model, data, dynsim.init.Gaussian(1.0), **kw)
    assert np.all(a.status == Status.REACHED_END)
    np.testing.assert_allclose(a.t_final, 3.0)
    _assert_same(a, b)
    a, b = _both(model, data, dynsim.init.Gaussian(1.0), **{**kw, "max_steps": 5})
    assert np.all(a.status == Status.MAX_STEPS)
    np.testing.assert_array_equal(a.num_steps, 5)
    _assert_same(a, b)


def test_diverging_seed_does_not_affect_others():
    """L(θ) = −θ³/3 (x = 1): θ̇ = θ² blows up at t = 1/θ₀ for θ₀ > 0, decays otherwise."""
    model = LinearNet(1)
    loss = dynsim.losses.CustomLoss(lambda p, t: -(p**3) / 3)
    problem = Problem(model, loss, jnp.ones((1, 1)), jnp.zeros(1))
    p0 = {"W": (jnp.asarray([1.0, -1.0, -0.5]).reshape(3, 1, 1),)}
    keys = jax.random.split(jax.random.key(4), 3)
    gf = dynsim.GradientFlow(t1=2.0, divergence=1e6, n_save=5, **TOL)
    fast = jax.jit(lambda p: gf.run_batch(problem, p, keys))(p0)
    slow = jax.jit(jax.vmap(lambda p, k: gf.run(problem, p, k)))(p0, keys)
    assert fast["status"].tolist() == [Status.DIVERGED, Status.REACHED_END, Status.REACHED_END]
    np.testing.assert_array_equal(fast["status"], slow["status"])
    np.testing.assert_array_equal(fast["num_steps"], slow["num_steps"])
    # θ(2) = θ₀/(1 − 2θ₀) for the decaying seeds, 1e-8 relative at rtol 1e-10
    np.testing.assert_allclose(fast["params"]["W"][0][1:, 0, 0], [-1 / 3, -0.25], rtol=1e-8)
    # The other seeds are exactly what they are on their own.
    alone = jax.jit(lambda p: gf.run_batch(problem, p, keys[1:]))(
        jax.tree.map(lambda x: x[1:], p0)
    )
    for x, y in zip(jax.tree.leaves(fast["params"]), jax.tree.leaves(alone["params"])):
        np.testing.assert_array_equal(x[1:], y)
    np.testing.assert_array_equal(fast["num_steps"][1:], alone["num_steps"])


def test_slot_refill_gives_each_seed_its_own_result():
    """Seeds with very different fates and step counts (θ̇ = θ², as above: blow-up at
    t = 1/θ₀, decay, a stop at t = 0 where ∇L = 0, the step budget running out near a
    blow-up) through 2, 3 and 4 slots, refilled as seeds stop (at most two loaded per
    iteration: with 4 slots, the first three seeds stop at t = 0 together and leave
    three empty slots), must give bitwise the result of all seeds at once, and the
    per-seed diffrax path's statuses and step counts. (Odd slot counts ≥ 5 round
    differently in XLA's batched kernels: not bitwise, in the old loop too.)"""
    model = LinearNet(1)
    loss = dynsim.losses.CustomLoss(lambda p, t: -(p**3) / 3)
    problem = Problem(model, loss, jnp.ones((1, 1)), jnp.zeros(1))
    theta0 = jnp.asarray([0.0, 0.0, 0.0, -0.5, 1.0, 0.0, -2.0, 0.52, -1.0, 0.9, 0.3, 0.7])
    p0 = {"W": (theta0.reshape(-1, 1, 1),)}
    keys = jax.random.split(jax.random.key(4), theta0.shape[0])
    runs = {}
    for slots in (None, 2, 3, 4):
        gf = dynsim.GradientFlow(
            t1=2.0, divergence=1e6, n_save=7, stop_grad_norm=1e-12, max_steps=530, block_size=slots, **TOL
        )
        runs[slots] = jax.jit(lambda p: gf.run_batch(problem, p, keys))(p0)
    slow = jax.jit(jax.vmap(lambda p, k: gf.run(problem, p, k)))(p0, keys)
    status = runs[None]["status"].tolist()
    assert {Status.DIVERGED, Status.REACHED_END, Status.CONVERGED, Status.MAX_STEPS} <= set(status)
    assert status[2] == Status.CONVERGED and runs[None]["num_steps"][2] == 0
    for slots in (2, 3, 4):
        for x, y in zip(jax.tree.leaves(runs[slots]), jax.tree.leaves(runs[None])):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(runs[None]["status"], slow["status"])
    np.testing.assert_array_equal(runs[None]["num_steps"], slow["num_steps"])
    # The two paths round differently (fused stage sums); over ~500 steps into a blow-up
    # that moves the stop time by ~1e-11 relative (measured 1.4e-11).
    np.testing.assert_allclose(runs[None]["t_final"], slow["t_final"], rtol=1e-9)


def test_auto_slots_follow_the_working_set():
    """128 / 64 / 32 slots while 16 arrays of slots × one seed's parameters fit in 1 MiB,
    128 when nothing fits (float64 here: 8 bytes per parameter)."""
    from dynsim.dynamics.batched import auto_slots

    def batch(n_params, dtype=jnp.float64):
        return {"w": jnp.zeros((3, n_params), dtype)}

    assert auto_slots(batch(64)) == 128  # 16·128·512 B = 1 MiB
    assert auto_slots(batch(65)) == 64
    assert auto_slots(batch(200, jnp.float32)) == 64  # W2 (float32)
    assert auto_slots(batch(200)) == 32  # W2 in float64: 16·64·1,600 B > 1 MiB
    assert auto_slots(batch(300)) == 128  # 16·32·2,400 B > 1 MiB: nothing fits
    assert auto_slots(batch(1100, jnp.float32)) == 128  # W3 (float32)
    assert auto_slots({"a": jnp.zeros((5, 40)), "b": (jnp.zeros((5, 8, 3)),)}) == 128


def test_chunk_invariance():
    key = jax.random.key(5)
    data = dynsim.data.regression(key, 6, 5)
    kw = dict(init=dynsim.init.Gaussian(0.5), key=jax.random.key(7), seeds=5)
    # Chunks of at least `block_size` seeds (here 2 slots) run on the same batch shapes:
    # the guarantee of tests/test_reproducibility.py.
    gf = dynsim.GradientFlow(t1=20.0, stop_loss=1e-8, block_size=2, **TOL)
    whole = dynsim.simulate(LinearNet(5, [4]), data, dynamics=gf, **kw)
    chunked = dynsim.simulate(LinearNet(5, [4]), data, dynamics=gf, chunk_size=2, **kw)
    np.testing.assert_array_equal(whole.status, chunked.status)
    np.testing.assert_array_equal(whole.num_steps, chunked.num_steps)
    np.testing.assert_allclose(whole.loss, chunked.loss, rtol=1e-12, atol=1e-300)


def test_reverse_mode_matches_vmap_path():
    key = jax.random.key(6)
    data = dynsim.data.regression(key, 5, 4)

    def final_loss(scale, batched):
        gf = dynsim.GradientFlow(t1=2.0, n_save=3, batched=batched, **TOL)
        res = dynsim.simulate(
            LinearNet(4, [3]), data, init=dynsim.init.Gaussian(scale), dynamics=gf, seeds=2,
            key=jax.random.key(0),
        )
        return jnp.sum(res.loss[:, -1])

    g_fast = jax.grad(final_loss)(0.5, True)
    g_slow = jax.grad(final_loss)(0.5, False)
    np.testing.assert_allclose(g_fast, g_slow, rtol=1e-6)


@pytest.mark.parametrize("solver", ["dopri5", "bosh3", "heun"])
def test_other_solvers_fall_back_to_vmap(solver):
    """Solvers other than Tsit5 run `vmap` of per-seed `diffeqsolve`: the same result as
    `batched=False`, bitwise (the same program), and close to the batched Tsit5 loop."""
    import diffrax

    from dynsim.dynamics._gradient_flow import supports_batched

    make = {"dopri5": diffrax.Dopri5, "bosh3": diffrax.Bosh3, "heun": diffrax.Heun}[solver]
    kw = dict(solver=make(), t1=1.0, n_save=3, rtol=1e-9, atol=1e-11)
    gf = dynsim.GradientFlow(**kw)
    assert not supports_batched(gf)
    assert supports_batched(dynsim.GradientFlow())
    data = dynsim.data.regression(jax.random.key(0), 6, 5)
    common = dict(init=dynsim.init.Gaussian(0.3), seeds=3, key=jax.random.key(1))
    res = dynsim.simulate(LinearNet(5, [4]), data, dynamics=gf, **common)
    ref = dynsim.simulate(LinearNet(5, [4]), data, dynamics=dynsim.GradientFlow(**kw, batched=False), **common)
    tsit5 = dynsim.simulate(
        LinearNet(5, [4]), data, dynamics=dynsim.GradientFlow(t1=1.0, n_save=3, rtol=1e-11, atol=1e-13), **common
    )
    np.testing.assert_array_equal(res.loss, ref.loss)
    np.testing.assert_array_equal(res.status, dynsim.Status.REACHED_END)
    # Two solves at rtol 1e-9 and 1e-11 of the same flow: agreement to ~1e-8 relative.
    np.testing.assert_allclose(res.loss, tsit5.loss, rtol=1e-7)


def test_error_ratio_is_diffrax_error_control():
    """The fused scaled error + the controller on it (`_error_ratio`, `_on_scaled_error`)
    decide every step as diffrax's `PIDController.adapt_step_size` given the materialized
    error estimate: accepted and rejected steps, a NaN in one leaf of y1 (diffrax then
    scales that leaf by |y0|), a NaN error (rejected, counted infinite) and an
    overflowing y1."""
    from dynsim.dynamics._flow_helpers import _PIDController
    from dynsim.dynamics.batched._stepper import _error_ratio, _on_scaled_error, _stage_sum

    ctrl = _PIDController(rtol=1e-3, atol=1e-6, pcoeff=0.3, icoeff=0.4)
    unit = _on_scaled_error(ctrl)
    n = 7
    keys = jax.random.split(jax.random.key(5), 12)
    y0 = {"a": jax.random.normal(keys[0], (n, 3, 4)), "b": jax.random.normal(keys[1], (n, 5))}
    y1 = jax.tree.map(lambda x: x + 0.01, y0)
    gs = [jax.tree.map(lambda x, k=k: jax.random.normal(k, x.shape), y0) for k in keys[2:9]]
    coeffs = [0.1, -0.2, 0.3, 0.05, -0.4, 0.2, -0.05]
    # per-seed step weights: from accepted (tiny error) to rejected (large error)
    weights = [jnp.logspace(-7, -1, n) * (1 + 0.1 * j) for j in range(7)]
    nan, inf = jnp.nan, jnp.inf
    y1 = {"a": y1["a"].at[2, 0, 0].set(nan), "b": y1["b"].at[3, 1].set(inf)}
    gs[6] = {"a": gs[6]["a"], "b": gs[6]["b"].at[4, 0].set(nan)}  # seed 4: NaN error
    ratio, max_abs_y1 = _error_ratio(ctrl, y0, y1, coeffs, weights, gs)
    err = _stage_sum(None, coeffs, weights, gs)
    t0, t1 = jnp.zeros(n), jnp.full(n, 0.1)
    cstate = (jnp.full(n, 0.7), jnp.full(n, 1.3), jnp.zeros(n, bool))
    ref = jax.vmap(
        lambda a, b, c, d, e, s: ctrl.adapt_step_size(a, b, c, d, None, e, 5, s)
    )(t0, t1, y0, y1, err, cstate)
    zero = jnp.zeros(())
    got = jax.vmap(
        lambda a, b, r, s: unit.adapt_step_size(a, b, zero, zero, None, r, 5, s)
    )(t0, t1, ratio, cstate)
    keep = np.asarray(ref[0])
    assert keep[:2].all() and not keep[-2:].any() and not keep[4]  # both outcomes occur
    np.testing.assert_array_equal(got[0], ref[0])
    for g, r in zip(jax.tree.leaves(got[1:]), jax.tree.leaves(ref[1:])):
        # same decisions; the step factors differ by the rounding of the sum of squares
        # (float64, 17 terms: ~1e-15 relative, raised to the PID exponents < 1)
        np.testing.assert_allclose(g, r, rtol=1e-13)
    assert np.isinf(ratio[4]) and np.isfinite(ratio[2])
    # max|y1| per seed, NaN-propagating
    m = np.asarray(max_abs_y1)
    assert np.isnan(m[2]) and np.isinf(m[3])
    expect = [max(np.abs(np.asarray(y1["a"][i])).max(), np.abs(np.asarray(y1["b"][i])).max()) for i in (0, 1, 5, 6)]
    np.testing.assert_array_equal(m[[0, 1, 5, 6]], expect)


@pytest.mark.parametrize("fused_error", [True, False])
def test_both_error_passes_match_the_per_seed_path(fused_error):
    """The fused scaled-error pass and the materialized error estimate (chosen by size)
    both reproduce the per-seed diffrax path: statuses and step counts exactly."""
    from dynsim.dynamics._gradient_flow import run_batched

    key = jax.random.key(6)
    data = dynsim.data.regression(key, 10, 8)
    model = LinearNet(8, [6])
    problem = Problem(model, get_loss("squared"), data.X, data.y)
    keys = jax.random.split(jax.random.key(7), 5)
    p0 = jax.vmap(lambda k: dynsim.init.Gaussian(0.3)(model, data, k))(keys)
    gf = dynsim.GradientFlow(t1=50.0, stop_loss=1e-6, **TOL)
    fast = jax.jit(lambda p: run_batched(gf, problem, p, slots=2, fused_error=fused_error))(p0)
    slow = jax.jit(jax.vmap(lambda p, k: gf.run(problem, p, k)))(p0, keys)
    assert np.all(fast["status"] == Status.CONVERGED)
    np.testing.assert_array_equal(fast["status"], slow["status"])
    np.testing.assert_array_equal(fast["num_steps"], slow["num_steps"])
    # As in `_assert_same`: at rtol 1e-10 the error estimate is a ~1e-10 remainder of
    # O(1) stage values, so its rounding (fusion order) moves it by ~1e-6 relative and
    # the step sizes, hence the stop time, by less than 1e-5 (measured: up to 3.6e-6
    # between the two passes, 3e-7 from the per-seed path).
    np.testing.assert_allclose(fast["t_final"], slow["t_final"], rtol=1e-5)
    for x, y in zip(jax.tree.leaves(fast["params"]), jax.tree.leaves(slow["params"])):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-6 * np.max(np.abs(y)))
