"""Figures and a markdown summary of a results directory (matplotlib, Agg backend).

Everything is drawn from `dynsim.load(DIR)` (the one reader of a store), in its
layout: one dimension per swept key of a grid sweep, or a `point` dimension.

Figures (PNG and SVG each):

- `loss_curves`: the training loss against time, median over seeds with its 25–75%
  band (and the 5–95% band for a single curve).
- `sweep_<key>_<measure>`: each per-seed measure against each swept key on the x axis
  (numeric keys; a study that sweeps only categorical keys gets its first one),
  median with the 25–75% band, or with 25–75% bars on a categorical axis.
- `hist_<measure>`: the distribution over seeds of each measure per point (a step
  histogram, or the empirical CDF with fewer than `HIST_MIN_SEEDS` seeds).

The other swept dimensions of a figure are laid out by count: one is the hue, the
next the columns of a grid of panels, the others its rows (one row per combination).
The hue is a numeric key where there is one (ordered colours), else a categorical one.
A hue of at most `MAX_LEGEND` entries has a legend, a longer one a colour bar. Keys that
name seeds (`data.seed`, any `*.seed` or `*.key`), strings, bools and lists without a
single varying component are categorical: evenly spaced, labelled, never fitted.
A list-valued key with one varying component (`model.hidden = [[10], [40]]`) is
plotted against that component.

Fits: only for the measures `_measures.MEASURES` declares a law for (`fit`), and only
against a numeric key with at least 3 positive values: a power law c·x^a fitted by
least squares on log-log axes, or c/log(x/x0) (1/y linear in log x); one fit per
curve (never across the other swept dimensions), listed in summary.md with its R²,
and drawn dashed only where it holds (R² ≥ `MIN_R2` on the linearized axes).
"""

import dataclasses
import itertools
import json
import warnings
from pathlib import Path

import numpy as np

from .._status import OK_STATUSES, STATUS_NAMES, is_ok
from ._analyses import ANALYSES, DEFAULT_ANALYSES, summarize_measure
from ._dataset import POINT, select_point
from ._measures import MEASURES, measure
from ._store import Store, load

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MAX_LEGEND = 8  # entries; a longer hue gets a colour bar
MIN_R2 = 0.9  # a fitted law is drawn only if it explains this much of the variance
MIN_WIDTH = 6.4  # inches: room for the two-line title
HIST_MIN_SEEDS = 30  # fewer seeds per point: an empirical CDF instead of a histogram
WARN = "⚠"
OK_NOTE = (
    f"ok = seeds that {' or '.join(STATUS_NAMES[int(s)] for s in OK_STATUSES)}; "
    f"{WARN} marks a point where some seeds did not (max_steps: the solver's step budget "
    "ran out before t1; diverged; failed); its measures include those seeds' last states."
)


def _label(coords: dict) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in coords.items()) or "all seeds"


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:g}"
    if isinstance(v, list):
        return json.dumps(v)
    return str(v)


