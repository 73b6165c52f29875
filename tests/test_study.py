"""Study files: parsing, validation errors with line numbers, overrides, round trip."""

import jax
import numpy as np
import pytest
from _study_helpers import small_study, write_study

import dynsim.study as study
from dynsim.study import StudyError, load_study, run_study
from dynsim.study._config import PRESET_DIR, key_lines


def _line_of(text, needle):
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_key_lines():
    text = small_study()
    lines = key_lines(text)
    assert lines["model.kind"] == _line_of(text, 'kind = "DiagonalNet"')
    assert lines["sweep.init.std"] == _line_of(text, '"init.std"')
    assert lines["run"] == _line_of(text, "[run]")
    assert lines["analyses"] == 3


def test_round_trip(tmp_path):
    f = write_study(tmp_path / "s.toml", seeds=6, chunk=4, steps=200)
    st = load_study(f)
    assert [p["coords"] for p in st.points()] == [{"init.std": 0.01}, {"init.std": 0.1}]
    m = run_study(st, tmp_path / "out")
    assert m["status"] == "complete"
    ds = study.load(tmp_path / "out")
    assert ds["loss"].dims == ("init.std", "seed", "time")  # the swept key is a dimension
    assert ds.sizes["init.std"] == 2 and ds.sizes["seed"] == 6
    np.testing.assert_array_equal(ds["init.std"].values, [0.01, 0.1])
    np.testing.assert_array_equal(ds["seed"].values, np.arange(6))
    for name in ("final_loss", "conserved_drift", "dist_min_l1", "dist_min_l2", "test_risk"):
        assert np.all(np.isfinite(ds[name].values)), name
    # the stored data equal a direct `simulate` of the same point
    import dynsim

    p1 = study.load(tmp_path / "out", point=1)
    data = dynsim.data.sparse_regression(jax.random.key(0), 6, 12, 2, n_test=50)
    res = dynsim.simulate(
        dynsim.models.DiagonalNet(12), data,
        init=dynsim.init.Gaussian(std=jax.numpy.asarray(0.1)),
        dynamics=dynsim.GradientDescent(learning_rate=jax.numpy.asarray(0.01), steps=200, n_save=9),
        seeds=6, chunk_size=4, key=jax.random.key(3),
    )
    np.testing.assert_array_equal(p1["loss"].values, np.asarray(res.loss))
    np.testing.assert_array_equal(p1["param_u"].values, np.asarray(res.params["u"]))


@pytest.mark.parametrize(
    "old, new, field, needle",
    [
        ("dim = 12", "dim = 12\ndepht = 2", "model.depht", "depht = 2"),
        ("dim = 12", "dim = 0", "model.dim", "dim = 0"),
        ('kind = "DiagonalNet"', 'kind = "DiagonalNett"', "model.kind", "DiagonalNett"),
        ("k = 2", "k = 99", "data.k", "k = 99"),
        ("n_test = 50", "n_test = 50\nfoo = 1", "data.foo", "foo = 1"),
        ("std = 0.1", "std = 0.1\nalpha = 1.0", "init.alpha", "alpha = 1.0"),
        ('name = "squared"', 'name = "hinge"', "loss.name", '"hinge"'),
        ("learning_rate = 0.01", "learning_rate = 0.01\nsolver = 3", "dynamics.solver", "solver = 3"),
        ("steps = 300", "steps = 0", "dynamics.steps", "steps = 0"),
        ("key = 3", "key = 3\nworkers = 2", "run.workers", "workers = 2"),
        ("seeds = 10", "seeds = -1", "run.seeds", "seeds = -1"),
        ("seeds = 10", "seeds = 1.5", "run.seeds", "seeds = 1.5"),
        ('precision = "float64"', 'precision = "float16"', "run.precision", "float16"),
        ('"init.std" = [0.01, 0.1]', '"init.std" = []', "sweep.init.std", '"init.std"'),
        ('"init.std" = [0.01, 0.1]', '"run.seeds" = [1, 2]', "sweep.run.seeds", '"run.seeds"'),
        ('"init.std" = [0.01, 0.1]', '"model.dim" = [12, 0]', "model.dim", '"model.dim"'),
        ('"test_risk"]', '"test_risk", "nonsense"]', "analyses", "nonsense"),
        ('"test_risk"]', '"test_risk", "dist_max_margin"]', "analyses", "dist_max_margin"),
    ],
)
def test_validation_errors_name_field_and_line(tmp_path, old, new, field, needle):
    text = small_study()
    assert old in text
    text = text.replace(old, new, 1)
    f = write_study(tmp_path / "bad.toml", text)
    with pytest.raises(StudyError) as e:
        load_study(f)
    line = _line_of(text, needle)
    assert e.value.field == field, str(e.value)
    assert e.value.location == f"{f}:{line}", str(e.value)
    assert f"{f}:{line}: {field}:" in str(e.value)


