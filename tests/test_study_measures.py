"""What `dynsim run` stores under a measure's name is that `dynsim.analysis` measure.

Each study runs through the CLI (`dynsim._cli.main`); the test then rebuilds the model
and data with the public API, reassembles a `SimulationResult` from the parameters that
`dynsim.load` returns, and applies the `dynsim.analysis` functions to it.

Tolerance: the store computed the same float64 functions on the same float64 values,
but one chunk of seeds at a time (chunk_size 4, the last chunk padded by `simulate`),
the test on all seeds at once; XLA's CPU kernels may sum in a batch-size-dependent
order, a few ulps (≈1e-16 relative) per reduction. The least well-conditioned measure
is `conserved_drift`, a difference of nearly equal numbers: its relative rounding is
≈ eps·|C|/|ΔC|, ≤ 1e-16/4e-4 for these gradient-descent runs (drift 4e-4 – 0.4).
rtol = 1e-12 leaves a margin of 10³ over that; a changed definition (a factor 2, another
normalization) is off by O(1). (Measured: the values agree bitwise.)
"""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim
import dynsim.analysis as A
from dynsim._cli import main

RTOL = 1e-12

_RUN = """
[run]
seeds = 6
chunk_size = 4
key = 7
precision = "float64"
"""

REGRESSION = """
name = "measures_regression"
analyses = ["final_loss", "status", "conserved_drift", "dist_min_l2", "test_risk"]

[model]
kind = "LinearNet"
in_dim = 8
hidden = [6]

[data]
generator = "regression"
seed = 1
n = 5
d = 8
n_test = 20

[init]
scheme = "Gaussian"
std = 0.5

[loss]
name = "squared"

[dynamics]
kind = "gradient_descent"
learning_rate = 0.01
steps = 200
n_save = 5
""" + _RUN

CLASSIFICATION = """
name = "measures_classification"
analyses = ["final_loss", "status", "conserved_drift", "dist_max_margin",
            "normalized_margin", "test_risk", "test_error"]

[model]
kind = "LinearNet"
in_dim = 5
hidden = [4]

[data]
generator = "separable"
seed = 2
n = 12
d = 5
margin = 0.2
n_test = 30

[init]
scheme = "Gaussian"
std = 0.5

[loss]
name = "logistic"

[dynamics]
kind = "gradient_descent"
learning_rate = 0.05
steps = 300
n_save = 5
""" + _RUN

DIAGONAL = """
name = "measures_diagonal"
analyses = ["final_loss", "status", "conserved_drift", "dist_min_l1", "dist_min_l2",
            "dist_implicit_bias", "test_risk"]

[model]
kind = "DiagonalNet"
dim = 12

[data]
generator = "sparse_regression"
seed = 0
n = 6
d = 12
k = 2
n_test = 20

[init]
scheme = "Gaussian"
std = 0.1

[loss]
name = "squared"

[dynamics]
kind = "gradient_descent"
learning_rate = 0.01
steps = 300
n_save = 5
""" + _RUN


def _run(tmp_path, text):
    f = tmp_path / "study.toml"
    f.write_text(textwrap.dedent(text))
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out), "--quiet"]) == 0
    return dynsim.load(out)


def _key_name(k) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _params(ds, prefix, model):
    """The parameter PyTree stored as `<prefix>_<path>` variables, (S, ...) leaves."""
    shapes = model.param_shapes(jnp.float64)
    paths, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    leaves = [jnp.asarray(ds[prefix + "_".join(_key_name(k) for k in path)].values)
              for path, _ in paths]
    return jax.tree.unflatten(treedef, leaves)


def _result(ds, model, data, loss):
    """A `SimulationResult` of the stored seeds (public constructor)."""
    return dynsim.SimulationResult(
        params=_params(ds, "param_", model), params0=_params(ds, "param0_", model),
        ts=jnp.asarray(ds["time"].values), loss=jnp.asarray(ds["loss"].values),
        grad_norm=jnp.asarray(ds["grad_norm"].values), metrics={}, conserved=None,
        path=None, status=jnp.asarray(ds["status"].values),
        num_steps=jnp.asarray(ds["num_steps"].values),
        t_final=jnp.asarray(ds["t_final"].values), seed_ids=ds["seed"].values,
        wall_time=float("nan"), compile_time=float("nan"), model=model, data=data,
        loss_fn=loss, dynamics=None,
    )


