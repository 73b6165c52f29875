"""The results store: a directory of checksummed per-chunk netCDF files.

Layout:

    DIR/manifest.json            study, its hash, resolved config, versions, status, timings
    DIR/study.toml               the study file as given (overrides are in the manifest)
    DIR/.lock                    held (`flock`) by the one process writing the store
    DIR/points/0003/index.json   chunk index of sweep point 3: its hashes; file, seeds,
                                 sha256, bytes of every finished chunk
    DIR/points/0003/chunk_00012.nc   seeds [12·chunk_size, 13·chunk_size) of point 3
    DIR/report/                  figures and summary.md (`dynsim report DIR`)
    DIR/error.log                the traceback of a run that failed (status "failed")

Every file is written atomically (temporary file, fsync, `os.replace`, fsync of the
directory); a chunk counts as done only once its checksum is in the index, and is
re-verified (checksum and readability) before it is used or skipped on resume.

Identity: the study hash is the sha256 of the study's resolved config (overrides
applied) in canonical JSON; a point hash covers the point's index, its resolved config
and the run options. The manifest holds the study hash and every point hash; each index
and each chunk (netCDF attributes `dynsim_*`) holds both again, and each chunk also
holds the whole study (file text, overrides, config) and a hash of its own data, so
that the manifest, the indexes and `study.toml` can be rebuilt from the chunks alone
(`dynsim repair`, `_runner.repair`). Data is used only where all of them agree.
"""

import contextlib
import errno
import fcntl
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

FORMAT = "dynsim-study/2"
OLD_FORMATS = ("dynsim-study/1",)  # no hashes: loaded without identity checks, not resumed
LOCK_NAME = ".lock"
ATTR = "dynsim_"  # prefix of the chunk attributes the store writes and checks


def _xarray():
    """The xarray module, imported on first use."""
    # deferred: `import dynsim` (hence `dynsim --help`) does not load xarray and pandas
    import xarray

    return xarray


# ---------------------------------------------------------------- hashes


