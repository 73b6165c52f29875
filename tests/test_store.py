"""The results store: atomic checksummed chunks, corruption detection, resume = bitwise."""



import json

import pytest
from _study_helpers import write_study
from helpers import datasets_identical

import dynsim.study as study
from dynsim.study import StoreError, load_study, run_study
from dynsim.study._store import Store


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    f = write_study(d / "s.toml", seeds=10, chunk=4, steps=200)
    run_study(load_study(f), d / "out")
    return f, d / "out"


def test_layout(reference):
    _, out = reference
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and m["format"] == "dynsim-study/2"
    assert len(m["study_sha256"]) == 64 and all(len(pt["sha256"]) == 64 for pt in m["points"])
    assert {"jax", "diffrax", "python"} <= set(m["versions"])
    assert m["devices"] and m["run"]["chunk_size"] == 4
    index = json.loads((out / "points" / "0001" / "index.json").read_text())
    assert sorted(index["chunks"]) == ["0", "1", "2"]
    assert index["study_sha256"] == m["study_sha256"]
    assert index["point_sha256"] == m["points"][1]["sha256"] != m["points"][0]["sha256"]
    assert [(e["start"], e["stop"]) for e in index["chunks"].values()] == [(0, 4), (4, 8), (8, 10)]
    assert all(len(e["sha256"]) == 64 for e in index["chunks"].values())
    assert (out / "study.toml").is_file()
    assert not list(out.rglob("*.tmp-*"))


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "unindexed"])
def test_corrupt_chunk_detected_and_recomputed(reference, tmp_path, damage):
    f, ref = reference
    out = _copy(ref, tmp_path / "out")
    chunk = out / "points" / "0000" / "chunk_00001.nc"
    if damage == "flip":
        raw = bytearray(chunk.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        chunk.write_bytes(bytes(raw))
    elif damage == "truncate":
        chunk.write_bytes(chunk.read_bytes()[:100])
    elif damage == "delete":
        chunk.unlink()
    else:  # file present but never recorded: must not be trusted
        idx_path = out / "points" / "0000" / "index.json"
        idx = json.loads(idx_path.read_text())
        del idx["chunks"]["1"]
        idx_path.write_text(json.dumps(idx))
    with pytest.raises(StoreError, match="chunk_00001.nc"):
        study.load(out)
    m = run_study(None, out, resume=True)
    assert m["runs"][-1]["chunks_computed"] == 1
    datasets_identical(study.load(out), study.load(ref))


def test_resume_of_complete_store_computes_nothing(reference, tmp_path):
    _, ref = reference
    out = _copy(ref, tmp_path / "out")
    m = run_study(None, out, resume=True)
    assert m["runs"][-1]["chunks_computed"] == 0


def test_resume_checks_study(reference, tmp_path):
    f, ref = reference
    out = _copy(ref, tmp_path / "out")
    with pytest.raises(StoreError, match="different study"):
        run_study(load_study(f, ["dynamics.steps=201"]), out, resume=True)
    with pytest.raises(StoreError, match="already holds results"):
        run_study(load_study(f), out)
    with pytest.raises(StoreError, match="not a dynsim results directory"):
        run_study(None, tmp_path / "nothing", resume=True)


def test_partial_run_then_resume_bitwise(reference, tmp_path):
    """Stop after some chunks (exception from the store), resume, compare."""
    f, ref = reference
    out = tmp_path / "out"
    calls = {"n": 0}
    original = Store.commit_chunk

    def failing(self, *a, **k):
        if calls["n"] == 3:
            raise KeyboardInterrupt
        calls["n"] += 1
        return original(self, *a, **k)

    Store.commit_chunk = failing
    try:
        with pytest.raises(KeyboardInterrupt):
            run_study(load_study(f), out)
    finally:
        Store.commit_chunk = original
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "interrupted"
    m = run_study(None, out, resume=True)
    assert m["runs"][-1]["chunks_computed"] == 3
    datasets_identical(study.load(out), study.load(ref))


def test_tmp_files_are_cleaned(reference, tmp_path):
    _, ref = reference
    out = _copy(ref, tmp_path / "out")
    junk = out / "points" / "0000" / ".chunk_00000.nc.tmp-123"
    junk.write_bytes(b"partial")
    run_study(None, out, resume=True)
    assert not junk.exists()
