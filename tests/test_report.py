"""`dynsim report`: figures faceted by the swept dimensions, categorical axes, legends
that fit, fits only for declared laws.

Most tests draw from hand-made datasets in the layout `dynsim.load` returns (fast, and
the numbers are known: a measure that is exactly c·x^a must fit a to rounding); one
runs a small three-dimensional study end to end and checks every figure it writes.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from test_study_load import GRID3, _run, _text  # noqa: E402

from dynsim.study import _report as R  # noqa: E402


def _fake(sweep: dict, seeds=4, vectors=None, measure=None):
    """A dataset in the grid layout of `dynsim.load`: loss (sweep..., seed, time) and the
    per-seed measures given by `measure(coords) -> value` (default: 1)."""
    names = list(sweep)
    shape = [len(v) for v in sweep.values()]
    coords = {}
    for n, v in sweep.items():
        coords[n] = (n, np.asarray(v) if vectors is None or n not in vectors
                     else np.asarray([str(x) for x in v]))
        if vectors and n in vectors:
            coords[f"{n}_vector"] = ((n, f"{n}_component"), np.asarray(vectors[n], float))
    t = np.array([0.0, 0.1, 1.0, 10.0])
    rng = np.random.default_rng(0)
    loss = np.exp(-t)[None, :] * (1 + 0.1 * rng.random(shape + [seeds, 1]))
    data = {"loss": (names + ["seed", "time"], loss)}

    def numbers(n):  # what `measure` is a function of: the values, a vector's first
        v = np.asarray(coords[n][1])  # component, or the index of a categorical value
        if vectors and n in vectors:
            return np.asarray(vectors[n], float)[:, 0]
        return v.astype(float) if v.dtype.kind in "iuf" else np.arange(len(v), dtype=float)

    grid = np.meshgrid(*[numbers(n) for n in names], indexing="ij")
    for name, f in (measure or {}).items():
        value = f(*grid)
        data[name] = (names + ["seed"], np.repeat(value[..., None], seeds, axis=-1)
                      * (1 + 1e-3 * rng.standard_normal(shape + [seeds])))
    ds = xr.Dataset(data, coords={**coords, "seed": np.arange(seeds), "time": t,
                                  "point": (names, np.arange(np.prod(shape)).reshape(shape))})
    m = {"study": "fake", "sweep": {n: list(v) for n, v in sweep.items()}}
    return ds, m


def _panels(fig) -> list:
    """The data panels of a figure (not its colour bar)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def test_layout_by_dimension_count():
    ds, m = _fake({"init.std": [0.01, 0.1, 1.0], "data.seed": [0, 1],
                   "dynamics.learning_rate": [0.1, 0.2], "loss.name": ["a", "b", "c", "d"]})
    axes = R.sweep_axes(ds, m)
    assert [a.numeric for a in axes] == [True, False, True, False]  # a data seed is categorical
    lay = R.layout_of(axes[:1])
    assert lay.hue.key == "init.std" and lay.cols is None and lay.shape == (1, 1)
    lay = R.layout_of(axes[:2])
    assert (lay.hue.key, lay.cols.key, lay.shape) == ("init.std", "data.seed", (1, 2))
    lay = R.layout_of(axes[:3])
    assert (lay.hue.key, lay.cols.key, [a.key for a in lay.rows]) == (
        "init.std", "data.seed", ["dynamics.learning_rate"])
    assert lay.shape == (2, 2)
    lay = R.layout_of(axes)  # four: the last two combined into rows
    assert lay.shape == (2 * 4, 2)
    titles = [t for *_, t in lay.panels()]
    assert len(titles) == 16 and titles[1] == (
        "data.seed = 1, dynamics.learning_rate = 0.1, loss.name = a")
    fig = R._loss_figure(plt, ds, m, axes, 4)
    assert len(_panels(fig)) == 16
    plt.close(fig)


