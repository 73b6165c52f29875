"""`dynsim.load`: sweeps as dimensions, ragged variables padded with masks, metadata.

The studies are tiny (3 seeds, 20 gradient-descent steps, analyses that need no solver)
so that each test runs in a few seconds; the layout, not the numbers, is under test.
The values are compared with `load(DIR, point=i)`, which reads point i's chunks alone.
"""

import itertools
import json
import warnings

import jax
import numpy as np
import pytest
import xarray as xr
from _study_helpers import small_study

import dynsim
from dynsim.study import load_study, run_study
from dynsim.study._analyses import ANALYSES
from dynsim.study._dataset import select_point
from dynsim.study._measures import MEASURES

STEPS = 20


def _text(sweep: str, seeds: int = 3) -> str:
    text = small_study(seeds=seeds, chunk=2, steps=STEPS)
    text = text.replace('analyses = ["final_loss", "status", "conserved_drift", "dist_min_l1", '
                        '"dist_min_l2", "test_risk"]',
                        'analyses = ["final_loss", "status", "conserved_drift", "test_risk"]')
    return text.replace('"init.std" = [0.01, 0.1]', sweep)


def _run(tmp, text: str):
    f = tmp / "study.toml"
    f.write_text(text)
    out = tmp / "out"
    assert run_study(load_study(f), out)["status"] == "complete"
    return out


GRID3 = ('"init.std" = [0.01, 0.1]\n"data.seed" = [0, 1]\n'
         '"dynamics.learning_rate" = [0.01, 0.02]')


@pytest.fixture(scope="module")
def grid3(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("grid3"), _text(GRID3))


def _load_warns(out, match):
    with pytest.warns(UserWarning, match=match) as rec:
        ds = dynsim.load(out)
    return ds, " ".join(str(w.message) for w in rec)


def test_grid_sweep_has_one_dimension_per_key(grid3):
    ds, _ = _load_warns(grid3, "time_mask")
    names = ["init.std", "data.seed", "dynamics.learning_rate"]
    assert list(ds["loss"].dims) == names + ["seed", "time"]
    assert [ds.sizes[n] for n in names + ["seed"]] == [2, 2, 2, 3]
    np.testing.assert_array_equal(ds["init.std"].values, [0.01, 0.1])
    np.testing.assert_array_equal(ds["data.seed"].values, [0, 1])
    np.testing.assert_array_equal(ds["dynamics.learning_rate"].values, [0.01, 0.02])
    # the store's point index, C order over the sweep dimensions in [sweep] order
    np.testing.assert_array_equal(ds["point"].values, np.arange(8).reshape(2, 2, 2))
    assert ds["final_loss"].dims == tuple(names + ["seed"])
    assert ds.attrs["sweep_layout"] == "grid"
    # the sweep values are those of each point's own config
    for i, (a, b, c) in enumerate(itertools.product(range(2), range(2), range(2))):
        p = dynsim.load(grid3, point=i)
        assert float(p["init.std"]) == ds["init.std"].values[a]
        assert int(p["data.seed"]) == ds["data.seed"].values[b]
        assert float(p["dynamics.learning_rate"]) == ds["dynamics.learning_rate"].values[c]


def test_point_load_is_the_slice_of_the_whole(grid3):
    ds, _ = _load_warns(grid3, "time_mask")
    for i in range(8):
        p = dynsim.load(grid3, point=i)
        xr.testing.assert_identical(select_point(ds, i).drop_attrs(), p.drop_attrs())
        # the same by hand: index of point i, the padded times removed
        idx = dict(zip(["init.std", "data.seed", "dynamics.learning_rate"],
                       np.unravel_index(i, (2, 2, 2))))
        one = ds.isel(idx)
        one = one.isel(time=one["time_mask"].values)
        np.testing.assert_array_equal(one["loss"].values, p["loss"].values)
        np.testing.assert_array_equal(one["time"].values, p["time"].values)
        assert set(p.data_vars) <= set(ds.data_vars)  # nothing dropped


def test_different_save_grids_are_padded_on_the_union(grid3):
    """Gradient descent saves at steps × learning rate: the two learning rates give two
    grids; `time` is their union and `time_mask` marks each point's own times."""
    ds, msg = _load_warns(grid3, "save times differ")
    assert "loss" in msg and "grad_norm" in msg and "time_mask" in msg
    grids = [dynsim.load(grid3, point=i)["time"].values for i in (0, 1)]
    assert not np.array_equal(grids[0], grids[1])
    np.testing.assert_array_equal(ds["time"].values, np.union1d(*grids))
    for c, grid in enumerate(grids):
        mask = ds["time_mask"].isel({"init.std": 0, "data.seed": 0,
                                     "dynamics.learning_rate": c}).values
        np.testing.assert_array_equal(ds["time"].values[mask], grid)
        loss = ds["loss"].isel({"init.std": 0, "data.seed": 0, "dynamics.learning_rate": c})
        assert np.all(np.isnan(loss.values[:, ~mask]))
        assert np.all(np.isfinite(loss.values[:, mask]))


