"""The `dynsim` command line: run, SIGINT + resume (bitwise), errors, report, demo, info."""



import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _study_helpers import small_study, write_study

import dynsim
import dynsim.study as study
from dynsim._cli import main

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # `python -m dynsim._cli`, with SIGINT raising KeyboardInterrupt as at a terminal: a
    # test run started as a background job inherits SIGINT ignored, and so would the CLI
    # (Ctrl-C could not interrupt it). Set in the child's own Python, not by a
    # `preexec_fn`: forking a multithreaded (JAX) process to run Python code can deadlock.
    launch = (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('dynsim._cli', run_name='__main__', alter_sys=True)"
    )
    return subprocess.Popen(
        [sys.executable, "-c", launch, *map(str, args)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw,
    )


def test_sigint_then_resume_is_bitwise_identical(tmp_path):
    f = write_study(tmp_path / "s.toml", seeds=32, chunk=4, steps=60_000)
    out = tmp_path / "interrupted"
    proc = _cli("run", f, "--out", out)
    first = out / "points" / "0000" / "chunk_00000.nc"
    deadline = time.time() + 120
    while not first.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no chunk written in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert "--resume" in stderr
    with pytest.raises(study.StoreError):
        study.load(out)
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"

    assert main(["run", "--resume", "--out", str(out), "--quiet"]) == 0
    assert main(["run", str(f), "--out", str(tmp_path / "clean"), "--quiet"]) == 0
    a, b = study.load(out), study.load(tmp_path / "clean")
    assert set(a.data_vars) == set(b.data_vars)
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["runs"]) == 2
    assert manifest["runs"][1]["chunks_computed"] < 16  # only the missing ones


