"""Store integrity: only a store's own study's data load or resume; what was lost is
rebuilt from the chunks; one writer at a time; write errors and Ctrl-C in one line."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _study_helpers import write_study
from helpers import datasets_identical

import dynsim.study as study
import dynsim.study._store as store_mod
from dynsim._cli import main
from dynsim.study import StoreError, load_study, run_study
from dynsim.study._interrupt import Interrupts
from dynsim.study._runner import repair
from dynsim.study._store import Store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """An uninterrupted run of the small study (2 points x 3 chunks), and one of the same
    study with another `run.key` (same compiled program, other data and hashes)."""
    d = tmp_path_factory.mktemp("stores")
    f = write_study(d / "s.toml", seeds=10, chunk=4, steps=200)
    run_study(load_study(f), d / "ref")
    run_study(load_study(f, ["run.key=4"]), d / "other")
    return f, d / "ref", d / "other"


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dynsim: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _computed(out) -> int:
    m = json.loads((Path(out) / "manifest.json").read_text())
    return m["runs"][-1]["chunks_computed"]


# ---------------------------------------------------------------- foreign data


def test_point_directory_of_another_study_is_refused(stores, tmp_path, capsys):
    f, ref, other = stores
    out = _copy(ref, tmp_path / "out")
    shutil.rmtree(out / "points" / "0001")
    shutil.copytree(other / "points" / "0001", out / "points" / "0001")  # chunks + index
    with pytest.raises(StoreError, match=r"points/0001/index.json: belongs to another study"):
        study.load(out)
    datasets_identical(study.load(out, point=0), study.load(ref, point=0))  # point 0 is its own
    with pytest.raises(StoreError, match="belongs to another study.*not resumed"):
        run_study(None, out, resume=True)
    assert main(["run", "--resume", "--out", str(out), "--quiet"]) == 2
    _one_line_error(capsys, "points/0001/index.json", "another study")
    # refused before anything was written: the store's record and the foreign files stay
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    assert not (out / "error.log").exists()
    for a, b in zip(sorted((out / "points" / "0001").iterdir()),
                    sorted((other / "points" / "0001").iterdir())):
        assert a.read_bytes() == b.read_bytes()


def test_point_directory_of_another_point_is_refused(stores, tmp_path):
    _, ref, _ = stores
    out = _copy(ref, tmp_path / "out")
    shutil.rmtree(out / "points" / "0001")
    shutil.copytree(out / "points" / "0000", out / "points" / "0001")
    with pytest.raises(StoreError, match="belongs to another point"):
        study.load(out)
    with pytest.raises(StoreError, match="belongs to another point"):
        run_study(None, out, resume=True)


def test_foreign_chunk_with_forged_index_entry_is_refused(stores, tmp_path):
    """A chunk of another study under this store's index, its checksum written into the
    index: the chunk's own hashes still tell."""
    _, ref, other = stores
    out = _copy(ref, tmp_path / "out")
    name = "points/0000/chunk_00001.nc"
    shutil.copy(other / name, out / name)
    idx_path = out / "points" / "0000" / "index.json"
    idx = json.loads(idx_path.read_text())
    idx["chunks"]["1"]["sha256"] = store_mod.sha256_file(out / name)
    idx_path.write_text(json.dumps(idx))
    with pytest.raises(StoreError, match="chunk_00001.nc: belongs to another study"):
        study.load(out)
    with pytest.raises(StoreError, match="chunk_00001.nc: belongs to another study"):
        run_study(None, out, resume=True)


def test_foreign_chunk_without_its_index_is_recomputed(stores, tmp_path):
    """Only the chunk file copied: its checksum is not the indexed one, so it is damaged
    data, recomputed by resume."""
    _, ref, other = stores
    out = _copy(ref, tmp_path / "out")
    name = "points/0000/chunk_00001.nc"
    shutil.copy(other / name, out / name)
    with pytest.raises(StoreError, match="checksum mismatch"):
        study.load(out)
    run_study(None, out, resume=True)
    assert _computed(out) == 1
    datasets_identical(study.load(out), study.load(ref))


# ---------------------------------------------------------------- study.toml