def test_legend_only_where_it_fits():
    few, m = _fake({"init.std": list(np.geomspace(0.01, 1, 8))})
    fig = R._loss_figure(plt, few, m, R.sweep_axes(few, m), 4)
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 8
    assert not [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    plt.close(fig)
    many, m = _fake({"init.std": list(np.geomspace(0.01, 1, 12))})
    fig = R._loss_figure(plt, many, m, R.sweep_axes(many, m), 4)
    assert not fig.legends
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel() == "init.std"
    plt.close(fig)


def test_categorical_axis_for_seeds_and_names():
    ds, m = _fake({"data.seed": [3, 17, 40], "loss.name": ["squared", "logistic"]},
                  measure={"final_loss": lambda s, n: 1.0 + s})
    axes = R.sweep_axes(ds, m)
    assert not any(a.numeric for a in axes)
    assert R._x_axes(axes) == axes[:1]  # no numeric key: the first one
    fits = []
    fig = R._sweep_figure(plt, ds, m, axes[0], axes[1:], "final_loss", 4, fits)
    ax = _panels(fig)[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["3", "17", "40"]
    assert list(ax.get_xticks()) == [0, 1, 2]  # evenly spaced, not at 3, 17, 40
    assert not fits
    plt.close(fig)


def test_fits_only_for_declared_laws():
    """conserved_drift is declared a power law: 2·x^1.5 fits a = 1.5 per curve (the
    relative noise of 1e-3 moves the slope by ≲ 1e-3); final_loss (no law) gets none;
    dist_max_margin = 3/log x fits c = 3."""
    x = [10.0, 100.0, 1000.0, 10000.0]
    ds, m = _fake({"dynamics.steps": x, "init.std": [0.1, 1.0]}, seeds=5, measure={
        "conserved_drift": lambda s, std: 2 * s**1.5 * (1 + std),
        "final_loss": lambda s, std: s**-1.0,
        "dist_max_margin": lambda s, std: 3 / np.log(s),
    })
    axes = R.sweep_axes(ds, m)
    fits = []
    for name in ("conserved_drift", "final_loss", "dist_max_margin"):
        plt.close(R._sweep_figure(plt, ds, m, axes[0], axes[1:], name, 5, fits))
    power = [f for f in fits if f["measure"] == "conserved_drift"]
    assert len(power) == 2  # one per curve: the two init.std never pooled
    for f in power:
        assert f["a"] == pytest.approx(1.5, abs=5e-3)
    assert not [f for f in fits if f["measure"] == "final_loss"]
    (inv,) = [f for f in fits if f["measure"] == "dist_max_margin" and "0.1" in f["hue"]]
    assert inv["c"] == pytest.approx(3.0, rel=5e-3)


def test_vector_valued_sweeps():
    one, m = _fake({"model.hidden": [[10], [40], [160]]},
                   vectors={"model.hidden": [[10], [40], [160]]},
                   measure={"dist_min_l2": lambda h: h**-0.5})
    (ax,) = R.sweep_axes(one, m)
    assert ax.numeric and list(ax.values) == [10, 40, 160] and ax.key == "model.hidden"
    fits = []
    plt.close(R._sweep_figure(plt, one, m, ax, [], "dist_min_l2", 4, fits))
    assert len(fits) == 1 and fits[0]["a"] == pytest.approx(-0.5, abs=5e-3)
    two, m = _fake({"model.hidden": [[10, 5], [40, 5]]},
                   vectors={"model.hidden": [[10, 5], [40, 5]]})
    (ax,) = R.sweep_axes(two, m)
    assert ax.numeric and ax.key == "model.hidden[0]"  # the one component that varies
    both, m = _fake({"model.hidden": [[10, 5], [40, 20]]},
                    vectors={"model.hidden": [[10, 5], [40, 20]]},
                    measure={"final_loss": lambda h: 1.0 + h})
    (ax,) = R.sweep_axes(both, m)
    assert not ax.numeric and ax.labels == ["[10, 5]", "[40, 20]"]
    fig = R._sweep_figure(plt, both, m, ax, [], "final_loss", 4, [])
    assert [t.get_text() for t in _panels(fig)[0].get_xticklabels()] == ["[10, 5]", "[40, 20]"]
    plt.close(fig)


def test_report_of_a_three_dimensional_study(tmp_path, monkeypatch):
    """init.std × data.seed × learning rate (2 values each): the loss figure has hue
    init.std, columns data.seed, rows learning rate (2 × 2 panels); measures are drawn
    against the two numeric keys (hue the other, columns data.seed: 2 panels), never
    against the seed of the data."""
    out = _run(tmp_path, _text(GRID3))
    drawn = {}
    for fn in ("_loss_figure", "_sweep_figure", "_hist_figure"):
        orig = getattr(R, fn)

        def spy(*a, _orig=orig, _fn=fn, **k):
            fig = _orig(*a, **k)
            drawn.setdefault(_fn, []).append((fig._suptitle.get_text(), len(_panels(fig)),
                                              len(fig.legends)))
            return fig

        monkeypatch.setattr(R, fn, spy)
    files = R.report(out, tmp_path / "rep", formats=("png",))
    names = sorted(f.name for f in files)
    measures = ("conserved_drift", "final_loss", "test_risk")
    assert names == sorted(["loss_curves.png", "summary.md"]
                           + [f"hist_{n}.png" for n in measures]
                           + [f"sweep_{x}_{n}.png" for x in ("init_std", "dynamics_learning_rate")
                              for n in measures])
    assert [p for _, p, _ in drawn["_loss_figure"]] == [4]
    assert [p for _, p, _ in drawn["_sweep_figure"]] == [2] * 6
    assert all(leg == 1 for _, _, leg in drawn["_sweep_figure"] + drawn["_loss_figure"])
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "save times differ" in summary  # the padding load reported, in the summary
    fitted = [line for line in summary.splitlines() if line.startswith("| conserved_drift")]
    assert len(fitted) == 0  # two learning rates, two init scales: too few values to fit
    assert "final_loss |" not in "".join(
        line for line in summary.splitlines() if "c·x^a" in line)
