"""The layout of a loaded study: sweep dimensions, ragged variables, metadata.

`dynsim.load` (`_store.load`) reads every sweep point's chunks and hands the per-point
datasets to `assemble`, which gives them one layout:

- **Grid sweep** (the points are the cartesian product of the `[sweep]` lists, in file
  order, as `Study.points` builds them): one dimension per swept key, named after it
  (`init.std`, `data.seed`), in `[sweep]` order, then the point's own dimensions
  (`seed`, `time`, ...). A coordinate `point` over the sweep dimensions holds the store's
  point index (`load(DIR, point=i)` is the slice where `point == i`).
- **Any other list of points** (a zip of equal-length lists, or a hand-made list): a
  `point` dimension, with the swept values as coordinates along it.
- **No sweep**: the single point's dataset.

A swept value that is not a number, string or bool (a list such as `model.hidden = [40]`)
is labelled by its JSON text (`"[40]"`) on the dimension; when every value is a list of
numbers of one length, a coordinate `<key>_vector` (sweep dimension × `<key>_component`)
holds the numbers.

**Ragged variables** (what differs between points in shape) are NaN-padded, not dropped;
a boolean mask says which entries are real, and a `UserWarning` names every padded
variable:

- save grids that differ between points (e.g. a sweep of `dynamics.steps`): `time` is the
  sorted union of the points' save times, and `time_mask` (sweep dims × `time`) is True
  where a point saved;
- a dimension whose size differs (parameters of a width sweep, `param_W_dim0`): padded to
  the largest size; `<dim>_mask` (sweep dims × `<dim>`) is True below each point's size.
  An entry is real where the masks of all its ragged dimensions are True;
- a variable that some points lack (another parametrization): NaN there, and
  `<var>_mask` (sweep dims) says which points have it.

Why padding and masks, not a `DataTree` of per-point nodes: the ragged variables stay in
the one `Dataset`, indexed by the same sweep dimensions as everything else, so
`ds.param_W.sel({"model.width": 64})`, reductions over `seed` and NaN-aware plotting work
on them as on the regular variables; `ds.where(ds.time_mask)` or `isel` with a mask gives
a point's own values back. A tree would split every ragged variable into one node per
point and lose the sweep dimensions for exactly those variables.

Metadata: the store's (study name, description, study text and its sha256, overrides,
the `[run]` options: seeds, key, precision, ..., dynsim/jax/... versions, status) in the
dataset's `attrs` (strings and numbers, so the dataset can be written to netCDF again);
`long_name`, `description` and `units` on the variables declared in `_measures.py`.
"""

import itertools
import json
import warnings

import numpy as np

from ._measures import variable_attrs

POINT = "point"
KEEP = ("seed", "time")  # never padded by size: seeds agree, times are aligned by value


def _xarray():
    import xarray

    return xarray


# ---------------------------------------------------------------- sweep coordinates


def _is_plain(v) -> bool:
    return isinstance(v, (bool, int, float, str))


def sweep_values(values: list) -> tuple[np.ndarray, np.ndarray | None]:
    """(labels, vectors) of one swept key's values: the values themselves as a 1-D array
    when they are plain (numbers, strings, bools), else their JSON texts; `vectors` the
    (n, k) numbers when every value is a list of k numbers, else None."""
    if all(_is_plain(v) for v in values):
        return np.asarray(values), None
    labels = np.asarray([v if isinstance(v, str) else json.dumps(v) for v in values])
    vectors = None
    if all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for v in values for x in v):
        vectors = np.asarray(values, dtype=np.float64 if any(
            isinstance(x, float) for v in values for x in v) else np.int64)
    return labels, vectors


def layout(m: dict) -> tuple[str, list[str], list[int]]:
    """("grid" | "points" | "single", swept keys, grid shape) of a manifest's points."""
    sweep = m.get("sweep") or {}
    names = list(sweep)
    if not names:
        return "single", [], []
    coords = [pt["coords"] for pt in m["points"]]
    product = [dict(zip(names, vs)) for vs in itertools.product(*(sweep[n] for n in names))]
    if coords == product:
        return "grid", names, [len(sweep[n]) for n in names]
    return "points", names, [len(coords)]


def point_coords(m: dict, p: int) -> dict:
    """The coordinates of point p alone (scalars; `<key>_vector` as 1-D), as the slice of
    the whole study at that point has them."""
    kind, names, _ = layout(m)
    if kind == "single":
        return {}
    xr = _xarray()
    out = {POINT: p}
    for name in names:
        labels, vectors = sweep_values(_values_along(m, name, kind))
        i = _position(m, kind, names, p, name)
        out[name] = labels[i]
        if vectors is not None:
            out[f"{name}_vector"] = xr.Variable((f"{name}_component",), vectors[i])
    return out