def test_store_metadata_in_attrs(grid3):
    ds, _ = _load_warns(grid3, "time_mask")
    text = (grid3.parent / "study.toml").read_text()
    assert ds.attrs["study_text"] == text
    assert ds.attrs["study"] == "small"
    assert ds.attrs["key"] == 3 and ds.attrs["seeds"] == 3
    assert ds.attrs["precision"] == "float64"
    assert ds.attrs["dynsim_version"] == dynsim.__version__
    assert ds.attrs["jax_version"] == jax.__version__
    assert len(ds.attrs["study_sha256"]) == 64
    # units and descriptions on the variables the store knows
    assert ds["loss"].attrs["long_name"] == "training loss"
    assert ds["final_loss"].attrs["long_name"] == MEASURES["final_loss"].long_name
    assert "description" in ds["conserved_drift"].attrs and "units" in ds["test_risk"].attrs
    assert ds["status"].attrs["flag_meanings"].split()[0] == "reached_end"
    assert ds["param_u"].attrs["long_name"] == "final parameter u"
    # the whole can be written to netCDF again (attributes are strings and numbers)
    p = dynsim.load(grid3, point=0)
    assert p.attrs["study_text"] == text and int(p["point"]) == 0


def test_width_sweep_pads_parameters(tmp_path):
    """`model.hidden` = [[2], [5]]: W_1 is (2, 4) or (5, 4), W_2 (1, 2) or (1, 5); padded to
    the larger with NaN, a mask per padded dimension; the swept lists as labels and as
    numbers (`model.hidden_vector`)."""
    text = _text('"model.hidden" = [[2], [5]]').replace(
        'kind = "DiagonalNet"\ndim = 12', 'kind = "LinearNet"\nin_dim = 4\nhidden = [3]'
    ).replace('generator = "sparse_regression"\nseed = 0\nn = 6\nd = 12\nk = 2\nn_test = 50',
              'generator = "regression"\nseed = 0\nn = 6\nd = 4\nn_test = 10')
    out = _run(tmp_path, text)
    ds, msg = _load_warns(out, "param_W_0")
    assert list(ds["model.hidden"].values) == ["[2]", "[5]"]
    np.testing.assert_array_equal(ds["model.hidden_vector"].values, [[2], [5]])
    dim = ds["param_W_0"].dims[-2]
    assert ds.sizes[dim] == 5 and f"{dim}_mask" in msg
    for i, h in enumerate((2, 5)):
        p = dynsim.load(out, point=i)
        mask = ds[f"{dim}_mask"].isel({"model.hidden": i}).values
        assert mask.sum() == h and mask[:h].all()
        w = ds["param_W_0"].isel({"model.hidden": i}).values
        np.testing.assert_array_equal(w[:, :h], p["param_W_0"].values)
        assert np.all(np.isnan(w[:, h:]))
        xr.testing.assert_identical(select_point(ds, i).drop_attrs(), p.drop_attrs())
    assert np.all(np.isfinite(ds["final_loss"].values))  # not ragged: never padded


def test_zip_sweep_keeps_a_point_dimension(tmp_path):
    """`[sweep] mode = "zip"`: the i-th point takes the i-th value of every list; the
    points keep one `point` dimension, the swept values as coordinates along it."""
    out = _run(tmp_path, _text('mode = "zip"\n"init.std" = [0.01, 0.1]\n'
                               '"dynamics.learning_rate" = [0.01, 0.02]'))
    m = json.loads((out / "manifest.json").read_text())
    assert [pt["coords"] for pt in m["points"]] == [
        {"init.std": 0.01, "dynamics.learning_rate": 0.01},
        {"init.std": 0.1, "dynamics.learning_rate": 0.02}]
    assert set(m["sweep"]) == {"init.std", "dynamics.learning_rate"}  # the keys only
    ds, _ = _load_warns(out, "time_mask")
    assert ds.attrs["sweep_layout"] == "points"
    assert ds["loss"].dims == ("point", "seed", "time")
    np.testing.assert_array_equal(ds["point"].values, [0, 1])
    np.testing.assert_array_equal(ds["init.std"].values, [0.01, 0.1])
    np.testing.assert_array_equal(ds["dynamics.learning_rate"].values, [0.01, 0.02])
    assert ds["init.std"].dims == ("point",)
    for i in (0, 1):
        xr.testing.assert_identical(select_point(ds, i).drop_attrs(),
                                    dynsim.load(out, point=i).drop_attrs())


@pytest.mark.parametrize("sweep, field, message", [
    ('mode = "zip"\n"init.std" = [0.01, 0.1]\n"dynamics.learning_rate" = [0.01]',
     "sweep.dynamics.learning_rate", "one length"),
    ('mode = "product"\n"init.std" = [0.01, 0.1]', "sweep.mode", "'grid', 'zip'"),
])
def test_bad_sweep_mode_is_named(tmp_path, sweep, field, message):
    f = tmp_path / "study.toml"
    f.write_text(_text(sweep))
    with pytest.raises(dynsim.study.StudyError, match=message) as e:
        load_study(f)
    assert e.value.field == field


def test_aligned_sweep_and_single_point_warn_nothing(tmp_path):
    out = _run(tmp_path, _text('"init.std" = [0.01, 0.1]'))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = dynsim.load(out)
    assert ds["loss"].dims == ("init.std", "seed", "time")
    assert not [v for v in ds.data_vars if str(v).endswith("_mask")]
    single = tmp_path / "single"
    single.mkdir()
    out = _run(single, _text("").replace("[sweep]\n", ""))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = dynsim.load(out)
    assert ds["loss"].dims == ("seed", "time") and "point" not in ds.coords
    assert ds.attrs["precision"] == "float64"
    xr.testing.assert_identical(ds, dynsim.load(out, point=0))


def test_every_analysis_is_declared():
    assert set(ANALYSES) <= set(MEASURES)
    assert {n for n, m in MEASURES.items() if m.fit} == {
        "conserved_drift", "dist_min_l2", "dist_max_margin"}
