"""Save grids start at 0 and end at t1 / step K; the steps run never depend on the grid."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim
from dynsim.models import DiagonalNet


@pytest.fixture(scope="module")
def data():
    return dynsim.data.sparse_regression(jax.random.key(0), 6, 8, 2)


@pytest.mark.parametrize("n_save", [1, 2, 3, 4, 5])
def test_default_gf_grid_ends_at_t1(n_save):
    ts = np.asarray(dynsim.GradientFlow(t1=60.0, n_save=n_save).save_times())
    assert ts.shape == (n_save,)
    assert ts[-1] == 60.0
    if n_save > 1:
        assert ts[0] == 0.0 and np.all(np.diff(ts) > 0)


@pytest.mark.parametrize("n_save", [1, 2, 3, 4, 5])
def test_default_gd_grid_ends_at_the_last_step(n_save):
    steps = dynsim.GradientDescent(0.1, steps=100, n_save=n_save).step_grid()
    assert steps[-1] == 100
    if n_save > 1:
        assert steps[0] == 0 and np.all(np.diff(steps) > 0)
    assert len(steps) == n_save


@pytest.mark.parametrize("n_save", [1, 2, 3, 5])
def test_gd_runs_all_steps_whatever_the_grid(data, n_save):
    """GD used to stop at the last save step: n_save=2 ran one step (grid [0, 1])."""
    gd = dynsim.GradientDescent(0.01, steps=40, n_save=n_save)
    res = dynsim.simulate(
        DiagonalNet(8), data, init=dynsim.init.Constant(0.3), dynamics=gd, seeds=2,
        key=jax.random.key(0),
    )
    full = dynsim.simulate(
        DiagonalNet(8), data, init=dynsim.init.Constant(0.3),
        dynamics=dynsim.GradientDescent(0.01, steps=40, save_steps=np.arange(41)), seeds=2,
        key=jax.random.key(0),
    )
    np.testing.assert_array_equal(res.num_steps, 40)
    np.testing.assert_array_equal(res.status, dynsim.Status.REACHED_END)
    np.testing.assert_allclose(res.t_final, 0.4, rtol=1e-15)
    np.testing.assert_allclose(res.ts[-1], 0.4, rtol=1e-15)
    # The last saved loss is the loss after step 40 (the same steps as a run saving every step).
    np.testing.assert_array_equal(res.loss[:, -1], full.loss[:, -1])
    for k in res.params:
        np.testing.assert_array_equal(res.params[k], full.params[k])


def test_gd_explicit_save_steps_do_not_stop_the_run(data):
    """save_steps=(0, 10, 50) with steps=500 used to stop after 50 steps."""
    common = dict(init=dynsim.init.Constant(0.3), seeds=2, key=jax.random.key(0))
    res = dynsim.simulate(
        DiagonalNet(8), data, dynamics=dynsim.GradientDescent(0.01, steps=500, save_steps=(0, 10, 50)),
        **common,
    )
    ref = dynsim.simulate(
        DiagonalNet(8), data, dynamics=dynsim.GradientDescent(0.01, steps=500, save_steps=(0, 10, 50, 500)),
        **common,
    )
    np.testing.assert_array_equal(res.num_steps, 500)
    np.testing.assert_allclose(res.ts, [0.0, 0.1, 0.5], rtol=1e-15)
    np.testing.assert_array_equal(res.loss, ref.loss[:, :3])
    for k in res.params:
        np.testing.assert_array_equal(res.params[k], ref.params[k])


@pytest.mark.parametrize(
    "dynamics, field",
    [
        (lambda: dynsim.GradientDescent(0.01, steps=10, save_steps=(0, 5, 11)), "save_steps"),
        (lambda: dynsim.GradientFlow(t1=1.0, ts=(0.0, 0.5, 1.5)), "ts"),
    ],
)
def test_save_times_beyond_the_end_are_rejected(dynamics, field):
    with pytest.raises(ValueError, match=field):
        dynamics()


@pytest.mark.parametrize("n_save", [1, 2, 3])
@pytest.mark.parametrize("batched", [True, False])
def test_gf_last_save_is_the_final_state(data, n_save, batched):
    """The last saved loss is the loss of the returned final parameters at t1."""
    flow = dynsim.GradientFlow(t1=3.0, n_save=n_save, rtol=1e-9, atol=1e-11, batched=batched)
    res = dynsim.simulate(
        DiagonalNet(8), data, init=dynsim.init.Constant(0.3), dynamics=flow, seeds=2,
        key=jax.random.key(0),
    )
    assert res.ts.shape == (n_save,) and res.ts[-1] == 3.0
    np.testing.assert_array_equal(res.t_final, 3.0)
    model = DiagonalNet(8)
    final = jax.vmap(lambda p: 0.5 * jnp.sum((model.apply(p, data.X) - data.y) ** 2))(res.params)
    np.testing.assert_allclose(res.loss[:, -1], final, rtol=1e-13)


def test_traced_t1_grid_ends_at_t1(data):
    """With t1 traced (jit over it), the grid is relative to t1 and still ends there."""

    @jax.jit
    def last_time(t1):
        return dynsim.GradientFlow(t1=t1, n_save=2).save_times()

    np.testing.assert_allclose(last_time(jnp.asarray(7.0)), [0.0, 7.0], rtol=1e-15)

    @jax.jit
    def final_loss(t1):
        res = dynsim.simulate(
            DiagonalNet(8), data, init=dynsim.init.Constant(0.3),
            dynamics=dynsim.GradientFlow(t1=t1, n_save=3, rtol=1e-9, atol=1e-11), seeds=2,
            key=jax.random.key(0),
        )
        return res.ts, res.loss[:, -1]

    ts, loss = final_loss(jnp.asarray(3.0))
    concrete = dynsim.simulate(
        DiagonalNet(8), data, init=dynsim.init.Constant(0.3),
        dynamics=dynsim.GradientFlow(t1=3.0, n_save=3, rtol=1e-9, atol=1e-11), seeds=2,
        key=jax.random.key(0),
    )
    np.testing.assert_allclose(ts[-1], 3.0, rtol=1e-15)
    # The same flow to the same t1 (save grids differ: relative vs absolute first point,
    # so steps differ): agreement to the tolerance of the solves.
    np.testing.assert_allclose(loss, concrete.loss[:, -1], rtol=1e-6)