def canonical_json(obj: Any) -> str:
    """One text per value: sorted keys, no spaces, floats as `repr` (round-trips)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_default)


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def study_sha256(config: dict) -> str:
    """The hash of a study: its resolved config (overrides applied, sweep included)."""
    return sha256_json({"format": FORMAT, "config": config})


def point_sha256(p: int, config: dict, run: dict) -> str:
    """The hash of sweep point `p`: its index, resolved config and run options."""
    return sha256_json({"format": FORMAT, "point": p, "config": config, "run": run})


def data_sha256(ds) -> str:
    """A hash of a chunk's numbers (every variable and coordinate: name, dtype, shape,
    values; NaNs counted as one value), equal before writing and after reading back."""
    h = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        a = np.asarray(ds[name].values)
        if a.dtype.kind in "OUSM":
            raw = canonical_json(a.astype(str).tolist()).encode()
        else:
            if a.dtype.kind in "fc":
                a = np.where(np.isnan(a), np.array(np.nan, a.dtype), a)
            raw = np.ascontiguousarray(a).tobytes()
        h.update(canonical_json([name, a.dtype.str, list(a.shape), len(raw)]).encode())
        h.update(raw)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- atomic writes


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


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _named(e: OSError, path: Path) -> OSError:
    """`e` naming the file being written (not its temporary name)."""
    return OSError(e.errno, e.strerror or str(e), str(path))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _named(e, path) from None
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
    """Write `ds` to `path` atomically; returns the sha256 of the bytes written.

    The netCDF library reports a full disk as `RuntimeError('NetCDF: HDF error')`; with
    less than 1 MiB free that is raised as `OSError(ENOSPC)`."""
    tmp = _tmp_path(path)
    try:
        try:
            ds.to_netcdf(tmp, engine="netcdf4")
        except OSError:
            raise
        except Exception as e:
            try:
                free = shutil.disk_usage(path.parent).free
            except OSError:
                free = None
            if free is not None and free < 1 << 20:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from e
            raise
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise _named(e, path) from None
        raise
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


def _short(h: str | None) -> str:
    return (h or "none")[:12]


class Store:
    """A results directory. `Store(path)` opens it; `create` starts a new one."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- where it is, who writes it
    def check_location(self) -> None:
        """`StoreError` if the directory cannot be a store: a file, or under one."""
        r = self.root
        if r.exists() and not r.is_dir():
            raise StoreError(f"{r}: is a file, not a directory; give --out a directory "
                             "(new, empty, or a results directory)")
        for parent in r.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise StoreError(f"{r}: {parent} is a file, not a directory")
                break

    def check_new(self) -> None:
        """For a new run: `StoreError` if the directory holds files and is no store (no
        manifest.json, no lock file), before anything (the lock file) is written there."""
        r = self.root
        if not r.is_dir() or self.exists() or (r / LOCK_NAME).exists():
            return
        entries = sorted(f.name for f in r.iterdir())
        if self.chunk_files():
            raise StoreError(f"{r}: holds chunks but no manifest.json; `dynsim repair {r}` "
                             "rebuilds it from their metadata, then --resume continues")
        if entries:
            raise StoreError(f"{r}: directory exists and is not empty ({entries[0]})")

    def chunk_files(self) -> list[Path]:
        """Every chunk file present under points/, indexed or not."""
        return sorted(self.root.glob("points/[0-9]*/chunk_*.nc"))

    @contextlib.contextmanager
    def lock(self):
        """Hold the store's write lock (`flock` of DIR/.lock) for the block: one process
        writes a store at a time. `StoreError` at once if another holds it, or if the
        directory cannot be written. Released when the block ends or the process dies."""
        path = self.root / LOCK_NAME
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(self.write_error(e)) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise StoreError(
                    f"{self.root}: another dynsim process (pid {holder}) is writing to it; "
                    "wait for it to end, or stop it and continue with "
                    f"`dynsim run --resume --out {self.root}`") from None
            except OSError as e:
                raise StoreError(f"{path}: cannot lock the store ({e.strerror})") from None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    def write_error(self, e: OSError) -> str:
        """One line for an `OSError` met while writing the store, with what to do."""
        where = e.filename or self.root
        what = e.strerror or str(e)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            hint = ("free some space, then continue with "
                    f"`dynsim run --resume --out {self.root}` (finished chunks are kept)"
                    if self.exists() else "free some space and run again")
        elif e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            hint = "use a writable --out"
        else:
            hint = "check the --out directory"
        return f"{where}: cannot write ({what}); {hint}"

    @contextlib.contextmanager
    def writing(self):
        """Turn an `OSError` raised while writing the store into a one-line `StoreError`."""
        try:
            yield
        except OSError as e:
            raise StoreError(self.write_error(e)) from None

    # -- manifest
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def study_path(self) -> Path:
        return self.root / "study.toml"

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def _repair_hint(self) -> str:
        n = len(self.chunk_files())
        if n:
            return (f"; it holds {n} chunk file(s): `dynsim repair {self.root}` rebuilds the "
                    "manifest from their metadata")
        return ""

    def read_manifest(self) -> dict:
        if not self.exists():
            hint = self._repair_hint()
            raise StoreError(f"{self.root}: not a dynsim results directory (no manifest.json)"
                             + hint)
        try:
            m = json.loads(self.manifest_path.read_text())
            if not isinstance(m, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as e:
            raise StoreError(f"{self.manifest_path}: unreadable manifest ({e})"
                             + (self._repair_hint() or "; no chunk to rebuild it from")
                             ) from None
        except OSError as e:
            raise StoreError(f"{self.manifest_path}: cannot read ({e.strerror})") from None
        if m.get("format") not in (FORMAT, *OLD_FORMATS):
            raise StoreError(f"{self.manifest_path}: unknown format {m.get('format')!r}")
        return m

    def check_current(self, m: dict, action: str) -> None:
        """`StoreError` for a store of an older format (no hashes) that is to be `action`."""
        if m.get("format") != FORMAT:
            raise StoreError(
                f"{self.root}: written by an older dynsim (format {m.get('format')}, without "
                f"study hashes); `dynsim.study.load` reads it, but it cannot be {action}: "
                "run the study again into a new --out")

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
            index = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            return {"chunks": {}}  # a torn index cannot happen (atomic), but never trust one
        if not isinstance(index, dict) or not isinstance(index.get("chunks"), dict):
            return {"chunks": {}}
        return index

    def write_index(self, p: int, index: dict) -> None:
        d = self.point_dir(p)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_json(d / "index.json", index)

    def index_mismatch(self, p: int, index: dict, header: dict) -> str | None:
        """None if point p's index is empty or carries `header`'s hashes, else what
        differs (an index of another study or sweep point, or of an older format)."""
        if not index.get("chunks") and "study_sha256" not in index:
            return None
        for key, what in (("study_sha256", "study"), ("point_sha256", "point")):
            if index.get(key) != header[key]:
                return (f"{self.point_dir(p) / 'index.json'}: belongs to another {what} "
                        f"({what} hash {_short(index.get(key))}, this store's "
                        f"{_short(header[key])})")
        if index.get("point") != p:
            return f"{self.point_dir(p) / 'index.json'}: is the index of point {index.get('point')}"
        return None

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

    @staticmethod
    def attrs_mismatch(attrs: dict, header: dict, c: int, start: int, stop: int) -> str | None:
        """None if a chunk's `dynsim_*` attributes say it is chunk c (seeds [start, stop))
        of `header`'s study and point, else what differs."""
        for key, what in (("study_sha256", "study"), ("point_sha256", "point")):
            if attrs.get(ATTR + key) != header[key]:
                return (f"belongs to another {what} ({what} hash "
                        f"{_short(attrs.get(ATTR + key))}, this store's {_short(header[key])})")
        got = tuple(int(attrs.get(ATTR + k, -1)) for k in ("point", "chunk", "start", "stop"))
        if got != (header["point"], c, start, stop):
            return (f"is chunk {got[1]} (seeds [{got[2]}, {got[3]})) of point {got[0]}, "
                    f"expected chunk {c} (seeds [{start}, {stop})) of point {header['point']}")
        return None

    def commit_chunk(self, p: int, c: int, ds, start: int, stop: int, seconds: float, *,
                     header: dict, study_json: str) -> None:
        """Write chunk c of point p and record it in the point's index (atomically).

        The chunk carries its identity as attributes (`dynsim_*`: format, study and point
        hashes, point, chunk, seeds, the study as JSON, a hash of its data)."""
        d = self.point_dir(p)
        d.mkdir(parents=True, exist_ok=True)
        ds = ds.copy()
        ds.attrs.update({
            ATTR + "format": FORMAT, ATTR + "study_sha256": header["study_sha256"],
            ATTR + "point": p, ATTR + "point_sha256": header["point_sha256"],
            ATTR + "chunk": c, ATTR + "start": start, ATTR + "stop": stop,
            ATTR + "seconds": float(seconds), ATTR + "data_sha256": data_sha256(ds),
            ATTR + "study": study_json,
        })
        with deferred_interrupts():
            digest = atomic_write_netcdf(d / self.chunk_name(c), ds)
            index = self.read_index(p)
            index.update(header)
            index.setdefault("chunks", {})[str(c)] = {
                "file": self.chunk_name(c), "start": start, "stop": stop, "sha256": digest,
                "bytes": (d / self.chunk_name(c)).stat().st_size, "seconds": seconds,
            }
            self.write_index(p, index)

    def read_chunk_file(self, path: Path):
        """A chunk file's dataset, loaded; `StoreError` if it cannot be read."""
        xr = _xarray()
        try:
            with xr.open_dataset(path, engine="netcdf4") as ds:
                return ds.load()
        except Exception as e:  # noqa: BLE001 - unreadable file: report as corrupt
            raise StoreError(f"{path}: unreadable chunk ({e}); rerun with --resume") from None

    def open_chunk(self, p: int, c: int, entry: dict | None, start: int, stop: int,
                   header: dict | None = None):
        """The chunk's dataset, loaded into memory after verifying its checksum and (with
        `header`) that it is this study's and point's; its `dynsim_*` attributes removed."""
        reason = self.verify_chunk(p, c, entry, start, stop)
        if reason is not None:
            raise StoreError(
                f"{self.point_dir(p) / self.chunk_name(c)}: {reason}; "
                f"run `dynsim run --resume --out {self.root}` to recompute it"
            )
        path = self.point_dir(p) / entry["file"]
        ds = self.read_chunk_file(path)
        if header is not None:
            reason = self.attrs_mismatch(ds.attrs, header, c, start, stop)
            if reason is not None:
                raise StoreError(f"{path}: {reason}; it is not used")
        for k in [k for k in ds.attrs if k.startswith(ATTR)]:
            del ds.attrs[k]
        return ds

    def chunk_problem(self, p: int, c: int, entry: dict, start: int, stop: int,
                      header: dict) -> tuple[str | None, bool]:
        """(reason, foreign) for an indexed chunk on resume: (None, False) if it can be
        kept; a damaged one (unreadable) is recomputed, a foreign one refused."""
        try:
            ds = self.read_chunk_file(self.point_dir(p) / entry["file"])
        except StoreError:
            return "unreadable", False
        reason = self.attrs_mismatch(ds.attrs, header, c, start, stop)
        return reason, reason is not None

    def finished_chunks(self, manifest: dict) -> int:
        """How many chunks the points' indexes record as done (not re-verified)."""
        return sum(len(self.read_index(p).get("chunks", {})) for p in range(len(manifest["points"])))

    @property
    def error_log(self) -> Path:
        return self.root / "error.log"

    def reset(self) -> None:
        """Remove a store's files (manifest, study, points, error log) so a new run can
        start in the directory; only for a store without finished chunks. The lock file
        stays (it may be held)."""
        points = self.root / "points"
        if points.is_dir():
            unknown = [f for f in points.rglob("*") if f.is_file() and not (
                f.name == "index.json" or f.name.startswith(("chunk_", ".chunk_", ".index.json")))]
            if unknown:
                raise StoreError(f"{points}: holds files the store did not write ({unknown[0]})")
            shutil.rmtree(points)
        for f in (self.error_log, self.study_path, self.manifest_path):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        self.clean_tmp()

    def clean_tmp(self) -> None:
        for tmp in self.root.rglob(".*.tmp-*"):
            with contextlib.suppress(OSError):
                tmp.unlink()


def chunk_ranges(seeds: int, chunk: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + chunk, seeds)) for lo in range(0, seeds, chunk)]


