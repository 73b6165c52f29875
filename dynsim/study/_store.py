"""The results store: a directory of checksummed per-chunk netCDF files.

Layout:

    DIR/manifest.json            study, resolved config, versions, devices, status, timings
    DIR/study.toml               the study file as given (overrides are in the manifest)
    DIR/points/0003/index.json   chunk index of sweep point 3: file, seeds, sha256, bytes
    DIR/points/0003/chunk_00012.nc   seeds [12·chunk_size, 13·chunk_size) of point 3
    DIR/report/                  figures and summary.md (`dynsim report DIR`)
    DIR/error.log                the traceback of a run that failed (status "failed")

Every file is written atomically (temporary file, fsync, `os.replace`, fsync of the
directory); a chunk counts as done only once its checksum is in the index, and is
re-verified (checksum and readability) before it is used or skipped on resume.
"""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import StoreError

FORMAT = "dynsim-study/1"


def _xarray():
    """The xarray module, imported on first use."""
    # deferred: `import dynsim` (hence `dynsim --help`) does not load xarray and pandas
    import xarray

    return xarray


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def _json_default(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def atomic_write_netcdf(path: Path, ds) -> str:
    """Write `ds` to `path` atomically; returns the sha256 of the bytes written."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    ds.to_netcdf(tmp, engine="netcdf4")
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    digest = sha256_file(tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return digest


@contextlib.contextmanager
def deferred_interrupts():
    """Hold SIGINT/SIGTERM while committing a chunk (file + index), then re-deliver."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list = []
    handler = lambda signum, frame: received.append(signum)
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if received:
            if received[0] == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + received[0])


class Store:
    """A results directory. `Store(path)` opens it; `create` starts a new one."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- manifest
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def read_manifest(self) -> dict:
        if not self.exists():
            raise StoreError(f"{self.root}: not a dynsim results directory (no manifest.json)")
        try:
            m = json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as e:
            raise StoreError(f"{self.manifest_path}: unreadable manifest: {e}") from None
        if m.get("format") != FORMAT:
            raise StoreError(f"{self.manifest_path}: unknown format {m.get('format')!r}")
        return m

    def write_manifest(self, manifest: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.manifest_path, manifest)

    # -- points and chunks
    def point_dir(self, p: int) -> Path:
        return self.root / "points" / f"{p:04d}"

    def chunk_name(self, c: int) -> str:
        return f"chunk_{c:05d}.nc"

    def read_index(self, p: int) -> dict:
        path = self.point_dir(p) / "index.json"
        if not path.is_file():
            return {"chunks": {}}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return {"chunks": {}}  # a torn index cannot happen (atomic), but never trust one

    def write_index(self, p: int, index: dict) -> None:
        d = self.point_dir(p)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_json(d / "index.json", index)

    def verify_chunk(self, p: int, c: int, entry: dict | None, start: int, stop: int) -> str | None:
        """None if chunk c of point p is complete and intact, else the reason it is not."""
        if entry is None:
            return "missing from the index"
        path = self.point_dir(p) / entry.get("file", self.chunk_name(c))
        if not path.is_file():
            return "file missing"
        if (entry.get("start"), entry.get("stop")) != (start, stop):
            return f"holds seeds [{entry.get('start')}, {entry.get('stop')}), expected [{start}, {stop})"
        if sha256_file(path) != entry.get("sha256"):
            return "checksum mismatch"
        return None

    def commit_chunk(self, p: int, c: int, ds, start: int, stop: int, seconds: float) -> None:
        """Write chunk c of point p and record it in the point's index (atomically)."""
        d = self.point_dir(p)
        d.mkdir(parents=True, exist_ok=True)
        with deferred_interrupts():
            digest = atomic_write_netcdf(d / self.chunk_name(c), ds)
            index = self.read_index(p)
            index.setdefault("chunks", {})[str(c)] = {
                "file": self.chunk_name(c), "start": start, "stop": stop, "sha256": digest,
                "bytes": (d / self.chunk_name(c)).stat().st_size, "seconds": seconds,
            }
            self.write_index(p, index)

    def open_chunk(self, p: int, c: int, entry: dict | None, start: int, stop: int):
        """The chunk's dataset, loaded into memory after verifying its checksum."""
        xr = _xarray()
        reason = self.verify_chunk(p, c, entry, start, stop)
        if reason is not None:
            raise StoreError(
                f"{self.point_dir(p) / self.chunk_name(c)}: {reason}; "
                f"run `dynsim run --resume --out {self.root}` to recompute it"
            )
        path = self.point_dir(p) / entry["file"]
        try:
            with xr.open_dataset(path, engine="netcdf4") as ds:
                return ds.load()
        except Exception as e:  # noqa: BLE001 - unreadable file: report as corrupt
            raise StoreError(f"{path}: unreadable chunk ({e}); rerun with --resume") from None

    def readable(self, p: int, c: int, entry: dict) -> bool:
        xr = _xarray()
        try:
            with xr.open_dataset(self.point_dir(p) / entry["file"], engine="netcdf4") as ds:
                ds.load()
            return True
        except Exception:  # noqa: BLE001
            return False

    def finished_chunks(self, manifest: dict) -> int:
        """How many chunks the points' indexes record as done (not re-verified)."""
        return sum(len(self.read_index(p).get("chunks", {})) for p in range(len(manifest["points"])))

    @property
    def error_log(self) -> Path:
        return self.root / "error.log"

    def reset(self) -> None:
        """Remove a store's files (manifest, study, points, error log) so a new run can
        start in the directory; only for a store without finished chunks."""
        points = self.root / "points"
        if points.is_dir():
            unknown = [f for f in points.rglob("*") if f.is_file() and not (
                f.name == "index.json" or f.name.startswith(("chunk_", ".chunk_", ".index.json")))]
            if unknown:
                raise StoreError(f"{points}: holds files the store did not write ({unknown[0]})")
            shutil.rmtree(points)
        for f in (self.error_log, self.root / "study.toml", self.manifest_path):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        self.clean_tmp()

    def clean_tmp(self) -> None:
        for tmp in self.root.rglob(".*.tmp-*"):
            with contextlib.suppress(OSError):
                tmp.unlink()


