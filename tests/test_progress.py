"""Progress on stderr (tqdm): plain lines off a terminal, the terminal's width on one,
a compiling phase before the first chunk, nothing when quiet, `simulate(progress=True)`
with the results of `progress=False`, and bars closed after Ctrl-C."""

import io
import re
import sys

import jax
import numpy as np
import pytest
from helpers import trees_equal
from tqdm import tqdm

import dynsim
from dynsim._progress import Progress
from dynsim.models import LinearNet

_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_RATE = re.compile(r"(\d+\.\d+) seeds/s")


class FakeTTY(io.StringIO):
    """A terminal without a file descriptor: its width comes from $COLUMNS."""

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")


def _screen_lines(text: str) -> list[str]:
    """What a terminal shows on each line written: the text between \\r and \\n, cursor
    movements removed."""
    return re.split(r"[\r\n]", _ESCAPE.sub("", text))


def _study_run(progress: Progress, *, points=2, chunks=2, per_chunk=4, label="init.std=0.1",
               events=None):
    """The calls the study runner makes, for `points` points of `chunks` chunks."""
    for p in range(points):
        progress.start_point(p, label)
        progress.start_compute(chunks)
        if events is not None:
            events.append(("compiling", p))
        progress.compiled()
        for c in range(chunks):
            progress.advance(per_chunk, (c + 1, chunks))
        progress.end_point()
    progress.close()


def test_not_a_terminal_gets_plain_lines_with_seeds_done_of_total():
    out = io.StringIO()
    _study_run(Progress(16, 2, stream=out, force=True, interval=0))
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text  # no redrawing in a log file
    lines = text.splitlines()
    assert lines[0] == "point 1/2 (init.std=0.1): compiling; 2 chunk(s) to compute"
    assert lines[1].startswith("point 1/2: compiled in ")
    assert lines[2].startswith("point 1/2 chunk 1/2: 4/8 seeds [")
    assert "| all points: 4/16 seeds [" in lines[2]
    assert lines[-1].startswith("point 2/2 done (init.std=0.1): 8/8 seeds [")
    assert lines[-1].endswith("]") and "all points: 16/16 seeds" in lines[-1]
    # rate and ETA on every chunk line; a rate, once shown, is not zero
    for line in lines:
        if " chunk " in line or " done " in line:
            assert "seeds/s" in line and "<" in line, line
            assert all(float(r) > 0 for r in _RATE.findall(line)), line


def test_plain_lines_are_periodic():
    """A line per chunk at most every `interval` seconds (the point's last line always)."""
    out = io.StringIO()
    _study_run(Progress(16, 2, stream=out, force=True, interval=3600), chunks=4, per_chunk=2)
    chunk_lines = [line for line in out.getvalue().splitlines() if " chunk " in line]
    assert len(chunk_lines) == 1  # the first; the rest within the hour
    assert sum(" done " in line for line in out.getvalue().splitlines()) == 2


def test_not_a_terminal_without_force_or_quiet_writes_nothing():
    for kw in ({}, {"quiet": True, "force": True}):
        out = io.StringIO()
        _study_run(Progress(16, 2, stream=out, **kw))
        assert out.getvalue() == "", kw


def test_quiet_terminal_writes_nothing():
    out = FakeTTY()
    _study_run(Progress(16, 2, stream=out, quiet=True, force=True))
    assert out.getvalue() == ""


@pytest.mark.parametrize("width", [80, 40])
def test_terminal_lines_fit_its_width(monkeypatch, width):
    monkeypatch.setenv("COLUMNS", str(width))
    out = FakeTTY()
    long_label = ", ".join(f"param{i}.value={i / 7:.6f}" for i in range(12))  # ~280 chars
    _study_run(Progress(10_000, 2, stream=out, force=True), chunks=5, per_chunk=1000,
               label=long_label)
    lines = _screen_lines(out.getvalue())
    assert max(len(line) for line in lines) < width
    if width >= 80:  # narrower terminals see the bar's left part (tqdm trims the right)
        assert any("seeds/s" in line for line in lines)
    assert out.getvalue().endswith("\n")  # the terminal is left on a fresh line


