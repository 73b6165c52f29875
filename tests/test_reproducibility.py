"""A seed's result is bitwise independent of `chunk_size` and of how many seeds run: with
`block_size` a number, always; with `"auto"`, as long as every chunk holds at least one
block of seeds.

A batch larger than one block runs in blocks of exactly `block_size` seeds (the batched
loop's slots and its initial and final quantities, the `vmap` blocks, GD's blocks), so
XLA's kernels see the same shapes whatever the chunking; a number as `block_size` pads a
smaller batch to a full block too. These tests check that in float32 and float64 on the
three paths, with blocks of 4 and 8 seeds to keep them small.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import trees_equal

import dynsim
from dynsim.models import TwoLayerNet

KEY = jax.random.key(1)
BLOCK = 4


def _data(dtype):
    reg = dynsim.data.regression(jax.random.key(0), 8, 6)
    return dynsim.data.Dataset(jnp.asarray(reg.X, dtype), jnp.asarray(reg.y, dtype))


def _gf(f32, block=BLOCK, **kw):
    tol = dict(rtol=1e-5, atol=1e-8) if f32 else dict(rtol=1e-9, atol=1e-12)
    return dynsim.GradientFlow(t1=20.0, n_save=5, block_size=block, **tol, **kw)


DYNAMICS = {
    "gf": _gf,
    "gf-vmap": lambda f32, block=BLOCK: _gf(f32, block, batched=False),
    "gd": lambda f32, block=BLOCK: dynsim.GradientDescent(learning_rate=0.01, steps=200,
                                                          n_save=5, block_size=block),
}


def _fields(r, lo, hi):
    return jax.tree.map(lambda x: x[lo:hi], (r.params, r.loss, r.grad_norm, r.status,
                                             r.num_steps, r.t_final))


CASES = [(jnp.float32, d) for d in ("gf", "gd")] + [(jnp.float64, d) for d in ("gf", "gf-vmap")]


@pytest.mark.parametrize("dtype, dynamics", CASES,
                         ids=[f"{jnp.dtype(t).name}-{d}" for t, d in CASES])
def test_bitwise_over_chunk_sizes_and_seed_counts(dtype, dynamics):
    """Seeds [0, 12) at once (3 blocks), in chunks of 8 (2 blocks) and of 4 (1 block),
    and seeds [8, 12) on their own: TwoLayerNet(tanh)."""
    dyn = DYNAMICS[dynamics](dtype == jnp.float32)
    run = lambda **kw: dynsim.simulate(TwoLayerNet(6, 16, activation="tanh"), _data(dtype),
                                       init=dynsim.init.Gaussian(0.3), dynamics=dyn, key=KEY, **kw)
    whole = run(seeds=12)
    assert np.all(whole.status != dynsim.Status.DIVERGED)
    for chunk in (8, 4):
        assert trees_equal(_fields(whole, 0, 12), _fields(run(seeds=12, chunk_size=chunk), 0, 12))
    assert trees_equal(_fields(whole, 8, 12), _fields(run(seeds=4, seed_start=8), 0, 4))


def test_bitwise_for_batches_smaller_than_an_explicit_block():
    """`block_size=8`: seeds [8, 11) on their own (a batch smaller than one block, padded
    to it) equal the same seeds in a run of [0, 12) (two blocks, the second padded), in
    float32 on the batched loop. Unpadded, this configuration differs by 1e-3 relative in
    the final parameters, with different step counts (measured when the padding was
    introduced; TwoLayerNet(6, 16) does not show it)."""
    reg = dynsim.data.regression(jax.random.key(0), 32, 20)
    data = dynsim.data.Dataset(jnp.asarray(reg.X, jnp.float32), jnp.asarray(reg.y, jnp.float32))
    run = lambda **kw: dynsim.simulate(
        TwoLayerNet(20, 64, activation="tanh"), data, init=dynsim.init.Gaussian(0.3),
        dynamics=_gf(True, 8), key=KEY, **kw)
    whole = run(seeds=12)
    assert trees_equal(_fields(whole, 8, 11), _fields(run(seeds=3, seed_start=8), 0, 3))


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
