"""Compilation: a sweep over floats compiles once; the persistent cache (CLI, library).

No timed assertions: compilations are counted (`_simulate.TRACE_COUNT`), cache use is
read from the cache directory and from JAX's cache-hit log lines. Nothing is written to
the user's cache directory: every cache here lives under `tmp_path`.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache

import dynsim
from dynsim import GradientDescent, GradientFlow, _simulate, init, models
from dynsim._compile_cache import default_cache_dir
from dynsim.study import load_study, run_study
from dynsim.study._build import build_point

ROOT = Path(__file__).resolve().parents[1]

STUDY = textwrap.dedent(
    """\
    name = "float_sweep"
    analyses = ["final_loss", "status"]

    [model]
    kind = "DiagonalNet"
    dim = DIM

    [data]
    generator = "sparse_regression"
    seed = 1
    n = 5
    d = DIM
    k = 2

    [init]
    scheme = "Gaussian"
    std = 0.1

    [dynamics]
    DYNAMICS

    [run]
    seeds = 6
    chunk_size = 6
    key = 2
    precision = "float64"

    [sweep]
    SWEEP
    """
)


def _study(tmp_path, dim, dynamics, sweep):
    text = (STUDY.replace("DIM", str(dim)).replace("DYNAMICS", textwrap.dedent(dynamics))
            .replace("SWEEP", textwrap.dedent(sweep)))
    path = tmp_path / "study.toml"
    path.write_text(text)
    return load_study(path)


def _leaves(result):
    return jax.tree.leaves((result.params, result.params0, result.loss, result.grad_norm,
                            result.ts, result.status, result.num_steps, result.t_final))


def _assert_same_as_python_floats(st, point, reference):
    """The point's objects from the builder (arrays) and `reference` (the same
    configuration in Python floats) give bitwise equal results."""
    b = build_point(st, point["config"])
    before = _simulate.TRACE_COUNT["chunk"]
    got = dynsim.simulate(b.model, b.data, init=b.init, dynamics=b.dynamics, loss=b.loss,
                          seeds=6, chunk_size=6, key=b.key)
    assert _simulate.TRACE_COUNT["chunk"] == before, "the study's program is reused"
    model, scheme, dynamics = reference
    want = dynsim.simulate(model, b.data, init=scheme, dynamics=dynamics, loss=b.loss,
                           seeds=6, chunk_size=6, key=b.key)
    for a, c in zip(_leaves(got), _leaves(want), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(c))


def test_gradient_descent_sweep_over_floats_compiles_once(tmp_path):
    st = _study(
        tmp_path, 9,
        """\
        kind = "gradient_descent"
        learning_rate = 0.01
        steps = 150
        n_save = 5
        stop_loss = 1e-20
        divergence = 1e6
        """,
        """\
        "init.std" = [0.05, 0.2, 1.0]
        "dynamics.learning_rate" = [0.01, 0.03]
        """,
    )
    before = _simulate.TRACE_COUNT["chunk"]
    m = run_study(st, tmp_path / "out", quiet=True)
    assert m["status"] == "complete"
    assert _simulate.TRACE_COUNT["chunk"] == before + 1  # 6 points, one chunk program
    points = st.points()
    for p in (points[0], points[-1]):  # std 0.05, η 0.01; std 1.0, η 0.03 (diverges)
        std, lr = p["coords"]["init.std"], p["coords"]["dynamics.learning_rate"]
        _assert_same_as_python_floats(st, p, (
            models.DiagonalNet(9), init.Gaussian(std),
            GradientDescent(lr, steps=150, n_save=5, stop_loss=1e-20, divergence=1e6)))


def test_gradient_flow_sweep_over_floats_compiles_once(tmp_path):
    st = _study(
        tmp_path, 7,
        """\
        kind = "gradient_flow"
        t1 = 10.0
        rtol = 1e-5
        n_save = 6
        divergence = 1e6
        """,
        """\
        "init.std" = [0.05, 0.3]
        "dynamics.t1" = [5.0, 50.0]
        "dynamics.rtol" = [1e-6, 1e-5]
        """,
    )
    before = _simulate.TRACE_COUNT["chunk"]
    m = run_study(st, tmp_path / "out", quiet=True)
    assert m["status"] == "complete"
    assert _simulate.TRACE_COUNT["chunk"] == before + 1  # 8 points, one chunk program
    points = st.points()
    for p in (points[0], points[-1]):
        c = p["coords"]
        flow = GradientFlow(t1=c["dynamics.t1"], rtol=c["dynamics.rtol"], n_save=6,
                            divergence=1e6)
        _assert_same_as_python_floats(st, p, (models.DiagonalNet(7),
                                              init.Gaussian(c["init.std"]), flow))
    # the save grid of each t1 is the one GradientFlow builds from a float t1
    b = build_point(st, points[-1]["config"])
    np.testing.assert_array_equal(np.asarray(b.dynamics.ts),
                                  np.asarray(GradientFlow(t1=50.0, n_save=6).save_times()))


@pytest.fixture
def restore_cache_config():
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes", "jax_enable_compilation_cache")
    saved = {n: getattr(jax.config, n) for n in names}
    yield
    for n, v in saved.items():
        jax.config.update(n, v)
    compilation_cache.reset_cache()


def test_default_cache_dir(monkeypatch, tmp_path, restore_cache_config):
    monkeypatch.delenv("DYNSIM_CACHE_DIR", raising=False)
    jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "dynsim" / "jax"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert default_cache_dir() == Path.home() / ".cache" / "dynsim" / "jax"
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax"))  # JAX's own
    assert default_cache_dir() == tmp_path / "jax"
    monkeypatch.setenv("DYNSIM_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


def test_enable_compile_cache_after_earlier_compiles(tmp_path, restore_cache_config):
    jax.jit(lambda x: x + 1)(jnp.ones(3)).block_until_ready()  # JAX has compiled before
    path = dynsim.enable_compile_cache(tmp_path / "cache")
    assert path == tmp_path / "cache"
    jax.jit(lambda x: jnp.sin(x) * 41.5)(jnp.ones(5)).block_until_ready()
    assert any(path.glob("*-cache")), "programs compiled afterwards are cached"


def _cli(args, cache, log_compiles=False):
    env = {**os.environ, "DYNSIM_CACHE_DIR": str(cache),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if log_compiles:  # JAX then logs each persistent-cache hit as a warning
        env["JAX_LOG_COMPILES"] = "1"
    return subprocess.run([sys.executable, "-m", "dynsim._cli", *map(str, args)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=900)


HIT = "Persistent compilation cache hit for 'jit__run_chunk'"


def test_second_cli_run_loads_the_chunk_program_from_the_cache(tmp_path):
    st = tmp_path / "s.toml"
    st.write_text(STUDY.replace("DIM", "11").replace("DYNAMICS", textwrap.dedent("""\
        kind = "gradient_descent"
        learning_rate = 0.01
        steps = 50
        n_save = 3
        """)).replace("SWEEP", '"init.std" = [0.1, 0.2]'))
    cache = tmp_path / "cache"
    first = _cli(["run", st, "--out", tmp_path / "a", "--quiet"], cache, log_compiles=True)
    assert first.returncode == 0, first.stderr
    assert HIT not in first.stderr
    assert list(cache.glob("jit__run_chunk-*-cache")), "the chunk program is stored"
    n_files = len(list(cache.iterdir()))
    second = _cli(["run", st, "--out", tmp_path / "b", "--quiet"], cache, log_compiles=True)
    assert second.returncode == 0, second.stderr
    assert second.stderr.count(HIT) == 1  # one chunk program for both points, loaded
    assert len(list(cache.iterdir())) == n_files  # nothing new to store
    a, b = dynsim.study.load(tmp_path / "a"), dynsim.study.load(tmp_path / "b")
    np.testing.assert_array_equal(a["param_u"].values, b["param_u"].values)
    off = tmp_path / "off"
    third = _cli(["run", st, "--out", tmp_path / "c", "--quiet", "--no-cache"], off,
                 log_compiles=True)
    assert third.returncode == 0, third.stderr
    assert HIT not in third.stderr and not off.exists()