def _check(ds, expected: dict, analyses):
    assert np.all(ds["status"].values == dynsim.Status.REACHED_END)  # meaningful values
    stored = [a for a in analyses if a != "status"]
    assert sorted(expected) == sorted(stored)  # every stored measure is checked
    for name, want in expected.items():
        got = ds[name].values
        assert got.shape == (6,) and got.dtype == np.float64, name
        np.testing.assert_allclose(got, np.asarray(want), rtol=RTOL, atol=0, err_msg=name)


def test_regression_measures(tmp_path):
    ds = _run(tmp_path, REGRESSION)
    model = dynsim.models.LinearNet(8, [6])
    data = dynsim.data.regression(jax.random.key(1), 5, 8, n_test=20)
    res = _result(ds, model, data, dynsim.losses.SquaredLoss())
    expected = {
        "final_loss": ds["loss"].values[:, -1],
        "conserved_drift": A.conserved_drift(res).final,
        "dist_min_l2": A.distance(res, A.min_l2_interpolator(data.X, data.y)),
        "test_risk": A.test_risk(res),
    }
    _check(ds, expected, ["final_loss", "conserved_drift", "dist_min_l2", "test_risk"])
    # test_risk is the mean of ½(f − y)² (the squared loss's per-sample loss), not of (f − y)²
    pred = jax.vmap(lambda p: model.apply(p, data.X_test))(res.params)
    half_mse = 0.5 * np.mean((np.asarray(pred) - np.asarray(data.y_test)[None]) ** 2, axis=1)
    np.testing.assert_allclose(ds["test_risk"].values, half_mse, rtol=RTOL)


def test_classification_measures(tmp_path):
    analyses = ["final_loss", "conserved_drift", "dist_max_margin", "normalized_margin",
                "test_risk", "test_error"]
    ds = _run(tmp_path, CLASSIFICATION)
    model = dynsim.models.LinearNet(5, [4])
    data = dynsim.data.separable(jax.random.key(2), 12, 5, margin=0.2, n_test=30)
    res = _result(ds, model, data, dynsim.losses.LogisticLoss())
    pred = np.asarray(jax.vmap(lambda p: model.apply(p, data.X_test))(res.params))
    expected = {
        "final_loss": ds["loss"].values[:, -1],
        "conserved_drift": A.conserved_drift(res).final,
        "dist_max_margin": A.direction_error(res, A.max_margin(data.X, data.y).direction),
        "normalized_margin": A.normalized_margin(res),
        "test_risk": A.test_risk(res),
        "test_error": np.mean(np.sign(pred) != np.asarray(data.y_test)[None], axis=1),
    }
    _check(ds, expected, analyses)
    # the margin of a depth-2 net is normalized by ‖θ‖², not by ‖β‖ (they differ here)
    beta = np.asarray(res.predictor())
    by_beta = np.min(np.asarray(data.y) * (beta @ np.asarray(data.X).T), axis=1)
    by_beta = by_beta / np.linalg.norm(beta, axis=1)
    assert np.all(np.abs(ds["normalized_margin"].values / by_beta - 1) > 1e-3)


def test_diagonal_net_measures(tmp_path):
    analyses = ["final_loss", "conserved_drift", "dist_min_l1", "dist_min_l2",
                "dist_implicit_bias", "test_risk"]
    ds = _run(tmp_path, DIAGONAL)
    model = dynsim.models.DiagonalNet(12)
    data = dynsim.data.sparse_regression(jax.random.key(0), 6, 12, 2, n_test=20)
    res = _result(ds, model, data, dynsim.losses.SquaredLoss())
    u0, v0 = np.asarray(res.params0["u"]), np.asarray(res.params0["v"])
    theory = np.stack([
        np.asarray(A.implicit_bias_interpolator(data.X, data.y, params0={"u": u0[s], "v": v0[s]}))
        for s in range(6)
    ])
    expected = {
        "final_loss": ds["loss"].values[:, -1],
        "conserved_drift": A.conserved_drift(res).final,
        "dist_min_l1": A.distance(res, A.min_l1_interpolator(data.X, data.y)),
        "dist_min_l2": A.distance(res, A.min_l2_interpolator(data.X, data.y)),
        "dist_implicit_bias": A.distance(res, theory),
        "test_risk": A.test_risk(res),
    }
    _check(ds, expected, analyses)


@pytest.mark.parametrize("old, hint", [("margin", "normalized_margin")])
def test_renamed_analysis_is_refused_with_its_new_name(tmp_path, capsys, old, hint):
    text = textwrap.dedent(CLASSIFICATION).replace('"normalized_margin"', f'"{old}"')
    f = tmp_path / "s.toml"
    f.write_text(text)
    assert main(["validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert f"analyses: '{old}' was renamed: use {hint}" in err and len(err.splitlines()) == 1
