"""Memory bounds of `simulate`: a chunk program or a result that cannot fit is refused
(naming `chunk_size` or `seeds`) after compiling and before running; the default chunk
of a large ensemble is sized from the compiled program's memory analysis."""

import jax
import numpy as np
import pytest

import dynsim
from dynsim.models import LinearNet

KEY = jax.random.key(0)


@pytest.fixture
def data():
    return dynsim.data.regression(KEY, 5, 4)




@pytest.mark.parametrize("chunk_size, name", [(None, "seeds"), (4, "chunk_size")])
def test_chunk_that_cannot_fit_is_refused_before_running(data, monkeypatch, chunk_size, name):
    from dynsim import _memory

    monkeypatch.setattr(_memory, "available_bytes", lambda device=None: 1000)
    gd = dynsim.GradientDescent(learning_rate=0.01, steps=3)
    with pytest.raises(ValueError, match=rf"^{name}: one chunk of 4 seeds needs .* device memory"):
        dynsim.simulate(LinearNet(4, [3]), data, init=dynsim.init.Gaussian(0.1), dynamics=gd,
                        seeds=4, key=KEY, chunk_size=chunk_size)


def test_results_that_cannot_fit_the_host_are_refused(data, monkeypatch):
    from dynsim import _memory

    monkeypatch.setattr(_memory, "host_available_bytes", lambda: 10_000)
    monkeypatch.setattr(_memory, "available_bytes", lambda device=None: 2**40)
    gd = dynsim.GradientDescent(learning_rate=0.01, steps=3)
    with pytest.raises(ValueError, match=r"^seeds: the results of 1000 seeds need .* host memory"):
        dynsim.simulate(LinearNet(4, [3]), data, init=dynsim.init.Gaussian(0.1), dynamics=gd,
                        seeds=1000, key=KEY, chunk_size=8)


def test_default_chunk_is_sized_from_memory(data, monkeypatch):
    """Above the probe size, the default chunk is the largest that fits the budget; the
    seeds' results are those of that chunk size given explicitly."""
    from dynsim import _memory

    monkeypatch.setattr(_memory, "AUTO_CHUNK_PROBE", 8)
    sizes = []
    real = _memory.check_fits
    monkeypatch.setattr(_memory, "check_fits", lambda c, chunk, *a, **k: (sizes.append(chunk),
                                                                           real(c, chunk, *a, **k)))
    gd = dynsim.GradientDescent(learning_rate=0.01, steps=3)
    args = dict(init=dynsim.init.Gaussian(0.1), dynamics=gd, key=KEY)
    # A budget of 2.5 probe programs: the chunk is 2.5 × 8 = 20 seeds of the 40.
    probe_bytes = []
    real_program_bytes = _memory.program_bytes
    monkeypatch.setattr(_memory, "program_bytes",
                        lambda c: (probe_bytes.append(real_program_bytes(c)[0]),
                                   real_program_bytes(c))[1])
    dynsim.simulate(LinearNet(4, [3]), data, seeds=8, chunk_size=8, **args)
    budget = 2.5 * probe_bytes[-1] / _memory.DEVICE_SHARE
    monkeypatch.setattr(_memory, "available_bytes", lambda device=None: budget)
    auto = dynsim.simulate(LinearNet(4, [3]), data, seeds=40, **args)
    assert sizes[-1] == 20
    explicit = dynsim.simulate(LinearNet(4, [3]), data, seeds=40, chunk_size=20, **args)
    np.testing.assert_array_equal(auto.params["W"][0], explicit.params["W"][0])
