"""Two JAX processes on localhost (jax.distributed) reproduce a single-process run."""

import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import dynsim
from dynsim._distributed import process_seed_range

WORKER = textwrap.dedent(
    """
    import sys
    import jax
    jax.config.update("jax_enable_x64", True)
    port, rank, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                               process_id=rank)
    assert jax.process_count() == 2 and jax.process_index() == rank
    import numpy as np
    import dynsim
    from dynsim._distributed import simulate_local_share
    from dynsim.models import LinearNet
    data = dynsim.data.regression(jax.random.key(0), 6, 10)
    res = simulate_local_share(
        LinearNet(10, [8]), data, seeds=7, init=dynsim.init.Gaussian(0.3),
        dynamics=dynsim.GradientFlow(t1=10.0, rtol=1e-9, atol=1e-11, n_save=6),
        key=jax.random.key(3))
    np.savez(out, seed_ids=res.seed_ids, loss=res.loss, W0=res.params["W"][0], status=res.status)
    jax.distributed.shutdown()
    """
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
    port = str(_free_port())
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, port, str(r), str(tmp_path / f"r{r}.npz")],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r in (0, 1)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    parts = [np.load(tmp_path / f"r{r}.npz") for r in (0, 1)]
    assert list(parts[0]["seed_ids"]) == [0, 1, 2, 3] and list(parts[1]["seed_ids"]) == [4, 5, 6]
    data = dynsim.data.regression(jax.random.key(0), 6, 10)
    single = dynsim.simulate(
        dynsim.models.LinearNet(10, [8]), data, seeds=7, init=dynsim.init.Gaussian(0.3),
        dynamics=dynsim.GradientFlow(t1=10.0, rtol=1e-9, atol=1e-11, n_save=6),
        key=jax.random.key(3))
    for name, ref in [("loss", single.loss), ("W0", single.params["W"][0]), ("status", single.status)]:
        np.testing.assert_array_equal(np.concatenate([q[name] for q in parts]), np.asarray(ref))


def test_process_seed_range():
    shares = [process_seed_range(10, process_index=p, process_count=3) for p in range(3)]
    assert shares == [(0, 4), (4, 3), (7, 3)]
    with pytest.raises(ValueError, match=r"^process_index:"):
        process_seed_range(10, process_index=3, process_count=3)
    with pytest.raises(ValueError, match=r"^seeds:"):
        process_seed_range(0, process_index=0, process_count=1)