def _load_quiet(path):
    """`load(path)` without its warning, and what it padded (`attrs["padded"]`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "dynsim.load", UserWarning)
        ds = load(path)
    return ds, json.loads(ds.attrs.get("padded", "[]"))


def point_summaries(path, ds=None) -> tuple[dict, list[dict]]:
    """The manifest and, per point, {coords, status counts, quantiles of each analysis},
    computed from `dynsim.load(path)` (or the dataset `ds` it returned)."""
    m = Store(path).read_manifest()
    if ds is None:
        ds, _ = _load_quiet(path)
    analyses = m["config"].get("analyses", list(DEFAULT_ANALYSES))
    rows = []
    for p, pt in enumerate(m["points"]):
        one = select_point(ds, p)
        row = {"point": p, "coords": pt["coords"], "status": summarize_measure("status", one),
               "ok": int(np.sum(is_ok(one["status"]))), "stats": {}}
        for name in analyses:
            if name != "status":
                row["stats"][name] = summarize_measure(name, one)
        rows.append(row)
    return m, rows


def summary_table(m: dict, rows: list[dict], names=None) -> str:
    """A markdown table, one row per point: `ok` and the status counts first, then the
    median [q25, q75] of each analysis; a note defines `ok` and the ⚠ mark."""
    names = names or [n for n in m["config"].get("analyses", []) if n != "status"]
    sweep = list(m.get("sweep", {}))
    statuses = list(STATUS_NAMES.values())
    head = sweep + ["ok"] + statuses + [f"{n} (median [q25, q75])" for n in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        st = r["status"]
        n = sum(st.values())
        ok = f"{r['ok']}/{n}" if r["ok"] == n else f"{WARN} {r['ok']}/{n}"
        cells = [_fmt(r["coords"][k]) for k in sweep] + [ok]
        cells += [str(st.get(name, 0)) for name in statuses]
        for name in names:
            s = r["stats"].get(name, {})
            cells.append(
                f"{s['median']:.3g} [{s['q25']:.3g}, {s['q75']:.3g}]" if "median" in s else "—"
            )
        lines.append("| " + " | ".join(cells) + " |")
    bad = sum(r["ok"] < sum(r["status"].values()) for r in rows)
    lines += ["", (f"{WARN} {bad} of {len(rows)} point(s) have seeds that are not ok. " if bad
                   else "All seeds ok. ") + OK_NOTE]
    return "\n".join(lines)


# ---------------------------------------------------------------- sweep axes


@dataclasses.dataclass
class Axis:
    """One swept key as a plot axis: the dataset dimension it indexes, its name, the
    text of each value, and its numbers (None: categorical)."""

    dim: str
    key: str
    labels: list[str]
    values: np.ndarray | None

    @property
    def numeric(self) -> bool:
        return self.values is not None

    def __len__(self) -> int:
        return len(self.labels)


def _seed_like(key: str) -> bool:
    last = key.split(".")[-1]
    return last in ("seed", "key") or last.endswith("_seed")


def sweep_axes(ds, m: dict) -> list[Axis]:
    """The swept keys of a loaded study as plot axes (keys with one value left out)."""
    out = []
    for key in m.get("sweep", {}):
        coord = ds[key]
        dim = coord.dims[0]
        raw = coord.values
        labels = [_fmt(v.item() if hasattr(v, "item") else v) for v in raw]
        values = None
        vec = f"{key}_vector"
        if vec in ds.coords:
            numbers = np.asarray(ds[vec].values, np.float64)
            varying = [j for j in range(numbers.shape[1]) if len(set(numbers[:, j])) > 1]
            if len(varying) == 1:
                j = varying[0]
                values = numbers[:, j]
                if numbers.shape[1] > 1:
                    key = f"{key}[{j}]"
        elif raw.dtype.kind in "iuf" and not _seed_like(key):
            values = raw.astype(np.float64)
        if len(set(labels)) < 2:
            continue
        out.append(Axis(dim, key, labels, values))
    return out


def _hue_first(axes: list[Axis]) -> list[Axis]:
    """`axes` ordered hue, columns, rows: the hue a numeric axis (the one with most values)
    if there is one, the rest in sweep order."""
    numeric = [a for a in axes if a.numeric]
    if not numeric:
        return list(axes)
    hue = max(numeric, key=len)
    return [hue] + [a for a in axes if a is not hue]


@dataclasses.dataclass
class Layout:
    hue: Axis | None
    cols: Axis | None
    rows: list[Axis]

    @property
    def shape(self) -> tuple[int, int]:
        nrows = int(np.prod([len(a) for a in self.rows])) if self.rows else 1
        return nrows, len(self.cols) if self.cols else 1

    def panels(self):
        """(row, col, {dim: index}, title) of every panel."""
        row_idx = list(itertools.product(*(range(len(a)) for a in self.rows)))
        for r, ri in enumerate(row_idx):
            for c in range(len(self.cols) if self.cols else 1):
                sel = {a.dim: i for a, i in zip(self.rows, ri)}
                parts = [f"{a.key} = {a.labels[i]}" for a, i in zip(self.rows, ri)]
                if self.cols:
                    sel[self.cols.dim] = c
                    parts.insert(0, f"{self.cols.key} = {self.cols.labels[c]}")
                yield r, c, sel, ", ".join(parts)

    def curves(self, sel: dict):
        """(hue index, {dim: index}) of every curve in the panel `sel`."""
        for h in range(len(self.hue) if self.hue else 1):
            s = dict(sel)
            if self.hue:
                s[self.hue.dim] = h
            yield h, s


def layout_of(axes: list[Axis]) -> Layout:
    """Hue, columns and rows of the axes (by their count; see the module docstring)."""
    axes = _hue_first(axes)
    return Layout(axes[0] if axes else None, axes[1] if len(axes) > 1 else None, axes[2:])


# ---------------------------------------------------------------- drawing helpers


def _colors(plt, hue: Axis | None):
    n = len(hue) if hue else 1
    if hue is None:
        return ["C0"]
    if hue.numeric:
        return list(plt.cm.viridis(np.linspace(0.0, 0.88, n)))
    if n <= 10:
        return [f"C{i}" for i in range(n)]
    return list(plt.cm.turbo(np.linspace(0.05, 0.95, n)))


def _figure(plt, lay: Layout, panel=(3.6, 2.8)):
    nrows, ncols = lay.shape
    width = max(MIN_WIDTH, 0.6 + panel[0] * ncols + (1.4 if lay.hue else 0.0))
    fig, axs = plt.subplots(nrows, ncols, figsize=(width, 0.9 + panel[1] * nrows),
                            squeeze=False, sharex=True, sharey=True, layout="constrained")
    return fig, axs


def _hue_key(plt, fig, axs, lay: Layout, colors, handles):
    """A legend (≤ MAX_LEGEND entries) or a colour bar for the hue, outside the panels."""
    hue = lay.hue
    if hue is None:
        return
    if len(hue) <= MAX_LEGEND and handles:
        fig.legend(handles=handles, title=hue.key, loc="outside right center", fontsize=8,
                   title_fontsize=8, frameon=False)
        return
    import matplotlib as mpl

    cmap = mpl.colors.ListedColormap(colors)
    norm = mpl.colors.BoundaryNorm(np.arange(len(hue) + 1) - 0.5, len(hue))
    cb = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axs, shrink=0.8,
                      label=hue.key)
    step = max(1, len(hue) // 8)
    ticks = list(range(0, len(hue), step))
    cb.set_ticks(ticks)
    cb.set_ticklabels([hue.labels[i] for i in ticks])


def _quantiles(a: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices (padding)
        return np.nanquantile(a, QUANTILES, axis=axis)


def _positive_log(values) -> bool:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return bool(v.size > 1 and np.all(v > 0) and v.max() / v.min() >= 10)


def _title(m: dict, what: str, n_seeds: int) -> str:
    return f"{m['study']}: {what}\n(median over {n_seeds} seeds, band 25–75%)"


# ---------------------------------------------------------------- figures


def _loss_figure(plt, ds, m, axes, n_seeds):
    lay = layout_of(axes)
    fig, axs = _figure(plt, lay)
    colors = _colors(plt, lay.hue)
    handles = []
    for r, c, sel, title in lay.panels():
        ax = axs[r, c]
        for h, s in lay.curves(sel):
            d = ds.isel(s) if s else ds
            t = np.asarray(d["time"].values, np.float64)
            keep = t > 0
            if "time_mask" in d:
                keep &= np.asarray(d["time_mask"].values, bool)
            loss = np.asarray(d["loss"].transpose("seed", "time").values, np.float64)
            q = _quantiles(loss[:, keep], axis=0)
            line, = ax.plot(t[keep], q[2], color=colors[h], lw=1.4,
                            label=lay.hue.labels[h] if lay.hue else None)
            ax.fill_between(t[keep], q[1], q[3], color=colors[h], alpha=0.25, lw=0)
            if keep.any():  # where each curve ends (curves of a sweep of t1 overlap)
                ax.plot(t[keep][-1], q[2][-1], "o", ms=4, color=colors[h])
            if lay.hue is None:
                ax.fill_between(t[keep], q[0], q[4], color=colors[h], alpha=0.1, lw=0)
            if r == 0 and c == 0:
                handles.append(line)
        ax.set(xscale="log", yscale="log")
        if title:
            ax.set_title(title, fontsize=8)
    for ax in axs[-1, :]:
        ax.set_xlabel("time t")
    for ax in axs[:, 0]:
        ax.set_ylabel("training loss")
    _hue_key(plt, fig, axs, lay, colors, handles)
    fig.suptitle(_title(m, "training loss", n_seeds), fontsize=10)
    return fig


def _r2(u: np.ndarray, v: np.ndarray, slope: float, icpt: float) -> float:
    """The coefficient of determination of the line v ≈ slope·u + icpt."""
    ss = float(np.sum((v - v.mean()) ** 2))
    return 1.0 - float(np.sum((v - slope * u - icpt) ** 2)) / ss if ss > 0 else 1.0


def _fit(kind: str, x: np.ndarray, y: np.ndarray):
    """(fit, xx, yy) of the declared law fitted to the medians y(x), or None with fewer
    than 3 positive points. `fit["holds"]`: R² ≥ `MIN_R2` on the linearized axes (log y
    against log x for a power law, 1/y against log x for c/log(x/x0)); a law that does
    not hold is reported, not drawn."""
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[ok], y[ok]
    if len(set(x)) < 3:
        return None
    xx = np.geomspace(x.min(), x.max(), 50)
    u = np.log(x)
    if kind == "power_law":
        slope, icpt = np.polyfit(u, np.log(y), 1)
        r2 = _r2(u, np.log(y), slope, icpt)
        return {"law": "c·x^a", "a": float(slope), "c": float(np.exp(icpt)), "r2": r2,
                "holds": r2 >= MIN_R2, "text": f"slope {slope:.2f}, R² {r2:.2f}"}, \
            xx, np.exp(icpt) * xx**slope
    # y = c/log(x/x0)  <=>  1/y = (log x − log x0)/c: a line in log x
    slope, icpt = np.polyfit(u, 1.0 / y, 1)
    r2 = _r2(u, 1.0 / y, slope, icpt)
    if slope <= 0:  # 1/y does not grow with log x: no such law
        return {"law": "c/log(x/x0)", "c": float("nan"), "r2": r2, "holds": False,
                "text": "1/y does not grow with log x"}, xx, np.full_like(xx, np.nan)
    c, x0 = 1.0 / slope, float(np.exp(-icpt / slope))
    return ({"law": "c/log(x/x0)", "c": float(c), "x0": x0, "r2": r2, "holds": r2 >= MIN_R2,
             "text": f"c = {c:.3g}, x0 = {x0:.3g}, R² {r2:.2f}"}, xx, c / np.log(xx / x0))


def _sweep_figure(plt, ds, m, x: Axis, others: list[Axis], name: str, n_seeds, fits: list):
    """Measure `name` (median, IQR over seeds) against axis `x`, the other swept axes as
    hue and facets."""
    from matplotlib.ticker import NullFormatter

    lay = layout_of(others)
    fig, axs = _figure(plt, lay)
    colors = _colors(plt, lay.hue)
    decl = measure(name)
    kind = decl.fit if decl and x.numeric else None
    handles = []
    n_hue = len(lay.hue) if lay.hue else 1
    all_med = []
    drawn = tried = 0
    for r, c, sel, title in lay.panels():
        ax = axs[r, c]
        for h in range(n_hue):
            s = dict(sel)
            if lay.hue:
                s[lay.hue.dim] = h
            d = ds[name].isel(s) if s else ds[name]
            if x.dim == POINT and POINT in d.dims:
                pass
            a = np.asarray(d.transpose(x.dim, "seed").values, np.float64)
            a = np.where(np.isfinite(a), a, np.nan)
            q = _quantiles(a, axis=1)
            all_med.append(q[2])
            label = lay.hue.labels[h] if lay.hue else None
            if x.numeric:
                order = np.argsort(x.values)
                xs = x.values[order]
                line, = ax.plot(xs, q[2][order], "o-", ms=3.5, lw=1.3, color=colors[h],
                                label=label)
                ax.fill_between(xs, q[1][order], q[3][order], color=colors[h], alpha=0.22, lw=0)
                if kind:
                    got = _fit(kind, xs, q[2][order])
                    if got is not None:
                        tried += 1
                        info, xx, yy = got
                        if info["holds"]:
                            ax.plot(xx, yy, "--", color=colors[h], lw=0.9, alpha=0.8)
                            drawn += 1
                        else:
                            info["text"] = f"does not hold ({info['text']})"
                        fits.append({"measure": name, "x": x.key, "panel": title,
                                     "hue": f"{lay.hue.key} = {label}" if lay.hue else "",
                                     **info})
                        if n_hue == 1:
                            rising = q[2][order][-1] > q[2][order][0]  # the empty corner
                            ax.text(0.03, 0.96 if rising else 0.04,
                                    f"fit {info['law']}: {info['text']}",
                                    transform=ax.transAxes, fontsize=7, color="0.25",
                                    va="top" if rising else "bottom",
                                    bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1})
            else:
                width = 0.7
                off = (h - (n_hue - 1) / 2) * width / max(n_hue, 1)
                pos = np.arange(len(x)) + off
                line = ax.errorbar(pos, q[2], yerr=[q[2] - q[1], q[3] - q[2]], fmt="o",
                                   ms=4, capsize=2, color=colors[h], label=label)
            if r == 0 and c == 0:
                handles.append(line)
        if title:
            ax.set_title(title, fontsize=8)
    med = np.concatenate(all_med) if all_med else np.array([])
    logy = (decl.log_scale if decl else True) and _positive_log(med)
    positive = x.numeric and bool(np.all(x.values > 0))
    logx = x.numeric and (_positive_log(x.values) or (kind is not None and positive))
    if kind == "power_law" and positive and med.size and bool(np.all(med[np.isfinite(med)] > 0)):
        logy = True  # a power law is a line on log-log axes
    for ax in axs.flat:
        if logx:
            ax.set_xscale("log")
            if len(x) <= MAX_LEGEND:  # the swept values themselves as the ticks
                ax.set_xticks(x.values, [x.labels[i] for i in range(len(x))])
                ax.xaxis.set_minor_formatter(NullFormatter())
        if logy:
            ax.set_yscale("log")
        if not x.numeric:
            ax.set_xticks(np.arange(len(x)))
            rot = 30 if max(len(s) for s in x.labels) > 6 else 0
            ax.set_xticklabels(x.labels, rotation=rot, fontsize=8)
            ax.set_xlim(-0.6, len(x) - 0.4)
    ylabel = decl.long_name if decl else name
    for ax in axs[-1, :]:
        ax.set_xlabel(x.key)
    for ax in axs[:, 0]:
        ax.set_ylabel(ylabel, fontsize=9)
    _hue_key(plt, fig, axs, lay, colors, handles)
    law = "c·x^a" if kind == "power_law" else "c/log(x/x0)"
    extra = (f"; dashed: fitted {law}" if drawn else
             f"; the declared law {law} does not hold" if tried else "")
    fig.suptitle(f"{m['study']}: {ylabel} vs {x.key}\n(median over {n_seeds} seeds, "
                 f"band 25–75%{extra})", fontsize=10)
    return fig


def _hist_figure(plt, ds, m, axes, name):
    """The distribution over seeds of `name` per point: step histograms with at least
    `HIST_MIN_SEEDS` seeds, else empirical CDFs (a histogram of a few seeds is noise)."""
    lay = layout_of(axes)
    values = np.asarray(ds[name].values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    ecdf = ds.sizes["seed"] < HIST_MIN_SEEDS
    logx = bool(np.all(values > 0)) and values.max() / max(values.min(), 1e-300) > 100
    lo, hi = values.min(), values.max()
    if hi <= lo:
        lo, hi = lo - 0.5 * abs(lo) - 1e-12, hi + 0.5 * abs(hi) + 1e-12
    bins = np.geomspace(lo, hi, 30) if logx else np.linspace(lo, hi, 30)
    fig, axs = _figure(plt, lay)
    colors = _colors(plt, lay.hue)
    handles = []
    for r, c, sel, title in lay.panels():
        ax = axs[r, c]
        for h, s in lay.curves(sel):
            v = np.asarray((ds[name].isel(s) if s else ds[name]).values, np.float64).ravel()
            v = np.sort(v[np.isfinite(v)])
            label = lay.hue.labels[h] if lay.hue else None
            if ecdf:
                if v.size == 0:
                    continue
                line, = ax.step(np.r_[v[0], v], np.arange(v.size + 1) / v.size, where="post",
                                lw=1.3, color=colors[h], label=label)
            else:
                _, _, patches = ax.hist(v, bins=bins, histtype="step", lw=1.3,
                                        color=colors[h], label=label)
                line = patches[0] if len(patches) else None
            if r == 0 and c == 0 and line is not None:
                handles.append(line)
        if logx:
            ax.set_xscale("log")
        if title:
            ax.set_title(title, fontsize=8)
    decl = measure(name)
    what = decl.long_name if decl else name
    for ax in axs[-1, :]:
        ax.set_xlabel(what)
    for ax in axs[:, 0]:
        ax.set_ylabel("fraction of seeds ≤ x" if ecdf else "seeds", fontsize=9)
    _hue_key(plt, fig, axs, lay, colors, handles)
    how = "empirical CDF" if ecdf else "histogram"
    fig.suptitle(f"{m['study']}: {what} over {ds.sizes['seed']} seeds ({how})", fontsize=10)
    return fig


def _x_axes(axes: list[Axis]) -> list[Axis]:
    """The axes measures are plotted against: the numeric ones, else the first."""
    numeric = [a for a in axes if a.numeric]
    return numeric or axes[:1]


def report(path, out: str | Path | None = None, *, formats=("png", "svg")) -> list[Path]:
    """Write figures and `summary.md` for the study at `path` into `out` (default
    `path/report`). Returns the files written."""
    # deferred: only reports need matplotlib, and its backend is chosen before pyplot loads
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store = Store(path)
    ds, notes = _load_quiet(path)
    m, rows = point_summaries(path, ds)
    out = Path(out) if out is not None else store.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    analyses = [a for a in m["config"].get("analyses", []) if a != "status" and a in ds]
    n_seeds = int(ds.sizes["seed"])
    axes = sweep_axes(ds, m)

    def save(fig, stem):
        if fig is None:
            return
        for fmt in formats:
            f = out / f"{stem}.{fmt}"
            fig.savefig(f, dpi=120)
            written.append(f)
        plt.close(fig)

    if POINT in ds.dims and axes:
        # a list of points: one dimension; the loss curves' hue names each point
        labels = [_label(pt["coords"]) for pt in m["points"]]
        point_axis = Axis(POINT, POINT, labels, None)
        save(_loss_figure(plt, ds, m, [point_axis], n_seeds), "loss_curves")
        for name in analyses:
            save(_hist_figure(plt, ds, m, [point_axis], name), f"hist_{name}")
    else:
        save(_loss_figure(plt, ds, m, axes, n_seeds), "loss_curves")
        for name in analyses:
            save(_hist_figure(plt, ds, m, axes, name), f"hist_{name}")

    fits: list = []
    for x in _x_axes(axes):
        others = [] if x.dim == POINT else [a for a in axes if a.dim != x.dim]
        for name in analyses:
            fig = _sweep_figure(plt, ds, m, x, others, name, n_seeds, fits)
            save(fig, f"sweep_{x.key.replace('.', '_').replace('[', '_').rstrip(']')}_{name}")

    md = [f"# {m['study']}", "", m.get("description", ""), "",
          f"Run: {m['status']}; {m['run']['seeds']} seeds per point, "
          f"{len(m['points'])} point(s), precision {m['run']['precision']}.", "",
          summary_table(m, rows), ""]
    if notes:
        md += ["## Padded variables", "",
               "`dynsim.load` NaN-pads what differs in shape between points; the masks say "
               "which entries are real.", ""] + [f"- {n}" for n in notes] + [""]
    if fits:
        md += ["## Fitted laws (median over seeds; only measures declared with a law)", "",
               f"A law whose R² (on the linearized axes) is below {MIN_R2} does not hold: "
               "it is listed, not drawn.", "",
               "| measure | against x | panel | curve | law | a | c | x0 | R² | holds |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        for f in fits:
            a = f"{f['a']:.3f}" if "a" in f else "—"
            x0 = f"{f['x0']:.4g}" if "x0" in f else "—"
            md.append(f"| {f['measure']} | {f['x']} | {f['panel'] or '—'} | {f['hue'] or '—'} "
                      f"| {f['law']} | {a} | {f['c']:.4g} | {x0} | {f['r2']:.3f} | "
                      f"{'yes' if f['holds'] else 'no'} |")
        md.append("")
    md += ["## Quantiles per point", ""]
    for r in rows:
        n = sum(r["status"].values())
        mark = "" if r["ok"] == n else f" {WARN} {r['ok']}/{n} seeds ok"
        md.append(f"### {_label(r['coords'])}{mark}")
        for name, s in r["stats"].items():
            if "median" in s:
                md.append(f"- {name}: q05 {s['q05']:.4g}, q25 {s['q25']:.4g}, median "
                          f"{s['median']:.4g}, q75 {s['q75']:.4g}, q95 {s['q95']:.4g}")
        md.append("")
    f = out / "summary.md"
    f.write_text("\n".join(md))
    written.append(f)
    return written


__all__ = ["ANALYSES", "MEASURES", "point_summaries", "report", "summary_table"]
