"""Figures and a markdown summary of a results directory (matplotlib, Agg backend)."""

from pathlib import Path

import numpy as np

from .._status import OK_STATUSES, STATUS_NAMES, is_ok
from ._analyses import ANALYSES, DEFAULT_ANALYSES, summarize_measure
from ._store import Store, _load_point

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
WARN = "⚠"
OK_NOTE = (
    f"ok = seeds that {' or '.join(STATUS_NAMES[int(s)] for s in OK_STATUSES)}; "
    f"{WARN} marks a point where some seeds did not (max_steps: the solver's step budget "
    "ran out before t1; diverged; failed); its measures include those seeds' last states."
)


def _label(coords: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in coords.items()) or "all seeds"


def point_summaries(path) -> tuple[dict, list[dict]]:
    """The manifest and, per point, {coords, status counts, quantiles of each analysis}."""
    store = Store(path)
    m = store.read_manifest()
    analyses = m["config"].get("analyses", list(DEFAULT_ANALYSES))
    rows = []
    for p, pt in enumerate(m["points"]):
        ds = _load_point(store, m, p)
        row = {"point": p, "coords": pt["coords"], "status": summarize_measure("status", ds),
               "ok": int(np.sum(is_ok(ds["status"]))), "stats": {}}
        for name in analyses:
            if name != "status":
                row["stats"][name] = summarize_measure(name, ds)
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


def _scalar(v):
    """A one-element list (e.g. `model.hidden = [40]`) as its number, for sweep plots."""
    return v[0] if isinstance(v, list) and len(v) == 1 else v


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def report(path, out: str | Path | None = None, *, formats=("png", "svg")) -> list[Path]:
    """Write figures and `summary.md` for the study at `path` into `out` (default
    `path/report`). Returns the files written."""
    # deferred: only reports need matplotlib, and its backend is chosen before pyplot loads
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store = Store(path)
    m, rows = point_summaries(path)
    out = Path(out) if out is not None else store.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    analyses = m["config"].get("analyses", [])
    datasets = [_load_point(store, m, p) for p in range(len(m["points"]))]
    labels = [_label(pt["coords"]) for pt in m["points"]]
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(datasets), 1)))

    def save(fig, stem):
        for fmt in formats:
            f = out / f"{stem}.{fmt}"
            fig.savefig(f, dpi=120, bbox_inches="tight")
            written.append(f)
        plt.close(fig)

    # loss curves with seed-quantile bands
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for ds, lab, col in zip(datasets, labels, colors):
        t = np.asarray(ds["time"])
        loss = np.asarray(ds["loss"], np.float64)
        q = np.nanquantile(loss, QUANTILES, axis=0)
        pos = t > 0
        ax.plot(t[pos], q[2][pos], color=col, label=lab)
        ax.fill_between(t[pos], q[1][pos], q[3][pos], color=col, alpha=0.3, lw=0)
        ax.fill_between(t[pos], q[0][pos], q[4][pos], color=col, alpha=0.12, lw=0)
    ax.set(xscale="log", yscale="log", xlabel="time t", ylabel="training loss",
           title=f"{m['study']}: loss (median, 25–75% and 5–95% over seeds)")
    ax.legend(fontsize=7)
    save(fig, "loss_curves")

    # histograms of per-seed analyses (distances, drift, risk)
    for name in [a for a in analyses if a not in ("status",)]:
        vals = [np.asarray(ds[name], np.float64) for ds in datasets if name in ds]
        vals = [v[np.isfinite(v)] for v in vals]
        if not vals or not any(v.size for v in vals):
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        allv = np.concatenate(vals)
        logx = bool(np.all(allv > 0)) and allv.max() / max(allv.min(), 1e-300) > 100
        bins = (np.geomspace(allv.min(), allv.max(), 40) if logx
                else np.linspace(allv.min(), allv.max() + 1e-300, 40))
        for v, lab, col in zip(vals, labels, colors):
            ax.hist(v, bins=bins, color=col, alpha=0.55, label=lab)
        ax.set(xscale="log" if logx else "linear", xlabel=name, ylabel="seeds",
               title=f"{m['study']}: {name}")
        ax.legend(fontsize=7)
        save(fig, f"hist_{name}")

    # sweep plots: median (IQR bars) vs each numeric swept parameter, log-log slope
    slopes: dict = {}
    for param, values in m.get("sweep", {}).items():
        values = [_scalar(v) for v in values]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        for name in [a for a in analyses if a != "status"]:
            xs, med, lo, hi = [], [], [], []
            for r in rows:
                s = r["stats"].get(name, {})
                if "median" in s:
                    xs.append(_scalar(r["coords"][param]))
                    med.append(s["median"])
                    lo.append(s["q25"])
                    hi.append(s["q75"])
            if len(set(xs)) < 2:
                continue
            xs, med, lo, hi = map(np.asarray, (xs, med, lo, hi))
            fig, ax = plt.subplots(figsize=(5.6, 4.0))
            ax.errorbar(xs, med, yerr=[med - lo, hi - med], fmt="o-", capsize=3)
            loglog = bool(np.all(xs > 0) and np.all(med > 0))
            title = f"{name} vs {param}"
            if loglog:
                ax.set(xscale="log", yscale="log")
                if len(set(xs)) >= 3:
                    slope, icpt = np.polyfit(np.log(xs), np.log(med), 1)
                    slopes[(param, name)] = slope
                    xx = np.geomspace(xs.min(), xs.max(), 50)
                    ax.plot(xx, np.exp(icpt) * xx**slope, "--", color="gray",
                            label=f"fit: slope {slope:.2f}")
                    ax.legend(fontsize=8)
            ax.set(xlabel=param, ylabel=f"{name} (median, IQR)", title=title)
            save(fig, f"sweep_{param.replace('.', '_')}_{name}")

    md = [f"# {m['study']}", "", m.get("description", ""), "",
          f"Run: {m['status']}; {m['run']['seeds']} seeds per point, "
          f"{len(m['points'])} point(s), precision {m['run']['precision']}.", "",
          summary_table(m, rows), ""]
    if slopes:
        md += ["## Log-log slopes of the median", ""]
        md += [f"- {name} vs {param}: {s:.3f}" for (param, name), s in slopes.items()]
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


__all__ = ["ANALYSES", "point_summaries", "report", "summary_table"]