def _values_along(m: dict, name: str, kind: str) -> list:
    """The values of a swept key along its dimension: the `[sweep]` list for a grid, the
    points' values for a list of points."""
    if kind == "grid":
        return list(m["sweep"][name])
    return [pt["coords"][name] for pt in m["points"]]


def _position(m: dict, kind: str, names: list, p: int, name: str) -> int:
    if kind != "grid":
        return p
    shape = [len(m["sweep"][n]) for n in names]
    return int(np.unravel_index(p, shape)[names.index(name)])


# ---------------------------------------------------------------- metadata


def store_attrs(m: dict, path) -> dict:
    """The dataset attributes of a store: what the study is, how it ran, with what."""
    run = m.get("run", {})
    versions = m.get("versions", {})
    attrs = {
        "study": m.get("study", ""),
        "description": m.get("description", ""),
        "study_text": m.get("study_text", ""),
        "study_sha256": m.get("study_sha256", ""),
        "source": m.get("source", ""),
        "overrides": json.dumps(m.get("overrides", [])),
        "sweep": json.dumps(m.get("sweep", {})),
        "store": str(path),
        "store_format": m.get("format", ""),
        "status": m.get("status", ""),
        "created": m.get("created", ""),
        "x64": int(bool(m.get("x64", False))),
    }
    for k, v in run.items():
        attrs[k] = v if isinstance(v, (int, float, str)) and not isinstance(v, bool) else (
            int(v) if isinstance(v, bool) else json.dumps(v))
    for pkg in ("dynsim", "jax", "jaxlib", "diffrax", "equinox", "xarray"):
        if pkg in versions:
            attrs[f"{pkg}_version"] = versions[pkg]
    attrs["versions"] = json.dumps(versions)
    return attrs


def describe(ds):
    """`ds` with `long_name`/`description`/`units` on the variables `_measures` declares."""
    for name in list(ds.variables):
        for k, v in variable_attrs(str(name)).items():
            ds[name].attrs.setdefault(k, v)
    return ds


# ---------------------------------------------------------------- assembling


def assemble(parts: list, m: dict, path):
    """One dataset of the per-point datasets `parts` (store point order) of manifest `m`,
    in the layout described in the module docstring."""
    kind, names, shape = layout(m)
    xr = _xarray()
    if kind == "single":
        ds = parts[0]
        ds.attrs = {**ds.attrs, **store_attrs(m, path)}
        return describe(ds)
    parts, masks, notes = _align(parts)
    stacked = xr.concat(parts, dim=POINT, data_vars="all", coords="minimal",
                        compat="override", join="exact", combine_attrs="drop_conflicts")
    stacked = stacked.assign({k: xr.concat(v, dim=POINT) for k, v in masks.items()})
    if kind == "grid":
        sweep_dims = names
        out = _unflatten(stacked, sweep_dims, shape)
    else:
        sweep_dims = [POINT]
        out = stacked
    coords = {}
    for name in names:
        labels, vectors = sweep_values(_values_along(m, name, kind))
        dim = name if kind == "grid" else POINT
        coords[name] = (dim, labels)
        if vectors is not None:
            coords[f"{name}_vector"] = ((dim, f"{name}_component"), vectors)
    idx = np.arange(len(m["points"]))
    coords[POINT] = (tuple(sweep_dims), idx.reshape(shape) if kind == "grid" else idx)
    out = out.assign_coords(coords)
    out.attrs = {**stacked.attrs, **store_attrs(m, path), "sweep_layout": kind}
    for k in [k for k in out.attrs if k in ("model", "dynamics", "loss_fn")]:
        del out.attrs[k]  # per point (they differ along the sweep)
    describe(out)
    for name in masks:
        out[name].attrs.update({
            "long_name": f"mask of {name[:-len('_mask')]}",
            "description": _MASK_DESCRIPTIONS.get(
                name, f"True where the point has {name[:-len('_mask')]}"),
        })
    out.attrs["padded"] = json.dumps(notes)  # what was padded, as the warning says
    if notes:
        where = str(path)
        warnings.warn(
            f"dynsim.load({where}): not every variable has the same shape at every sweep "
            "point; NaN-padded, with masks (attrs['padded']): " + "; ".join(notes),
            UserWarning, stacklevel=3)
    return out


_MASK_DESCRIPTIONS = {"time_mask": "True where the point saved at this time"}


def _unflatten(ds, dims: list[str], shape: list[int]):
    """`ds` with its `point` dimension split into `dims` of sizes `shape` (C order)."""
    xr = _xarray()
    out = {}
    for name, var in ds.data_vars.items():
        if POINT not in var.dims:
            out[name] = var.variable
            continue
        rest = [d for d in var.dims if d != POINT]
        data = var.transpose(POINT, *rest).values
        out[name] = xr.Variable(tuple(dims) + tuple(rest),
                                data.reshape(tuple(shape) + data.shape[1:]), var.attrs)
    coords = {k: v.variable for k, v in ds.coords.items() if POINT not in v.dims}
    return xr.Dataset(out, coords=coords, attrs=ds.attrs)


