"""Run a study into a results store, chunk by chunk; resume recomputes only what is missing."""

import contextlib
import datetime
import importlib.metadata as md
import json
import platform
import time
import traceback
from pathlib import Path

import jax
import numpy as np

from .._progress import Progress
from .._result import SimulationResult
from ._analyses import Analyzer
from ._build import build_point
from ._config import Study, parse_study, run_options
from ._errors import StoreError, StudyError
from ._interrupt import Interrupts, Stopped
from ._load import load_study
from ._store import (
    ATTR,
    FORMAT,
    LOCK_NAME,
    Store,
    atomic_write_bytes,
    canonical_json,
    chunk_ranges,
    data_sha256,
    index_header,
    sha256_file,
    study_sha256,
)

MAX_CHUNKS_PER_CALL = 16  # bounds host memory held by one `simulate` call


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("dynsim", "jax", "jaxlib", "diffrax", "equinox", "optax", "numpy", "scipy",
                "xarray", "netCDF4"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            if pkg == "dynsim":
                # deferred: dynsim/__init__.py sets __version__ after importing this package
                from .. import __version__

                out[pkg] = __version__
    return out


def devices() -> list[str]:
    return [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip() for d in jax.devices()]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _canonical(cfg: dict) -> str:
    return json.dumps(cfg, sort_keys=True, default=str)


def _study_json(study: Study) -> str:
    """The study as every chunk stores it: enough to rebuild the manifest and study.toml."""
    return canonical_json({"name": study.name, "source": study.path,
                           "overrides": list(study.overrides), "text": study.source,
                           "config": study.config})


def _headers(study: Study) -> list[dict]:
    """Every point's index header (its hashes), in point order."""
    run, h = run_options(study.config), study_sha256(study.config)
    return [index_header(i, p["coords"], p["config"], run, h) for i, p in enumerate(study.points())]


def _new_manifest(study: Study) -> dict:
    headers = _headers(study)
    return {
        "format": FORMAT,
        "study": study.name,
        "description": study.config.get("description", ""),
        "source": study.path,
        "overrides": list(study.overrides),
        "study_sha256": study_sha256(study.config),
        "study_text": study.source,
        "config": study.config,
        "sweep": study.sweep_keys(),
        "run": run_options(study.config),
        "points": [{"index": i, "coords": h["coords"], "dir": f"points/{i:04d}",
                    "sha256": h["point_sha256"]} for i, h in enumerate(headers)],
        "versions": versions(),
        "devices": devices(),
        "x64": bool(jax.config.jax_enable_x64),
        "status": "created",
        "created": _now(),
        "runs": [],
        "timings": {},
    }


def _stored_study(store: Store, m: dict) -> Study:
    """The study a store was created with, from its study.toml and the manifest's
    overrides, checked against the manifest's study hash."""
    out = store.root
    if not store.study_path.is_file():
        raise StoreError(
            f"{store.study_path}: missing (the study this results directory was created "
            f"with); `dynsim repair {out}` restores it, then resume")
    try:
        text = store.study_path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise StoreError(f"{store.study_path}: unreadable ({e}); move it away and "
                         f"`dynsim repair {out}` restores it") from None
    try:
        stored = load_study(m["source"], m.get("overrides", []), source=text, path=m["source"])
    except StudyError as e:
        n = store.finished_chunks(m)
        raise StoreError(
            f"{out}: cannot resume, the study it holds is invalid ({e}); "
            + (f"its {n} finished chunk(s) cannot be continued: use a new --out"
               if n else "nothing was finished: run the corrected study with the same --out")
        ) from None
    h = study_sha256(stored.config)
    if h != m.get("study_sha256"):
        raise StoreError(
            f"{store.study_path}: changed since the store was created (study hash "
            f"{h[:12]}, manifest {str(m.get('study_sha256'))[:12]}); resuming would mix two "
            f"configurations: move it away and `dynsim repair {out}` restores the original, "
            "or use a new --out")
    return stored


def open_for_run(study: Study | None, store: Store, *, resume: bool,
                 log=None) -> tuple[Study, dict]:
    """Create the store (new run) or reopen it (resume) and check it matches the study;
    the caller holds the store's lock.

    A plain (not `resume`) run into a store whose last run failed, was interrupted or
    died before any chunk was finished starts over there (`log` is told); with finished
    chunks it is refused, pointing to `--resume`. A resumed store must be of the current
    format, hold its study.toml unchanged (the manifest's study hash) and, if `study` is
    given, that study.
    """
    out = store.root
    if resume:
        m = store.read_manifest()
        store.check_current(m, "resumed")
        stored = _stored_study(store, m)
        if study is not None and _canonical(study.config) != _canonical(stored.config):
            raise StoreError(
                f"{out}: holds a different study (or different --set values) than the one "
                "given; resume without STUDY or use a new --out"
            )
        if m["run"] != run_options(stored.config):
            raise StoreError(f"{out}: run options changed since the store was created")
        if [pt.get("sha256") for pt in m["points"]] != [h["point_sha256"] for h in _headers(stored)]:
            raise StoreError(f"{store.manifest_path}: its sweep points do not match its study; "
                             f"move it away and `dynsim repair {out}` rebuilds it")
        return stored, m
    if study is None:
        raise StudyError("study", "give a STUDY file (or preset name), or --resume")
    if store.exists():
        old = store.read_manifest()
        status = old.get("status")
        n = store.finished_chunks(old)
        # under the lock, a store still marked running or created is a run that died
        if status in ("failed", "interrupted", "running", "created") and n == 0:
            store.reset()
            if log is not None:
                what = {"failed": "failed", "interrupted": "was interrupted"}.get(status, "stopped")
                log(f"{out} held a run that {what} before any chunk was finished; "
                    "starting over")
        elif status == "failed":
            raise StoreError(
                f"{out}: holds a run that failed ({old.get('error', 'see error.log')}) after "
                f"{n} finished chunk(s); continue it with `dynsim run --resume --out {out}`, "
                "or use a new --out"
            )
        else:
            raise StoreError(f"{out}: already holds results; use --resume to continue, or a new --out")
    elif store.chunk_files():
        raise StoreError(f"{out}: holds chunks but no manifest.json; `dynsim repair {out}` "
                         "rebuilds it from their metadata, then --resume continues")
    else:
        # an empty directory, or a creation that died before its manifest was written
        leftover = [f.name for f in out.iterdir() if f.name not in (LOCK_NAME, "study.toml", "points")]
        if leftover:
            raise StoreError(f"{out}: directory exists and is not empty ({leftover[0]})")
        store.reset()
    with store.writing():
        atomic_write_bytes(store.study_path, study.source.encode())
        m = _new_manifest(study)
        store.write_manifest(m)
    return study, m


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def run_study(study: Study | str | Path | None, out: str | Path, *, resume: bool = False,
              quiet: bool = True, progress=None, log=None, interrupts=None) -> dict:
    """Run (or resume) `study` into the store at `out`; returns the final manifest.

    If the run fails, the store is marked `"failed"` with a one-line `error` in the
    manifest and the traceback in `out/error.log`, and the exception propagates; a plain
    rerun starts over when no chunk was finished, `resume=True` continues otherwise.
    `log(message)`, if given, receives notes for the user (e.g. starting over).

    Ctrl-C (SIGINT) stops the run within a fraction of a second, also while compiling:
    the store is marked `"interrupted"` and `KeyboardInterrupt` is raised; the
    computation in flight is abandoned to a worker thread, which commits nothing more
    (see `_interrupt.py`; `interrupts` lets a caller hold the same guard around more).

    Seeds are computed in chunks of `run.chunk_size`; each finished chunk is persisted
    (with its per-seed analyses) before the next starts. Every chunk is always computed
    by the same compiled function with the same seed positions, so a resumed run's data
    equal an uninterrupted run's bitwise.

    The store's lock (`Store.lock`) is held from before the store is read until the run
    ends: one process writes a store at a time.

    **Raises:** `StoreError` (one line, naming the file) if another process is writing
    the store; if a resumed store's `study.toml` is missing or no longer gives the study
    hash of its manifest, or a point's index or a chunk belongs to another study or sweep
    point; if `out` is a file or cannot be written (read-only, no permission, disk full:
    finished chunks are kept, and a resume continues once space is freed).
    """
    guard = interrupts if interrupts is not None else Interrupts()
    with guard:
        if isinstance(study, (str, Path)):
            study = load_study(study)
        guard.check()
        store = Store(out)
        store.check_location()
        if resume:
            store.check_current(store.read_manifest(), "resumed")
        else:
            store.check_new()
        with store.lock():
            return _run(study, store, resume=resume, quiet=quiet, progress=progress, log=log,
                        guard=guard)


def _run(study, store, *, resume, quiet, progress, log, guard) -> dict:
    # deferred: looked up per run, so that a test can replace `simulate` (monkeypatch)
    from .._simulate import simulate

    study, m = open_for_run(study, store, resume=resume, log=log)
    store.clean_tmp()
    run = m["run"]
    seeds, chunk = run["seeds"], min(run["chunk_size"], run["seeds"])
    ranges = chunk_ranges(seeds, chunk)
    points = study.points()
    headers = _headers(study)
    study_json = _study_json(study)
    for p, header in enumerate(headers):  # refused before anything is written
        reason = store.index_mismatch(p, store.read_index(p), header)
        if reason is not None:
            raise StoreError(f"{reason}; not resumed (move {store.point_dir(p)} away to "
                             "recompute the point, or use a new --out)")
    this_run = {"started": _now(), "chunks_computed": 0, "chunks_recomputed": 0}
    m["runs"].append(this_run)
    m["status"] = "running"
    with store.writing():
        store.write_manifest(m)
    if progress is None:
        progress = Progress(seeds * len(points), len(points), quiet=quiet)
    t_run = time.perf_counter()
    status = "failed"
    try:
        for p, point in enumerate(points):
            guard.check()
            header = headers[p]
            label = ", ".join(f"{k}={v}" for k, v in point["coords"].items())
            progress.start_point(p, label)
            index = store.read_index(p)
            missing = []
            for c, (lo, hi) in enumerate(ranges):
                guard.check()
                entry = index.get("chunks", {}).get(str(c))
                reason = store.verify_chunk(p, c, entry, lo, hi)
                if reason is None:
                    reason, foreign = store.chunk_problem(p, c, entry, lo, hi, header)
                    if foreign:
                        raise StoreError(
                            f"{store.point_dir(p) / entry['file']}: {reason}; not resumed "
                            f"(move {store.point_dir(p)} away to recompute the point, or use "
                            "a new --out)")
                if reason is None:
                    progress.skip(hi - lo)
                    continue
                if entry is not None:
                    this_run["chunks_recomputed"] += 1
                missing.append(c)
            if not missing:
                progress.end_point()
                continue
            built = build_point(study, point["config"])
            guard.check()
            if index.get("point_sha256") != header["point_sha256"]:
                with store.writing():
                    store.write_index(p, {**header, "chunks": index.get("chunks", {})})
            analyze = Analyzer(built)
            t_chunk = [time.perf_counter()]

            def callback(lo, hi, out, p=p, header=header):  # runs in the worker thread
                c = lo // chunk
                if guard.stopping:
                    raise Stopped
                if lo >= seeds:
                    return
                hi_true = min(hi, seeds)
                out = jax.tree.map(lambda x: x[: hi_true - lo], out)
                # one SimulationResult per chunk: stored by `to_xarray`, and the input of
                # every `dynsim.analysis` measure the Analyzer stores beside it
                res = SimulationResult.from_trajectories(
                    out, model=built.model, data=built.data, loss_fn=built.loss,
                    dynamics=built.dynamics, seed_start=lo)
                ds = res.to_xarray()
                for name, values in analyze(res).items():
                    ds[name] = (("seed",), np.asarray(values))
                for k in ("wall_time", "compile_time"):
                    ds.attrs.pop(k, None)
                with guard.lock:  # an interrupt waits for a commit in progress
                    if guard.stopping:
                        raise Stopped
                    now = time.perf_counter()
                    with store.writing():
                        store.commit_chunk(p, c, ds, lo, hi_true, now - t_chunk[0],
                                           header=header, study_json=study_json)
                    t_chunk[0] = now
                    this_run["chunks_computed"] += 1
                    progress.advance(hi_true - lo, (c + 1, len(ranges)))

            progress.start_compute(len(missing))
            for group in _contiguous(missing, MAX_CHUNKS_PER_CALL):
                start = group[0] * chunk
                t_chunk[0] = time.perf_counter()
                guard.run(lambda group=group, start=start: simulate(
                    built.model, built.data, init=built.init, dynamics=built.dynamics,
                    seeds=len(group) * chunk, seed_start=start, chunk_size=chunk,
                    key=built.key, loss=built.loss, save_conserved=run["save_conserved"],
                    save_params=run["save_params"], callback=callback,
                    progress=_Compiled(progress),
                ))
            progress.end_point()
        status = "complete"
        m.pop("error", None)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except BaseException as e:
        m["error"] = this_run["error"] = _one_line(e)
        # best effort: on a full disk the error log cannot be written either
        with contextlib.suppress(OSError):
            atomic_write_bytes(store.error_log, traceback.format_exc().encode())
        raise
    finally:
        progress.close()
        this_run["finished"] = _now()
        this_run["status"] = status
        this_run["wall_s"] = time.perf_counter() - t_run
        m["status"] = status
        m["timings"] = {
            "wall_s_total": sum(r.get("wall_s", 0.0) for r in m["runs"]),
            "runs": len(m["runs"]),
        }
        if status == "complete":  # the run's outcome: a failure to record it is an error
            with store.writing():
                store.write_manifest(m)
        else:  # an exception is on its way: do not replace it
            with contextlib.suppress(OSError):
                store.write_manifest(m)
    return m


class _Compiled:
    """What `simulate` tells the run's progress: only that the point is compiled; the
    callback counts the seeds once they are stored (padding seeds left out)."""

    def __init__(self, progress):
        self.progress = progress

    def compiled(self) -> None:
        self.progress.compiled()

    def advance(self, n: int, chunk: tuple[int, int]) -> None:
        pass


def _contiguous(chunks: list[int], limit: int) -> list[list[int]]:
    groups: list[list[int]] = []
    for c in chunks:
        if groups and c == groups[-1][-1] + 1 and len(groups[-1]) < limit:
            groups[-1].append(c)
        else:
            groups.append([c])
    return groups


def repair(out: str | Path, *, log=None) -> dict:
    """Rebuild what a results directory lost from what its chunks carry.

    Every chunk holds its study (file text, overrides, resolved config), the study and
    point hashes, its place (point, chunk, seeds) and a hash of its data. From them this
    restores a missing `study.toml`, rebuilds a missing or unreadable `manifest.json`
    (the record of past runs is lost; `repaired` says when) and every
    point's index. A chunk is indexed only if it reads back, its data hash holds and it
    belongs to the store's study and to the point and seeds its file name says; others
    are left out (a resume recomputes them) and listed. A `study.toml` that does not
    match the store's study is not touched: the repair is refused.

    Returns `{"manifest": "kept" | "rebuilt", "study_toml": "kept" | "restored",
    "chunks": n indexed, "missing": n to recompute, "left_out": [(file, reason)],
    "status": ...}`; `log(message)` is told what was done.

    **Raises:** `StoreError` if nothing identifies the study (no readable manifest and no
    chunk with metadata), or the chunks belong to several studies.
    """
    store = Store(out)
    store.check_location()
    if not store.root.is_dir():
        raise StoreError(f"{store.root}: no such directory")
    with store.lock(), store.writing():
        return _repair(store, log or (lambda message: None))


def _chunk_meta(store: Store, path: Path) -> tuple[dict | None, str | None]:
    """A chunk file's `dynsim_*` attributes, or None and why they cannot be trusted."""
    try:
        ds = store.read_chunk_file(path)
    except StoreError:
        return None, "unreadable"
    attrs = {k[len(ATTR):]: v for k, v in ds.attrs.items() if k.startswith(ATTR)}
    if attrs.get("format") != FORMAT or "study" not in attrs:
        return None, "no dynsim metadata"
    data = ds.copy()
    data.attrs = {}
    if data_sha256(data) != attrs.get("data_sha256"):
        return None, "data hash mismatch"
    try:
        attrs["study"] = json.loads(attrs["study"])
    except ValueError:
        return None, "unreadable study metadata"
    if study_sha256(attrs["study"].get("config")) != attrs.get("study_sha256"):
        return None, "study metadata does not match its hash"
    return attrs, None


def _repair(store: Store, log) -> dict:
    out = store.root
    store.clean_tmp()
    metas, left_out = {}, []
    for path in store.chunk_files():
        meta, why = _chunk_meta(store, path)
        if meta is None:
            left_out.append((str(path.relative_to(out)), why))
        else:
            metas[path] = meta
    try:
        m = store.read_manifest()
    except StoreError as e:
        m, lost = None, str(e)
    if m is not None:
        store.check_current(m, "repaired")
        if study_sha256(m.get("config")) != m.get("study_sha256"):
            raise StoreError(f"{store.manifest_path}: its config does not match its own study "
                             "hash; move it away and `dynsim repair` rebuilds it from the chunks")
        record = {"name": m["study"], "source": m["source"], "overrides": m.get("overrides", []),
                  "text": m.get("study_text"), "config": m["config"]}
        h = m["study_sha256"]
    else:
        candidates = {meta["study_sha256"]: meta["study"] for meta in metas.values()}
        if store.study_path.is_file() and len(candidates) > 1:
            text = store.study_path.read_bytes().decode("utf-8-sig", errors="replace")
            candidates = {k: r for k, r in candidates.items() if _parses_to(text, r, k)}
        if len(candidates) > 1:  # the surviving indexes name their study
            named = {store.read_index(int(d.name)).get("study_sha256")
                     for d in (out / "points").glob("[0-9]*") if d.name.isdigit()}
            candidates = {k: r for k, r in candidates.items() if k in named} or candidates
        if not candidates:
            raise StoreError(f"{lost}; and no chunk carries a study's metadata: nothing to "
                             "rebuild it from (run the study again into a new --out)")
        if len(candidates) > 1:
            raise StoreError(f"{out}: holds chunks of {len(candidates)} different studies and "
                             "no manifest.json to tell which is its own; move the foreign "
                             "point directories away and repair again")
        (h, record), = candidates.items()
    study = Study(config=record["config"], source=record["text"] or "", path=record["source"],
                  lines={}, overrides=tuple(record["overrides"]))
    summary = {"manifest": "kept" if m is not None else "rebuilt", "study_toml": "kept"}
    if not store.study_path.is_file():
        if not record["text"]:
            raise StoreError(f"{store.study_path}: missing, and no copy of it is stored; "
                             "put the study file back")
        atomic_write_bytes(store.study_path, record["text"].encode())
        summary["study_toml"] = "restored"
        log(f"restored {store.study_path} from the "
            + ("manifest" if m is not None else "chunks' metadata"))
    else:
        text = store.study_path.read_bytes().decode("utf-8-sig", errors="replace")
        if not _parses_to(text, record, h):
            raise StoreError(
                f"{store.study_path}: does not match the study its results were computed "
                f"with (hash {h[:12]}); move it away and repair again to restore the original")
    run = run_options(study.config)
    ranges = chunk_ranges(run["seeds"], min(run["chunk_size"], run["seeds"]))
    headers = _headers(study)
    by_place = {}
    for path, meta in metas.items():
        if meta["study_sha256"] != h:
            left_out.append((str(path.relative_to(out)), "belongs to another study"))
            continue
        by_place[path] = meta
    indexed = missing = 0
    for p, header in enumerate(headers):
        old = store.read_index(p)
        chunks = {}
        for c, (lo, hi) in enumerate(ranges):
            path = store.point_dir(p) / store.chunk_name(c)
            meta = by_place.pop(path, None)
            if meta is None:
                missing += 1
                continue
            attrs = {ATTR + k: v for k, v in meta.items()}
            why = Store.attrs_mismatch(attrs, header, c, lo, hi)
            if why is not None:
                left_out.append((str(path.relative_to(out)), why))
                missing += 1
                continue
            chunks[str(c)] = {"file": path.name, "start": lo, "stop": hi,
                              "sha256": sha256_file(path), "bytes": path.stat().st_size,
                              "seconds": float(meta.get("seconds", float("nan")))}
            indexed += 1
        if chunks or old.get("chunks") or "study_sha256" in old:
            store.write_index(p, {**header, "chunks": chunks})
    for path in by_place:  # a chunk name outside the study's points or chunk ranges
        left_out.append((str(path.relative_to(out)), "not a chunk of this study's points"))
    if m is None:
        m = _new_manifest(study)
        m["x64"] = run["precision"] == "float64"
        m["created"] = None
        log(f"rebuilt {store.manifest_path} ({lost.split(': ', 1)[-1]})")
    status = "complete" if missing == 0 else (
        m["status"] if m["status"] in ("failed", "interrupted") else "interrupted")
    m["status"] = status
    m["repaired"] = _now()
    store.write_manifest(m)
    for name, why in left_out:
        log(f"left out {name}: {why}")
    log(f"{indexed} chunk(s) intact and indexed, {missing} to compute"
        + (f": continue with `dynsim run --resume --out {out}`" if missing else ""))
    summary.update(chunks=indexed, missing=missing, left_out=left_out, status=status)
    return summary


def _parses_to(text: str, record: dict, h: str) -> bool:
    """Whether study text `text`, with the record's overrides, is the study of hash `h`."""
    try:
        cfg = parse_study(record["source"], record["overrides"], source=text,
                          path=record["source"]).config
    except StudyError:
        return False
    return study_sha256(cfg) == h