def test_edited_study_and_deleted_chunk_refuse_resume(stores, tmp_path, capsys):
    _, ref, _ = stores
    out = _copy(ref, tmp_path / "out")
    toml = out / "study.toml"
    original = toml.read_text()
    toml.write_text(original.replace("steps = 200", "steps = 250"))
    (out / "points" / "0000" / "chunk_00001.nc").unlink()
    with pytest.raises(StoreError, match="study.toml: changed since the store was created"):
        run_study(None, out, resume=True)
    assert main(["run", "--resume", "--out", str(out), "--quiet"]) == 2
    _one_line_error(capsys, "study.toml", "changed since", "dynsim repair")
    assert not (out / "points" / "0000" / "chunk_00001.nc").exists()  # nothing computed
    # a repair does not overwrite an edited study.toml
    with pytest.raises(StoreError, match="study.toml: does not match"):
        repair(out)
    assert toml.read_text() != original
    # moved away, it is restored, and the resume gives the uninterrupted run's data
    toml.rename(out / "study.edited.toml")
    assert repair(out)["study_toml"] == "restored"
    assert toml.read_text() == original
    run_study(None, out, resume=True)
    assert _computed(out) == 1
    datasets_identical(study.load(out), study.load(ref))


def test_missing_study_toml(stores, tmp_path, capsys):
    _, ref, _ = stores
    out = _copy(ref, tmp_path / "out")
    original = (out / "study.toml").read_text()
    (out / "study.toml").unlink()
    with pytest.raises(StoreError, match="study.toml: missing.*dynsim repair"):
        run_study(None, out, resume=True)
    assert main(["run", "--resume", "--out", str(out), "--quiet"]) == 2
    _one_line_error(capsys, "study.toml: missing", f"dynsim repair {out}")
    assert main(["repair", str(out)]) == 0
    assert "restored" in capsys.readouterr().out
    assert (out / "study.toml").read_text() == original
    run_study(None, out, resume=True)
    assert _computed(out) == 0
    datasets_identical(study.load(out), study.load(ref))


# ---------------------------------------------------------------- manifest and indexes


@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage", "delete+chunk",
                                    "delete+study.toml", "delete+index"])
def test_lost_manifest_is_rebuilt_from_the_chunks(stores, tmp_path, capsys, damage):
    f, ref, _ = stores
    out = _copy(ref, tmp_path / "out")
    manifest = out / "manifest.json"
    if damage == "truncate":
        manifest.write_bytes(manifest.read_bytes()[:200])
    elif damage == "garbage":
        manifest.write_bytes(b"\x00\xff" * 10)
    else:
        manifest.unlink()
    if damage == "delete+chunk":
        (out / "points" / "0001" / "chunk_00002.nc").unlink()
    elif damage == "delete+study.toml":
        (out / "study.toml").unlink()
    elif damage == "delete+index":
        (out / "points" / "0000" / "index.json").unlink()
    for attempt in (lambda: study.load(out), lambda: run_study(None, out, resume=True),
                    lambda: run_study(load_study(f), out)):
        with pytest.raises(StoreError, match=f"dynsim repair {out}"):
            attempt()
    assert main(["run", "--resume", "--out", str(out), "--quiet"]) == 2
    _one_line_error(capsys, "manifest", f"dynsim repair {out}")
    summary = repair(out)
    assert summary["manifest"] == "rebuilt"
    m = json.loads(manifest.read_text())
    old = json.loads((ref / "manifest.json").read_text())
    for key in ("study", "source", "overrides", "config", "sweep", "run", "points",
                "study_sha256", "format"):
        assert m[key] == old[key], key
    if damage == "delete+chunk":
        assert summary["missing"] == 1 and m["status"] == "interrupted"
        with pytest.raises(StoreError, match="chunk_00002.nc"):
            study.load(out)
    else:
        assert summary["missing"] == 0 and m["status"] == "complete"
        datasets_identical(study.load(out), study.load(ref))
    run_study(None, out, resume=True)
    assert _computed(out) == (1 if damage == "delete+chunk" else 0)
    datasets_identical(study.load(out), study.load(ref))


def test_lost_index_is_rebuilt_with_the_manifest_kept(stores, tmp_path):
    """Without its index a point's chunks are not trusted (resume would recompute them);
    a repair indexes them again from their own metadata."""
    _, ref, _ = stores
    out = _copy(ref, tmp_path / "out")
    (out / "points" / "0001" / "index.json").unlink()
    with pytest.raises(StoreError, match="missing from the index"):
        study.load(out)
    summary = repair(out)
    assert summary["manifest"] == "kept" and summary["chunks"] == 6
    datasets_identical(study.load(out), study.load(ref))
    old = json.loads((ref / "points" / "0001" / "index.json").read_text())
    new = json.loads((out / "points" / "0001" / "index.json").read_text())
    assert {k: v for k, v in new.items() if k != "chunks"} == {
        k: v for k, v in old.items() if k != "chunks"}
    for c, entry in old["chunks"].items():
        assert {k: new["chunks"][c][k] for k in ("file", "start", "stop", "sha256", "bytes")} == {
            k: entry[k] for k in ("file", "start", "stop", "sha256", "bytes")}


