"""A seed's result is bitwise independent of `chunk_size` and of how many seeds run.

Each dynamics computes in blocks of a fixed number of seeds (`block_size`, the slot
count of the batched loop), padding smaller batches, so XLA's kernels see the same
shapes whatever the chunk; these tests check that in float32 and float64 on the three paths
(batched Tsit5 loop, `vmap` of diffeqsolve, GD) for a configuration whose results
changed with the chunking before.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import trees_equal

import dynsim
from dynsim.models import TwoLayerNet

KEY = jax.random.key(1)


def _case(name, dtype):
    reg = dynsim.data.regression(jax.random.key(0), 8, 6)
    cast = lambda d: dynsim.data.Dataset(jnp.asarray(d.X, dtype), jnp.asarray(d.y, dtype))
    return {"TwoLayerNet-tanh": (TwoLayerNet(6, 16, activation="tanh"), cast(reg), "squared")}[name]


def _gf(f32, **kw):
    tol = dict(rtol=1e-5, atol=1e-8) if f32 else dict(rtol=1e-9, atol=1e-12)
    return dynsim.GradientFlow(t1=20.0, n_save=5, **tol, **kw)


DYNAMICS = {
    "gf": _gf,
    "gf-vmap": lambda f32: _gf(f32, batched=False),
    "gd": lambda f32: dynsim.GradientDescent(learning_rate=0.01, steps=200, n_save=5),
}


def _fields(r, lo, hi):
    return jax.tree.map(lambda x: x[lo:hi], (r.params, r.loss, r.grad_norm, r.status,
                                             r.num_steps, r.t_final))


# Without fixed-shape blocks, TwoLayerNet's results differed here (by up to 5e-7 relative
# in float32 with different step counts, 1e-15 in float64) between these chunkings.
# (LinearNet and HomogeneousNet cases of this size agreed bitwise even then.)
CASES = [("TwoLayerNet-tanh", jnp.float32, d) for d in ("gf", "gd")] + [
    ("TwoLayerNet-tanh", jnp.float64, d) for d in ("gf", "gf-vmap")
]


@pytest.mark.parametrize("family, dtype, dynamics", CASES,
                         ids=[f"{f}-{jnp.dtype(t).name}-{d}" for f, t, d in CASES])
def test_bitwise_over_chunk_sizes_and_seed_counts(family, dtype, dynamics):
    """Seeds [0, 40) at once, in chunks of 7, and seeds [0, 3) and [37, 40) on their own."""
    model, data, loss = _case(family, dtype)
    dyn = DYNAMICS[dynamics](dtype == jnp.float32)
    run = lambda **kw: dynsim.simulate(model, data, init=dynsim.init.Gaussian(0.3), dynamics=dyn,
                                       loss=loss, key=KEY, **kw)
    whole = run(seeds=40)
    assert np.all(whole.status != dynsim.Status.DIVERGED)
    assert trees_equal(_fields(whole, 0, 40), _fields(run(seeds=40, chunk_size=7), 0, 40))
    assert trees_equal(_fields(whole, 0, 3), _fields(run(seeds=3), 0, 3))
    assert trees_equal(_fields(whole, 37, 40), _fields(run(seeds=3, seed_start=37), 0, 3))


def test_automatic_block_size_by_backend():
    """`block_size="auto"` depends on the backend and the model's size, never on the
    number of seeds (the backend is injected: the selection is tested on CPU)."""
    from dynsim.dynamics.batched import ACCELERATOR_BLOCK, auto_slots, auto_vmap_block

    small = {"w": jnp.zeros((3, 10))}  # 10 floats per seed: 16·128·80 B fits 1 MiB
    large = {"w": jnp.zeros((3, 5000))}  # 40 kB per seed: no slot count fits
    medium = {"w": jnp.zeros((3, 100))}  # 800 B: 16·64·800 B = 819 kB fits, 128 does not
    assert [auto_slots(p, backend="cpu") for p in (small, medium, large)] == [128, 64, 128]
    assert auto_slots({"w": jnp.zeros((1000, 10))}, backend="cpu") == 128
    for backend in ("gpu", "tpu"):
        assert auto_slots(small, backend=backend) == ACCELERATOR_BLOCK
        assert auto_vmap_block(backend) == ACCELERATOR_BLOCK
    assert auto_vmap_block("cpu") == 32
    assert auto_slots(small) == auto_slots(small, backend=jax.default_backend())