def chunk_ranges(seeds: int, chunk: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + chunk, seeds)) for lo in range(0, seeds, chunk)]


def load(path: str | Path, *, point: int | None = None):
    """The results of a study directory as one `xarray.Dataset`.

    Chunks are verified (sha256) and concatenated over `seed`. With a sweep, points are
    stacked along a `point` dimension whose coordinates are the swept parameters
    (e.g. `init.std`); variables whose shapes differ between points (parameters of a
    width sweep) are left out — get them with `load(path, point=i)`. Without a sweep (or
    with `point=i`) the dataset of that single point is returned, sweep values as
    attributes `sweep:<name>`.

    **Raises:** `dynsim.study.StoreError` if a chunk is missing or corrupt (resume the
    run to recompute it).
    """
    xr = _xarray()
    store = Store(path)
    m = store.read_manifest()
    points = m["points"]
    if point is not None:
        if not 0 <= point < len(points):
            raise StoreError(f"point: {point} out of range [0, {len(points)})")
        return _load_point(store, m, point)
    if not m.get("sweep"):
        return _load_point(store, m, 0)
    parts = [_load_point(store, m, p) for p in range(len(points))]
    common = set(parts[0].data_vars)
    for ds in parts[1:]:
        common &= set(ds.data_vars)
    keep = [v for v in parts[0].data_vars if v in common and all(
        ds[v].shape == parts[0][v].shape for ds in parts)]
    same_time = all(np.array_equal(ds["time"].values, parts[0]["time"].values) for ds in parts)
    if not same_time:
        parts = [ds.rename({"time": "time_index"}).assign_coords(time_index=np.arange(ds.sizes["time"]))
                 for ds in parts]
    combined = xr.concat([ds[keep] for ds in parts], dim="point", join="outer",
                         combine_attrs="drop_conflicts")
    coords = {"point": np.arange(len(points))}
    for name in m["sweep"]:
        values = [pt["coords"][name] for pt in points]
        if not all(isinstance(v, (int, float, str, bool)) for v in values):
            values = [json.dumps(v) for v in values]  # e.g. model.hidden = [[10], [40]]
        coords[name] = ("point", np.asarray(values))
    combined = combined.assign_coords(coords)
    combined.attrs.update({"study": m["study"], "dynsim_store": str(path)})
    return combined


def _load_point(store: Store, m: dict, p: int):
    xr = _xarray()
    run = m["run"]
    index = store.read_index(p)
    parts = []
    for c, (lo, hi) in enumerate(chunk_ranges(run["seeds"], run["chunk_size"])):
        parts.append(store.open_chunk(p, c, index["chunks"].get(str(c)), lo, hi))
    ds = xr.concat(parts, dim="seed", combine_attrs="drop_conflicts") if len(parts) > 1 else parts[0]
    for k in ("wall_time", "compile_time"):
        ds.attrs.pop(k, None)
    for name, value in m["points"][p]["coords"].items():
        ds.attrs[f"sweep:{name}"] = value
    ds.attrs["study"] = m["study"]
    ds.attrs["point"] = p
    return ds