def index_header(p: int, coords: dict, config: dict, run: dict, study_hash: str) -> dict:
    """The header of point p's index: what the point is, and the hashes its index and
    chunks carry."""
    return {"format": FORMAT, "point": p, "coords": coords, "config": config, "run": run,
            "study_sha256": study_hash, "point_sha256": point_sha256(p, config, run)}


def point_header(m: dict, p: int) -> dict | None:
    """The hashes point p's index and chunks must carry, from the manifest (None for a
    store of an older format, which has none)."""
    if m.get("format") != FORMAT:
        return None
    return {"point": p, "study_sha256": m["study_sha256"],
            "point_sha256": m["points"][p]["sha256"]}


def load(path: str | Path, *, point: int | None = None):
    """The results of a study directory as one `xarray.Dataset`.

    Chunks are verified (sha256 of the file, and the study and point hashes every index
    and chunk carries) and concatenated over `seed`. A grid sweep has one dimension per
    swept key, named after it (`init.std`, `data.seed`), besides `seed` and `time`, and a
    coordinate `point` (the store's point index) over them; any other list of sweep
    points has a `point` dimension with the swept values as coordinates along it.
    Variables whose shapes differ between points (save grids, parameters of a width
    sweep) are NaN-padded with boolean masks (`time_mask`, `<dim>_mask`), with a
    `UserWarning` naming them. The store's metadata (study, its text and hash, `[run]`
    options such as `key`, `seeds` and `precision`, `dynsim_version`, `jax_version`,
    ...) are the dataset's `attrs`; variables carry `long_name`, `description`, `units`.
    The layout is described in full in `dynsim/study/_dataset.py`.

    `point=i` returns sweep point i alone, unpadded: the slice of the whole study at
    that point (the swept values as scalar coordinates, and `point`).

    **Raises:** `dynsim.study.StoreError` if a chunk is missing or corrupt (resume the
    run to recompute it), or belongs to another study or sweep point.
    """
    from ._dataset import assemble, describe, point_coords, store_attrs

    store = Store(path)
    m = store.read_manifest()
    points = m["points"]
    if point is not None:
        if not 0 <= point < len(points):
            raise StoreError(f"point: {point} out of range [0, {len(points)})")
        ds = _load_point(store, m, point).assign_coords(point_coords(m, point))
        ds.attrs = {**ds.attrs, **store_attrs(m, path)}
        return describe(ds)
    return assemble([_load_point(store, m, p) for p in range(len(points))], m, path)


def _load_point(store: Store, m: dict, p: int):
    xr = _xarray()
    run = m["run"]
    index = store.read_index(p)
    header = point_header(m, p)
    if header is not None:
        reason = store.index_mismatch(p, index, header)
        if reason is not None:
            raise StoreError(f"{reason}; its chunks are not used (move {store.point_dir(p)} "
                             f"away and `dynsim run --resume --out {store.root}` recomputes it)")
    parts = []
    for c, (lo, hi) in enumerate(chunk_ranges(run["seeds"], min(run["chunk_size"], run["seeds"]))):
        parts.append(store.open_chunk(p, c, index["chunks"].get(str(c)), lo, hi, header))
    ds = xr.concat(parts, dim="seed", combine_attrs="drop_conflicts") if len(parts) > 1 else parts[0]
    for k in ("wall_time", "compile_time"):
        ds.attrs.pop(k, None)
    return ds