def test_unknown_top_level_and_missing_section(tmp_path):
    text = small_study().replace('name = "small"', 'name = "small"\nseeds = 3')
    f = write_study(tmp_path / "a.toml", text)
    with pytest.raises(StudyError, match=r"a.toml:2: seeds: unknown key"):
        load_study(f)
    text = small_study().replace("[init]", "[initt]")
    f = write_study(tmp_path / "b.toml", text)
    with pytest.raises(StudyError, match=r"initt: unknown key"):
        load_study(f)


def test_toml_syntax_error(tmp_path):
    f = write_study(tmp_path / "c.toml", small_study().replace("dim = 12", "dim = = 12"))
    with pytest.raises(StudyError, match="toml"):
        load_study(f)


def test_overrides(tmp_path):
    f = write_study(tmp_path / "s.toml")
    st = load_study(f, ["run.seeds=3", "dynamics.steps=50", "sweep.init.std=[0.5]",
                        "dynamics.optimizer=sgd"])
    assert st.config["run"]["seeds"] == 3
    assert [p["coords"] for p in st.points()] == [{"init.std": 0.5}]
    with pytest.raises(StudyError, match=r"--set run.seeds: run.seeds: must be a positive"):
        load_study(f, ["run.seeds=0"])
    with pytest.raises(StudyError, match=r"--set model.dimm: model.dimm: unknown key"):
        load_study(f, ["model.dimm=3"])
    with pytest.raises(StudyError, match=r"--set: expected KEY=VALUE"):
        load_study(f, ["run.seeds"])
    with pytest.raises(StudyError, match=r"--set: cannot parse value"):
        load_study(f, ["run.seeds=[1,"])
    with pytest.raises(StudyError, match=r"--set: bad key"):
        load_study(f, ["run..seeds=1"])
    with pytest.raises(StudyError, match=r"dynamics.optimizer: unknown optax"):
        load_study(f, ["dynamics.optimizer=nosuchopt"])


def test_presets_validate():
    files = sorted(PRESET_DIR.glob("*.toml"))
    assert len(files) >= 5
    for f in files:
        st = load_study(f.stem)
        assert st.config.get("description"), f
        assert 1 <= len(st.points()) <= 6
        assert st.config["run"]["seeds"] <= 500


def test_float32_precision(tmp_path):
    f = write_study(tmp_path / "s.toml", seeds=4, chunk=4, steps=50)
    st = load_study(f, ['run.precision="float32"', "sweep.init.std=[0.1]"])
    run_study(st, tmp_path / "out")
    ds = study.load(tmp_path / "out")
    assert ds["loss"].dtype == np.float32 and ds["param_u"].dtype == np.float32


def test_stochastic_flow_study_equals_simulate(tmp_path):
    """A `stochastic_flow` study (SGD noise, swept learning rate) stores what
    `simulate` computes for the same point, bitwise."""
    import jax.numpy as jnp

    import dynsim

    text = small_study(seeds=4, chunk=4).replace(
        'kind = "gradient_descent"\nlearning_rate = 0.01\nsteps = 300\nn_save = 9',
        'kind = "stochastic_flow"\nt1 = 0.3\ndt0 = 0.01\nnoise = "sgd"\n'
        'learning_rate = 0.01\nbatch_size = 2\nn_save = 4',
    ).replace('"init.std" = [0.01, 0.1]', '"dynamics.learning_rate" = [0.01, 0.02]')
    st = load_study(write_study(tmp_path / "s.toml", text))
    assert run_study(st, tmp_path / "out")["status"] == "complete"
    p1 = study.load(tmp_path / "out", point=1)
    data = dynsim.data.sparse_regression(jax.random.key(0), 6, 12, 2, n_test=50)
    res = dynsim.simulate(
        dynsim.models.DiagonalNet(12), data, init=dynsim.init.Gaussian(std=jnp.asarray(0.1)),
        dynamics=dynsim.StochasticGradientFlow(
            t1=0.3, dt0=0.01, noise="sgd", learning_rate=jnp.asarray(0.02), batch_size=2,
            n_save=4),
        seeds=4, chunk_size=4, key=jax.random.key(3),
    )
    np.testing.assert_array_equal(p1["loss"].values, np.asarray(res.loss))
    np.testing.assert_array_equal(p1["param_u"].values, np.asarray(res.params["u"]))
    assert np.all(p1["status"].values == dynsim.Status.REACHED_END)
