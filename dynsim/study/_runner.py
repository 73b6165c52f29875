"""Run a study into a results store, chunk by chunk; resume recomputes only what is missing."""

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
from ._config import Study, run_options
from ._errors import StoreError, StudyError
from ._interrupt import Interrupts, Stopped
from ._load import load_study
from ._store import FORMAT, Store, atomic_write_bytes, chunk_ranges

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


def _new_manifest(study: Study) -> dict:
    points = study.points()
    return {
        "format": FORMAT,
        "study": study.name,
        "description": study.config.get("description", ""),
        "source": study.path,
        "overrides": list(study.overrides),
        "config": study.config,
        "sweep": study.config.get("sweep", {}),
        "run": run_options(study.config),
        "points": [{"index": i, "coords": p["coords"], "dir": f"points/{i:04d}"}
                   for i, p in enumerate(points)],
        "versions": versions(),
        "devices": devices(),
        "x64": bool(jax.config.jax_enable_x64),
        "status": "created",
        "created": _now(),
        "sessions": [],
        "timings": {},
    }


def open_for_run(study: Study | None, out: str | Path, *, resume: bool,
                 log=None) -> tuple[Study, Store, dict]:
    """Create the store (new run) or reopen it (resume) and check it matches the study.

    A plain (not `resume`) run into a store whose last run failed or was interrupted
    before any chunk was finished starts over there (`log` is told); with finished
    chunks it is refused, pointing to `--resume`.
    """
    store = Store(out)
    if resume:
        m = store.read_manifest()
        try:
            stored = load_study(
                m["source"], m.get("overrides", []),
                source=(store.root / "study.toml").read_text(), path=m["source"],
            )
        except StudyError as e:
            n = store.finished_chunks(m)
            raise StoreError(
                f"{out}: cannot resume, the study it holds is invalid ({e}); "
                + (f"its {n} finished chunk(s) cannot be continued: use a new --out"
                   if n else "nothing was finished: run the corrected study with the same --out")
            ) from None
        if study is not None and _canonical(study.config) != _canonical(stored.config):
            raise StoreError(
                f"{out}: holds a different study (or different --set values) than the one "
                "given; resume without STUDY or use a new --out"
            )
        if m["run"] != _new_manifest(stored)["run"]:
            raise StoreError(f"{out}: run options changed since the store was created")
        return stored, store, m
    if study is None:
        raise StudyError("study", "give a STUDY file (or preset name), or --resume")
    if store.exists():
        old = store.read_manifest()
        status = old.get("status")
        n = store.finished_chunks(old)
        if status in ("failed", "interrupted") and n == 0:
            store.reset()
            if log is not None:
                what = "failed" if status == "failed" else "was interrupted"
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
    if store.root.exists() and any(store.root.iterdir()):
        raise StoreError(f"{out}: directory exists and is not empty")
    store.root.mkdir(parents=True, exist_ok=True)
    (store.root / "study.toml").write_text(study.source)
    m = _new_manifest(study)
    store.write_manifest(m)
    return study, store, m


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
    """
    guard = interrupts if interrupts is not None else Interrupts()
    with guard:
        return _run(study, out, resume=resume, quiet=quiet, progress=progress, log=log,
                    guard=guard)


def _run(study, out, *, resume, quiet, progress, log, guard) -> dict:
    # deferred: looked up per run, so that a test can replace `simulate` (monkeypatch)
    from .._simulate import simulate

    if isinstance(study, (str, Path)):
        study = load_study(study)
    guard.check()
    study, store, m = open_for_run(study, out, resume=resume, log=log)
    store.clean_tmp()
    run = m["run"]
    seeds, chunk = run["seeds"], min(run["chunk_size"], run["seeds"])
    ranges = chunk_ranges(seeds, chunk)
    points = study.points()
    session = {"started": _now(), "chunks_computed": 0, "chunks_recomputed": 0}
    m["sessions"].append(session)
    m["status"] = "running"
    store.write_manifest(m)
    if progress is None:
        progress = Progress(seeds * len(points), len(points), quiet=quiet)
    t_run = time.perf_counter()
    status = "failed"
    try:
        for p, point in enumerate(points):
            guard.check()
            label = ", ".join(f"{k}={v}" for k, v in point["coords"].items())
            progress.start_point(p, label)
            index = store.read_index(p)
            missing = []
            for c, (lo, hi) in enumerate(ranges):
                guard.check()
                entry = index.get("chunks", {}).get(str(c))
                reason = store.verify_chunk(p, c, entry, lo, hi)
                if reason is None and not store.readable(p, c, entry):
                    reason = "unreadable"
                if reason is None:
                    progress.skip(hi - lo)
                    continue
                if entry is not None:
                    session["chunks_recomputed"] += 1
                missing.append(c)
            if not missing:
                progress.end_point()
                continue
            built = build_point(study, point["config"])
            guard.check()
            if "coords" not in index:
                store.write_index(p, {"point": p, "coords": point["coords"],
                                      "config": point["config"], "chunks": index.get("chunks", {})})
            analyze = Analyzer(built)
            t_chunk = [time.perf_counter()]

            def callback(lo, hi, out, p=p):  # runs in the worker thread
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
                    store.commit_chunk(p, c, ds, lo, hi_true, now - t_chunk[0])
                    t_chunk[0] = now
                    session["chunks_computed"] += 1
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
                ))
            progress.end_point()
        status = "complete"
        m.pop("error", None)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except BaseException as e:
        m["error"] = session["error"] = _one_line(e)
        atomic_write_bytes(store.error_log, traceback.format_exc().encode())
        raise
    finally:
        progress.close()
        session["finished"] = _now()
        session["status"] = status
        session["wall_s"] = time.perf_counter() - t_run
        m["status"] = status
        m["timings"] = {
            "wall_s_total": sum(s.get("wall_s", 0.0) for s in m["sessions"]),
            "sessions": len(m["sessions"]),
        }
        store.write_manifest(m)
    return m


def _contiguous(chunks: list[int], limit: int) -> list[list[int]]:
    groups: list[list[int]] = []
    for c in chunks:
        if groups and c == groups[-1][-1] + 1 and len(groups[-1]) < limit:
            groups[-1].append(c)
        else:
            groups.append([c])
    return groups