def test_terminal_width_is_read_at_every_redraw(monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    out = FakeTTY()
    progress = Progress(100, 2, stream=out)
    progress.start_point(0, "x=1")
    progress.start_compute(2)
    monkeypatch.setenv("COLUMNS", "50")  # the window shrinks
    mark = len(out.getvalue())
    progress.compiled()
    progress.advance(25, (1, 2))
    progress.close()
    assert max(len(line) for line in _screen_lines(out.getvalue()[mark:])) < 50


def test_compiling_is_shown_before_the_first_chunk_and_no_rate_before_it():
    out = FakeTTY()
    progress = Progress(8, 1, stream=out, desc="simulate")
    progress.start_point(0, "")
    progress.start_compute(2)
    before = _ESCAPE.sub("", out.getvalue())
    assert "simulate: compiling, 2 chunk(s) to compute" in before
    assert not _RATE.search(before)  # no "0.0 seeds/s" through compilation
    progress.compiled()
    compiled = _ESCAPE.sub("", out.getvalue())[len(before):]
    assert "? seeds/s" in compiled and not _RATE.search(compiled)
    progress.advance(4, (1, 2))
    progress.close()
    after = _ESCAPE.sub("", out.getvalue())
    assert after.index("compiling") < after.index("4/8 seeds")
    assert all(float(r) > 0 for r in _RATE.findall(after))


def test_stored_seeds_count_as_done_but_not_in_the_rate():
    """Resume: seeds found in the store advance the counts; the run's rate stays "?"
    until a seed is computed."""
    out = io.StringIO()
    progress = Progress(16, 2, stream=out, force=True, interval=0)
    progress.start_point(0, "a=1")
    progress.skip(8)
    progress.end_point()
    progress.start_point(1, "a=2")
    progress.skip(4)
    progress.start_compute(1)
    progress.compiled()
    progress.advance(4, (2, 2))
    progress.end_point()
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "point 1/2 (a=1): all 8 seeds already stored"
    assert "8/8 seeds" in lines[-1] and "all points: 16/16 seeds" in lines[-1]


def test_after_close_nothing_is_written():
    """A worker thread still running after Ctrl-C may report a chunk after the runner
    closed the bar: it is ignored, the terminal stays clean."""
    out = FakeTTY()
    progress = Progress(8, 2, stream=out)
    progress.start_point(0, "")
    progress.start_compute(2)
    progress.close()
    text = out.getvalue()
    progress.compiled()
    progress.advance(4, (1, 2))
    progress.end_point()
    progress.close()
    assert out.getvalue() == text and text.endswith("\n")
    assert not [b for b in tqdm._instances if b.fp is out]


# ---------------------------------------------------------------- simulate(progress=...)


@pytest.fixture(scope="module")
def data():
    return dynsim.data.regression(jax.random.key(0), 8, 5, n_test=4)


def _simulate(data, **kw):
    return dynsim.simulate(
        LinearNet(5, [3]), data, init=dynsim.init.Gaussian(0.3),
        dynamics=dynsim.GradientDescent(learning_rate=0.05, steps=40, n_save=5),
        seeds=6, chunk_size=2, key=jax.random.key(1), **kw)


def _fields(r):
    return (r.params, r.params0, r.loss, r.grad_norm, r.status, r.num_steps, r.t_final)


def test_simulate_progress_writes_to_stderr_and_changes_nothing(data, capsys):
    quiet = _simulate(data)
    assert capsys.readouterr().err == ""
    shown = _simulate(data, progress=True)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0] == "simulate: compiling"
    assert lines[1].startswith("simulate: compiled in ")
    assert any(line.startswith("simulate chunk 1/3: 2/6 seeds [") for line in lines), err
    assert trees_equal(_fields(quiet), _fields(shown))
    np.testing.assert_array_equal(quiet.seed_ids, shown.seed_ids)


def test_simulate_progress_on_a_terminal_is_closed_after_ctrl_c(data, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)

    def interrupt(lo, hi, chunk):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _simulate(data, progress=True, callback=interrupt)
    text = tty.getvalue()
    assert "compiling" in text and text.endswith("\n")
    assert max(len(line) for line in _screen_lines(text)) < 80
    assert not [b for b in tqdm._instances if b.fp is tty]


def test_simulate_progress_must_be_a_boolean(data, without_runtime_typecheck):
    with pytest.raises(ValueError, match="progress: expected True or False; got 'yes'"):
        _simulate(data, progress="yes")


# ---------------------------------------------------------------- dynsim run


def test_dynsim_run_writes_lines_to_a_log_and_nothing_when_quiet(tmp_path, capsys):
    from _study_helpers import write_study

    from dynsim._cli import main

    f = write_study(tmp_path / "s.toml", seeds=4, chunk=2, steps=50)
    assert main(["run", str(f), "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["run", str(f), "--out", str(tmp_path / "log")]) == 0
    lines = capsys.readouterr().err.splitlines()  # stderr is not a terminal here
    assert lines[0] == "point 1/2 (init.std=0.01): compiling; 2 chunk(s) to compute"
    assert any(line.startswith("point 1/2 chunk 1/2: 2/4 seeds [") for line in lines), lines
    assert lines[-1].startswith("point 2/2 done (init.std=0.1): 4/4 seeds [")
    assert "all points: 8/8 seeds" in lines[-1]
