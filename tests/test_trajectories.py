"""`Trajectories`: what every dynamics returns, one seed or a leading seed axis, and
`SimulationResult.from_trajectories`, which `simulate` and the study runner build on."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim
from dynsim import Status, Trajectories
from dynsim._problem import Problem
from dynsim.losses import get_loss
from dynsim.models import LinearNet

DATA = dynsim.data.regression(jax.random.key(0), 6, 4)
MODEL = LinearNet(4, [3])
PROBLEM = Problem(MODEL, get_loss("squared"), DATA.X, DATA.y)
DYNAMICS = {
    "gf-batched": dynsim.GradientFlow(t1=2.0, n_save=4, rtol=1e-8, atol=1e-10),
    "gf-vmap": dynsim.GradientFlow(t1=2.0, n_save=4, rtol=1e-8, atol=1e-10, batched=False),
    "gd": dynsim.GradientDescent(0.05, steps=40, n_save=4),
}


def _params0(n):
    keys = jax.random.split(jax.random.key(1), n)
    return jax.vmap(lambda k: dynsim.init.Gaussian(0.5)(MODEL, DATA, k))(keys), keys


@pytest.mark.parametrize("name", sorted(DYNAMICS))
def test_one_seed_and_a_batch(name):
    """`run` gives one seed's fields without a seed axis, `run_batch` the same values
    with a leading one; fields read by attribute or by name."""
    dyn = DYNAMICS[name]
    p0, keys = _params0(3)
    batch = jax.jit(lambda p: dyn.run_batch(PROBLEM, p, keys))(p0)
    one = jax.jit(lambda p: dyn.run(PROBLEM, p, keys[1]))(jax.tree.map(lambda x: x[1], p0))
    assert isinstance(batch, Trajectories) and isinstance(one, Trajectories)
    n_ts = dyn.save_times().shape[0]
    assert one.ts.shape == (n_ts,) and batch.ts.shape == (3, n_ts)
    assert one.status.shape == () and batch.status.shape == (3,)
    assert one.status.dtype == jnp.int8 and batch.status.dtype == jnp.int8
    assert one.saved["loss"].shape == (n_ts,) and batch.saved["loss"].shape == (3, n_ts)
    assert batch.params0 is None
    assert batch["status"] is batch.status and batch["saved"] is batch.saved
    with pytest.raises(KeyError):
        batch["loss"]
    np.testing.assert_array_equal(batch.status, Status.REACHED_END)
    np.testing.assert_array_equal(one.num_steps, batch.num_steps[1])
    np.testing.assert_allclose(one.saved["loss"], batch.saved["loss"][1], rtol=1e-6)


def test_seed_axes_must_agree():
    """Under the tests' runtime type checking, the fields share one seed axis `*S`."""
    if not hasattr(Trajectories.__init__, "__wrapped__"):
        pytest.skip("runtime type checking (jaxtyping's import hook) is off")
    import jaxtyping

    with pytest.raises(jaxtyping.TypeCheckError):
        Trajectories(
            params={}, saved={}, ts=jnp.zeros((3, 5)), status=jnp.zeros(4, jnp.int8),
            num_steps=jnp.zeros(3, jnp.int32), t_final=jnp.zeros(3),
        )


def test_result_from_the_chunks_simulate_hands_out():
    """The chunks `simulate` passes to its callback (host `Trajectories` with `params0`)
    rebuild its result with `SimulationResult.from_trajectories`."""
    chunks = []
    gf = dynsim.GradientFlow(t1=2.0, n_save=4, rtol=1e-8, atol=1e-10)
    kw = dict(init=dynsim.init.Gaussian(0.5), dynamics=gf, key=jax.random.key(2))
    res = dynsim.simulate(
        MODEL, DATA, seeds=5, seed_start=3, chunk_size=2, metrics={"w0": lambda p: p["W"][0]},
        callback=lambda lo, hi, chunk: chunks.append((lo, hi, chunk)), **kw,
    )
    assert [(lo, hi) for lo, hi, _ in chunks] == [(3, 5), (5, 7), (7, 8)]
    assert all(isinstance(c, Trajectories) and c.params0 is not None for _, _, c in chunks)
    assert isinstance(chunks[-1][2].status, np.ndarray)  # host arrays
    last = dynsim.SimulationResult.from_trajectories(
        chunks[-1][2], model=MODEL, data=res.data, loss_fn=res.loss_fn, dynamics=gf,
        seed_start=7,
    )
    want = res.select(slice(4, 5))
    np.testing.assert_array_equal(last.seed_ids, [7])
    assert np.isnan(last.wall_time) and np.isnan(last.compile_time)
    for field in ("params", "params0", "ts", "loss", "grad_norm", "metrics", "status", "num_steps", "t_final", "seed_ids"):
        for x, y in zip(jax.tree.leaves(getattr(last, field)), jax.tree.leaves(getattr(want, field))):
            np.testing.assert_array_equal(x, y)
    assert last.conserved is None and last.path is None
    # the whole run from its chunks, concatenated
    whole = jax.tree.map(lambda *xs: np.concatenate(xs), *[c for _, _, c in chunks])
    again = dynsim.SimulationResult.from_trajectories(
        whole, model=MODEL, data=res.data, loss_fn=res.loss_fn, dynamics=gf, seed_start=3
    )
    fields = [f.name for f in dataclasses.fields(res) if f.name not in ("wall_time", "compile_time")]
    for field in fields:
        for x, y in zip(jax.tree.leaves(getattr(again, field)), jax.tree.leaves(getattr(res, field))):
            np.testing.assert_array_equal(x, y)