@pytest.mark.parametrize("delay", [0.0, 1.0])
def test_sigint_while_compiling_stops_cleanly_then_resume(tmp_path, delay):
    """One Ctrl-C while the first point is compiled (before any chunk): exit 130 at once,
    no traceback, nothing committed, and `--resume` completes. (Before the fix, the
    KeyboardInterrupt could land in JAX's gc callback, was printed as "Exception ignored
    … Traceback" and lost, and the run went on to exit 0; or the process crashed at exit
    with status -11.)"""
    f = write_study(tmp_path / "s.toml", seeds=8, chunk=4, steps=2000)
    out = tmp_path / "out"
    proc = _cli("run", f, "--out", out)
    first = proc.stderr.readline()  # printed just before the point is traced and compiled
    assert first.startswith("point 1/2 (init.std=0.01): compiling; 2 chunk(s) to compute"), first
    time.sleep(delay)
    at_signal = sorted(out.rglob("chunk_*.nc"))
    proc.send_signal(signal.SIGINT)
    t0 = time.time()
    stdout, stderr = proc.communicate(timeout=120)
    latency = time.time() - t0
    after = sorted(out.rglob("chunk_*.nc"))
    info = (stdout, stderr, latency, at_signal, after)
    assert proc.returncode == 130, info
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, info
    assert "interrupted; finished chunks are saved" in stderr and "--resume" in stderr, info
    if delay == 0.0:  # the first chunk is > 2 s away: the signal came during compilation
        assert not at_signal and not after, info
    else:  # a chunk that finished as the signal arrived may still be committed
        assert len(after) <= len(at_signal) + 1, info
    assert latency < 20, info  # measured 0.05-0.15 s: it does not wait for the compile
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert main(["run", "--resume", "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["runs"]) == 2
    ds = study.load(out)
    assert ds.sizes["seed"] == 8 and np.all(np.isfinite(ds["final_loss"].values))


def test_run_report_and_errors(tmp_path, capsys):
    f = write_study(tmp_path / "s.toml", seeds=6, chunk=3, steps=100)
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out), "--set", "sweep.init.std=[0.003, 0.03, 0.3]"]) == 0
    text = capsys.readouterr().out
    assert "| init.std |" in text and "dist_min_l1" in text
    # the same directory again without --resume is refused
    assert main(["run", str(f), "--out", str(out)]) == 2
    assert "already holds results" in capsys.readouterr().err
    assert main(["report", str(out), "--quiet"]) == 0
    rep = out / "report"
    for stem in ("loss_curves", "hist_dist_min_l1", "sweep_init_std_dist_min_l1"):
        for ext in ("png", "svg"):
            assert (rep / f"{stem}.{ext}").stat().st_size > 1000, stem
    summary = (rep / "summary.md").read_text()
    assert "| init.std |" in summary
    # laws fitted only for the measures declared with one (conserved_drift, dist_min_l2)
    fitted = [line.split(" | ")[0] for line in summary.splitlines() if "| c·x^a |" in line]
    assert sorted(fitted) == ["| conserved_drift", "| dist_min_l2"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "model.dimm=3"], "--set model.dimm: model.dimm: unknown key"),
        (["--set", "run.seeds"], "--set: expected KEY=VALUE"),
        (["--set", "run.seeds=[1"], "--set: cannot parse value"),
        (["--set", "run.seeds=0"], "--set run.seeds: run.seeds: must be a positive integer"),
    ],
)
def test_cli_bad_set(tmp_path, capsys, args, message):
    f = write_study(tmp_path / "s.toml")
    assert main(["run", str(f), "--out", str(tmp_path / "o"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing ran


def test_cli_bad_file_names_line(tmp_path, capsys):
    text = small_study().replace("dim = 12", "dim = 12\nwidth = 3")
    f = write_study(tmp_path / "s.toml", text)
    assert main(["validate", str(f)]) == 2
    assert f"{f}:8: model.width: unknown key" in capsys.readouterr().err
    assert main(["run", "no_such_study", "--out", str(tmp_path / "o")]) == 2
    assert "no preset of that name" in capsys.readouterr().err


def test_presets_and_info(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("diagonal_sparse", "shallow_linear_min_norm", "relu_bias_rate",
                 "teacher_student", "exponential_margin"):
        assert name in out
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "jax" in out and "device" in out and "x64" in out


def test_demo_small(capsys):
    assert main(["demo", "--seeds", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "0.001" in out and "Wall time" in out
    # the headers say what the columns hold (test_risk is ½(f − y)², not an MSE)
    for head in ("rel. ℓ2 dist. to min-ℓ1", "rel. ℓ2 dist. to min-ℓ2", "rel. ℓ2 dist. to theory",
                 "test risk ½(f−y)²", "conserved drift"):
        assert head in out, head
    assert "MSE" not in out


def test_report_ok_counts_only_seeds_that_finished(tmp_path, capsys):
    """Seeds that end at MAX_STEPS are not ok: the summary leads with the status counts
    and marks the points where any seed is not ok."""
    text = small_study(seeds=6, chunk=3).replace(
        'kind = "gradient_descent"\nlearning_rate = 0.01\nsteps = 300',
        'kind = "gradient_flow"\nt1 = 100.0\nmax_steps = 3',
    )
    assert "max_steps = 3" in text
    f = write_study(tmp_path / "s.toml", text)
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out), "--set", "sweep.init.std=[0.01, 0.1]"]) == 0
    printed = capsys.readouterr().out
    ds = study.load(out)
    assert np.all(ds["status"].values == dynsim.Status.MAX_STEPS)  # every seed ran out
    assert main(["report", str(out), "--quiet"]) == 0
    summary = (out / "report" / "summary.md").read_text()
    for text in (printed, summary):
        table = [line for line in text.splitlines() if line.startswith("| ")]
        head = [c.strip() for c in table[0].strip("|").split("|")]
        assert head[:7] == ["init.std", "ok", "reached_end", "converged", "max_steps",
                            "diverged", "failed"]
        for line in table[1:]:
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[1] == "⚠ 0/6" and cells[2:7] == ["0", "0", "6", "0", "0"], line
        assert "⚠ 2 of 2 point(s) have seeds that are not ok" in text
        assert "ok = seeds that reached_end or converged" in text