def test_repair_leaves_out_damaged_and_foreign_chunks(stores, tmp_path):
    _, ref, other = stores
    out = _copy(ref, tmp_path / "out")
    (out / "manifest.json").unlink()
    (out / "points" / "0000" / "index.json").unlink()
    chunk = out / "points" / "0000" / "chunk_00000.nc"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    name = "points/0001/chunk_00001.nc"
    shutil.copy(other / name, out / name)
    summary = repair(out)  # the study.toml there picks this store's study
    reasons = dict(summary["left_out"])
    assert reasons[name] == "belongs to another study"
    assert "points/0000/chunk_00000.nc" in reasons
    assert summary["chunks"] == 4 and summary["missing"] == 2
    run_study(None, out, resume=True)
    assert _computed(out) == 2
    datasets_identical(study.load(out), study.load(ref))


def test_repair_without_metadata_says_so(tmp_path):
    (tmp_path / "points" / "0000").mkdir(parents=True)
    (tmp_path / "points" / "0000" / "chunk_00000.nc").write_bytes(b"not netcdf")
    with pytest.raises(StoreError, match="nothing to rebuild it from"):
        repair(tmp_path)
    with pytest.raises(StoreError, match="no such directory"):
        repair(tmp_path / "nothing")


def test_old_format_loads_but_does_not_resume(stores, tmp_path):
    _, ref, _ = stores
    out = _copy(ref, tmp_path / "out")
    m = json.loads((out / "manifest.json").read_text())
    m["format"] = "dynsim-study/1"
    for key in ("study_sha256", "study_text"):
        del m[key]
    (out / "manifest.json").write_text(json.dumps(m))
    datasets_identical(study.load(out), study.load(ref))
    with pytest.raises(StoreError, match="older dynsim.*cannot be resumed"):
        run_study(None, out, resume=True)
    with pytest.raises(StoreError, match="older dynsim.*cannot be repaired"):
        repair(out)


# ---------------------------------------------------------------- one writer


