"""Seeds sharded over several devices (4 fake CPU devices in a fresh interpreter)."""

import os
import subprocess
import sys
import textwrap

import jax
import pytest

import dynsim

SCRIPT = textwrap.dedent(
    """
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    import dynsim
    from dynsim import _simulate
    from dynsim.models import LinearNet, DiagonalNet

    assert len(jax.devices()) == 4, jax.devices()
    data = dynsim.data.regression(jax.random.key(0), 6, 10)
    for model, init, dyn in [
        (LinearNet(10, [8]), dynsim.init.Gaussian(0.3),
         dynsim.GradientFlow(t1=20.0, rtol=1e-9, atol=1e-11, stop_loss=1e-12, n_save=8, block_size=2)),
        (DiagonalNet(10), dynsim.init.Gaussian(0.2),
         dynsim.GradientDescent(learning_rate=0.02, steps=200, n_save=8)),
    ]:
        kw = dict(init=init, dynamics=dyn, seeds=10, key=jax.random.key(3))
        one = dynsim.simulate(model, data, **kw)
        n = _simulate.TRACE_COUNT["chunk"]
        four = dynsim.simulate(model, data, devices="all", chunk_size=5, **kw)
        assert _simulate.TRACE_COUNT["chunk"] == n + 1  # one compilation for 2 sharded chunks
        np.testing.assert_array_equal(one.status, four.status)
        np.testing.assert_array_equal(one.num_steps, four.num_steps)
        # Each device integrates its 2 seeds as one block; one device runs 5 blocks of 2
        # in a loop. XLA compiles the two programs differently and the matrix kernels
        # round differently at the ULP level, which 10^2-10^3 adaptive steps carry to
        # ~1e-12 relative (measured 7e-12 at most). GD (fixed steps) stays bitwise.
        for a, b in zip(jax.tree.leaves((one.params, one.loss)), jax.tree.leaves((four.params, four.loss))):
            if isinstance(dyn, dynsim.GradientDescent):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            else:
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-14)
    print("SHARDED_OK")
    """
)


def test_sharded_over_four_devices_matches_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SHARDED_OK" in out.stdout


def test_bad_devices():
    data = dynsim.data.regression(jax.random.key(0), 4, 3)
    with pytest.raises(ValueError, match=r"^devices:"):
        dynsim.simulate(dynsim.models.LinearNet(3), data, init=dynsim.init.Gaussian(0.1),
                        dynamics=dynsim.GradientFlow(t1=1.0), seeds=2, key=jax.random.key(0),
                        devices="gpu")