def _align(parts: list) -> tuple[list, dict, list[str]]:
    """The parts padded to common variables and shapes: (parts, masks, notes). `masks`
    maps a mask name to its per-point `DataArray`s; `notes` says what was padded."""
    xr = _xarray()
    notes = []
    masks: dict = {}
    # variables some points lack
    names: list = []
    for ds in parts:
        names += [v for v in ds.data_vars if v not in names]
    missing = [v for v in names if not all(v in ds for ds in parts)]
    # save grids
    times = [ds["time"].values for ds in parts]
    if not all(np.array_equal(t, times[0]) for t in times):
        union = np.unique(np.concatenate(times))
        masks["time_mask"] = [xr.DataArray(np.isin(union, t), dims=("time",)) for t in times]
        timed = [v for v in names if any(v in ds and "time" in ds[v].dims for ds in parts)]
        parts = [_float_where_padded(ds, "time").reindex(time=union) for ds in parts]
        notes.append(f"{', '.join(timed)}: save times differ between points "
                     f"({len({t.tobytes() for t in times})} grids), on the union of "
                     f"{union.size} times (`time_mask`)")
    # dimensions whose sizes differ
    dims: dict = {}
    for ds in parts:
        for d, n in ds.sizes.items():
            if d not in KEEP:
                dims.setdefault(d, []).append(n)
    groups: dict = {}  # sizes along the points -> (dims, variables): one note per group
    for d in dims:
        sizes = [ds.sizes.get(d, 0) for ds in parts]
        if len(set(sizes)) == 1:
            continue
        top = max(sizes)
        users = [v for v in names if any(v in ds and d in ds[v].dims for ds in parts)]
        masks[f"{d}_mask"] = [xr.DataArray(np.arange(top) < n, dims=(d,)) for n in sizes]
        parts = [_pad(ds, d, top) for ds in parts]
        g = groups.setdefault(tuple(sizes), ([], []))
        g[0].append(d)
        g[1].extend(v for v in users if v not in g[1])
    for sizes, (ds_, users) in groups.items():
        notes.append(f"{', '.join(users)}: sizes {_range(sizes)} between points along "
                     f"{', '.join(ds_)}, padded to {max(sizes)} "
                     f"(masks {', '.join(f'`{d}_mask`' for d in ds_)})")
    # variables some points lack: NaN-filled, of the shape the others have
    for v in missing:
        have = [ds for ds in parts if v in ds]
        template = have[0][v]
        masks[f"{v}_mask"] = [xr.DataArray(v in ds) for ds in parts]
        parts = [ds if v in ds else ds.assign({v: xr.full_like(
            template, np.nan, dtype=np.result_type(template.dtype, np.float32))})
            for ds in parts]
        notes.append(f"{v}: only at {len(have)} of {len(parts)} points (`{v}_mask`)")
    return parts, masks, notes


def _range(sizes) -> str:
    s = sorted(set(sizes))
    return ", ".join(map(str, s)) if len(s) <= 4 else f"{s[0]}–{s[-1]}"


def _float_where_padded(ds, dim: str):
    """`ds` with the integer/bool variables along `dim` as floats (they are NaN-padded)."""
    for v in ds.data_vars:
        if dim in ds[v].dims and ds[v].dtype.kind in "iub":
            ds = ds.assign({v: ds[v].astype(np.float64)})
    return ds


def _pad(ds, dim: str, size: int):
    n = ds.sizes.get(dim, 0)
    if n == size:
        return ds
    ds = _float_where_padded(ds, dim)
    if n == 0:  # the dimension is absent from this point: only its variables' other points
        return ds
    return ds.pad({dim: (0, size - n)}, constant_values=np.nan)


def select_point(ds, p: int):
    """Point p of a loaded study, its padding removed: equal to `load(DIR, point=p)`
    (attributes aside)."""
    if POINT in ds.dims:
        out = ds.isel({POINT: p})
    elif POINT in ds.coords:
        idx = np.argwhere(ds[POINT].values == p)[0]
        out = ds.isel(dict(zip(ds[POINT].dims, map(int, idx))))
    else:
        return ds
    for name in [str(v) for v in out.data_vars if str(v).endswith("_mask")]:
        base = name[: -len("_mask")]
        keep = out[name].values
        out = out.drop_vars(name)
        if base in out.dims:
            out = out.isel({base: keep})
        elif base in out.data_vars and not bool(keep):
            out = out.drop_vars(base)
    return out