def test_second_writer_is_refused(stores, tmp_path, capsys):
    f, ref, _ = stores
    out = _copy(ref, tmp_path / "out")
    (out / "points" / "0000" / "chunk_00001.nc").unlink()
    with Store(out).lock():  # another process's run, as far as flock can tell
        with pytest.raises(StoreError, match=r"another dynsim process \(pid \d+\) is writing"):
            run_study(None, out, resume=True)
        with pytest.raises(StoreError, match="another dynsim process"):
            repair(out)
        assert main(["run", "--resume", "--out", str(out), "--quiet"]) == 2
        _one_line_error(capsys, "another dynsim process", "is writing to it")
    with Store(tmp_path / "new").lock():
        with pytest.raises(StoreError, match="another dynsim process"):
            run_study(load_study(f), tmp_path / "new")
    run_study(None, out, resume=True)  # released
    assert _computed(out) == 1


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    launch = (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('dynsim._cli', run_name='__main__', alter_sys=True)"
    )
    return subprocess.Popen([sys.executable, "-c", launch, *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=120):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"{path} not written in time"
        time.sleep(0.02)


def test_parallel_resume_refused_then_two_quick_ctrl_c_then_resume(tmp_path, capsys):
    """A run in another process and a `--resume` of its store: the resume is refused in
    one line. Two SIGINTs 50 ms apart as that run starts (its point being built or
    compiled) end it with exit 130 and one line, no traceback from JAX's clean-up at
    exit. Resumed, every chunk has been computed once, and the run log holds both runs."""
    f = write_study(tmp_path / "s.toml", seeds=8, chunk=4, steps=2000)
    out = tmp_path / "out"
    proc = _cli("run", f, "--out", out)
    _wait_for(out / "manifest.json", proc)
    assert main(["run", "--resume", "--out", str(out), "--quiet"]) == 2
    _one_line_error(capsys, "another dynsim process", f"pid {proc.pid}")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("point ")]
    assert len(lines) == 1 and "interrupted" in lines[0], stderr
    assert main(["run", "--resume", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and len(m["runs"]) == 2
    assert sum(r["chunks_computed"] for r in m["runs"]) == 4
    assert m["runs"][0]["status"] == "interrupted"


# ---------------------------------------------------------------- --out and write errors


def test_out_that_is_a_file(stores, tmp_path, capsys):
    f, _, _ = stores
    file = tmp_path / "file"
    file.write_text("x")
    for out in (file, file / "sub"):
        assert main(["run", str(f), "--out", str(out), "--quiet"]) == 2
        _one_line_error(capsys, "is a file, not a directory")
        assert main(["run", "--resume", "--out", str(out), "--quiet"]) == 2
        _one_line_error(capsys, "is a file, not a directory")
    assert file.read_text() == "x"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    assert main(["run", str(f), "--out", str(mine), "--quiet"]) == 2
    _one_line_error(capsys, "directory exists and is not empty (notes.txt)")
    assert sorted(x.name for x in mine.iterdir()) == ["notes.txt"]  # no lock file left


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_out_not_writable(stores, tmp_path, capsys, monkeypatch, code):
    """A read-only mount or a directory without write permission (the tests run as
    root, for whom permissions do not apply: the error is injected where the store
    first writes)."""
    f, _, _ = stores
    parent = tmp_path / "ro"
    parent.mkdir()
    real_open = os.open

    def fake_open(path, flags, *a, **k):
        if str(path).startswith(str(parent)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", fake_open)
    assert main(["run", str(f), "--out", str(parent), "--quiet"]) == 2
    line = _one_line_error(capsys, "cannot write", os.strerror(code), "use a writable --out")
    assert str(parent) in line


def test_disk_full_then_resume_is_bitwise(stores, tmp_path, capsys, monkeypatch):
    """ENOSPC from the third chunk on (every later write fails too, as on a full disk):
    one line naming the problem and `--resume`; after space is freed, the resume gives
    the uninterrupted run's data."""
    f, ref, _ = stores
    out = tmp_path / "out"
    full = {"on": False, "chunks": 0}
    real_nc, real_bytes = store_mod.atomic_write_netcdf, store_mod.atomic_write_bytes

    def nc(path, ds):
        full["chunks"] += 1
        if full["chunks"] == 3:
            full["on"] = True
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_nc(path, ds)

    def raw(path, data):
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_bytes(path, data)

    monkeypatch.setattr(store_mod, "atomic_write_netcdf", nc)
    monkeypatch.setattr(store_mod, "atomic_write_bytes", raw)
    assert main(["run", str(f), "--out", str(out), "--quiet"]) == 2
    _one_line_error(capsys, "No space left on device", "chunk_00002.nc",
                    f"dynsim run --resume --out {out}")
    assert len(list(out.rglob("chunk_*.nc"))) == 2 and not list(out.rglob("*.tmp-*"))
    monkeypatch.undo()  # space freed
    assert main(["run", "--resume", "--out", str(out), "--quiet"]) == 0
    assert _computed(out) == 4
    datasets_identical(study.load(out), study.load(ref))


def test_netcdf_error_on_a_full_disk_is_enospc(tmp_path, monkeypatch):
    """The netCDF library reports a full disk as RuntimeError('NetCDF: HDF error')."""
    import xarray as xr

    class Full:
        def to_netcdf(self, path, engine):
            Path(path).write_bytes(b"partial")
            raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(store_mod.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 1, 0))
    with pytest.raises(OSError) as info:
        store_mod.atomic_write_netcdf(tmp_path / "c.nc", Full())
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "c.nc")
    assert not list(tmp_path.iterdir())  # no partial file left
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="HDF error"):  # with space left: as raised
        store_mod.atomic_write_netcdf(tmp_path / "c.nc", Full())
    store_mod.atomic_write_netcdf(tmp_path / "c.nc", xr.Dataset({"a": ("x", [1.0])}))


# ---------------------------------------------------------------- Ctrl-C


def test_final_guard_leaves_sigint_ignored_after_an_interrupt():
    before = signal.getsignal(signal.SIGINT)
    try:
        with Interrupts(final=True):
            pass
        assert signal.getsignal(signal.SIGINT) is before  # no interrupt: restored
        with pytest.raises(KeyboardInterrupt), Interrupts(final=True) as guard:
            guard.requested.set()
            guard.check()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.signal(signal.SIGINT, before)
        with pytest.raises(KeyboardInterrupt), Interrupts() as guard:
            guard.requested.set()
            guard.check()
        assert signal.getsignal(signal.SIGINT) is before  # a library guard restores it
    finally:
        signal.signal(signal.SIGINT, before)
