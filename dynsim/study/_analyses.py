"""Per-seed analyses computed as each chunk finishes (stored in the chunk files).

Every stored measure is a `dynsim.analysis` function applied to the chunk's
`dynsim.SimulationResult` (the same object the chunk's data are stored from), under the
name and definition given here; none is re-implemented. Summaries (quantiles, counts)
are computed from the stored variables by `_report.py`. X, y are the training data,
X_test, y_test the held-out split, β_s = `model.predictor(θ_s)` at the end of the run.

- `final_loss`: the training loss at the last save time, `result.loss[:, -1]` (a stored
  output of `simulate`, not an analysis).
- `status`: no variable (the `status` codes are always stored); summary = counts, and
  `ok` = the number of seeds that reached the end or converged (`dynsim._status.is_ok`,
  the definition `SimulationResult.ok()` uses).
- `conserved_drift`: `dynsim.analysis.conserved_drift(result).final`, i.e.
  max_q max|C_q(θ_T) − C_q(θ_0)| / max_q max|C_q(θ_0)|.
- `dist_min_l2`: `distance(result, min_l2_interpolator(X, y))` = ‖β − X⁺y‖₂/‖X⁺y‖₂.
- `dist_min_l1`: `distance(result, min_l1_interpolator(X, y))`.
- `dist_implicit_bias`: `distance(result, B)` with B_s =
  `implicit_bias_interpolator(X, y, parametrization=…, params0=θ_0,s, depth=…,
  dense_scale=…)`: the limit the theory predicts for the seed's own initialization
  (one solve per distinct initialization).
- `dist_max_margin`: `direction_error(result, max_margin(X, y).direction)` =
  ‖β/‖β‖₂ − w/‖w‖₂‖₂ for the ℓ2 hard-margin separator w.
- `normalized_margin`: `normalized_margin(result)` = min_i y_i f(θ; x_i)/‖θ‖₂^L
  (training data; L the model's degree of homogeneity).
- `test_risk`: `test_risk(result)` = (1/n_test) Σ_i ℓ(f(θ; x_i), y_i) on the held-out
  split, ℓ the study's per-sample loss (½‖f − y‖² for the squared loss).
- `test_error`: classification losses only: the 0-1 error on the held-out split,
  (1/n_test) #{i : sign f(θ; x_i) ≠ y_i} (f = 0 counts as an error). No `dynsim.analysis`
  function computes it; it is defined here.
"""

import hashlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import analysis
from .._status import STATUS_NAMES
from ..models import DiagonalNet

ANALYSES = (
    "final_loss", "status", "conserved_drift", "dist_min_l2", "dist_min_l1",
    "dist_implicit_bias", "dist_max_margin", "normalized_margin", "test_risk", "test_error",
)
DEFAULT_ANALYSES = ("final_loss", "status")  # a study without `analyses`
RENAMED = {
    "margin": "normalized_margin (= dynsim.analysis.normalized_margin, min_i y_i f(x_i)/‖θ‖^L)",
}
_REFERENCE_SOLVERS = {
    "dist_min_l2": "min_l2_interpolator", "dist_min_l1": "min_l1_interpolator",
    "dist_implicit_bias": "implicit_bias_interpolator", "dist_max_margin": "max_margin",
}


def _ones_params(model, dtype):
    shapes = model.param_shapes(dtype)
    return jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes)


def _predictor_shape(model, dtype) -> tuple | None:
    try:
        return jax.eval_shape(model.predictor, _ones_params(model, dtype)).shape
    except NotImplementedError:
        return None


def check_analysis(name: str, model, data, loss, init) -> str | None:
    """Why `name` cannot run on this point, or None."""
    if name in _REFERENCE_SOLVERS and not hasattr(analysis, _REFERENCE_SOLVERS[name]):
        return "its reference solver is not available in dynsim.analysis"
    dtype = jnp.result_type(data.X)
    if name == "conserved_drift":
        if not jax.eval_shape(model.conserved, _ones_params(model, dtype)):
            return f"{type(model).__name__} has no known conserved quantities"
    if name in ("dist_min_l2", "dist_min_l1", "dist_implicit_bias", "dist_max_margin"):
        shape = _predictor_shape(model, dtype)
        if shape is None:
            return (f"needs a model linear in its input (LinearNet, DiagonalNet); "
                    f"got {type(model).__name__}")
        n, d = np.shape(data.X)
        want = (d,) if np.ndim(data.y) == 1 else (np.shape(data.y)[1], d)
        if tuple(shape) != want:
            return (f"the predictor has shape {tuple(shape)} but the reference has {want} "
                    "(a LinearNet with bias = true appends the bias)")
    if name in ("dist_min_l1", "dist_implicit_bias") and jnp.ndim(data.y) != 1:
        return "needs scalar targets"
    if name == "dist_implicit_bias" and not isinstance(model, DiagonalNet):
        return "needs a DiagonalNet"
    if name in ("dist_max_margin", "normalized_margin", "test_error") and not loss.classification:
        return "needs a classification loss (logistic, exponential) and ±1 labels"
    if name == "normalized_margin":
        try:
            analysis.homogeneity_degree(model)
        except ValueError as e:
            return str(e).partition(": ")[2] or str(e)
    if name in ("dist_min_l2", "dist_min_l1", "dist_implicit_bias") and loss.classification:
        return "interpolators apply to regression (squared loss)"
    if name in ("test_risk", "test_error") and (data.X_test is None or len(data.X_test) == 0):
        return "needs a held-out split (data.n_test > 0)"
    return None


class Analyzer:
    """Computes the per-seed analysis variables of one sweep point, caching references."""

    def __init__(self, point):
        self.point = point
        self.names = tuple(point.analyses)
        self._refs: dict = {}

    def _training_data(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(self.point.data.X, np.float64),
                np.asarray(self.point.data.y, np.float64))

    def _ref(self, name):
        if name not in self._refs:
            X, y = self._training_data()
            if name == "dist_min_l2":
                r = analysis.min_l2_interpolator(X, y)
            elif name == "dist_min_l1":
                r = analysis.min_l1_interpolator(X, y)
            else:  # dist_max_margin
                r = analysis.max_margin(X, y).direction
            # min_l2_interpolator returns (d, m) for matrix targets; the predictor is (m, d)
            self._refs[name] = r.T if r.ndim == 2 else r
        return self._refs[name]

    def _implicit(self, params0: dict) -> np.ndarray:
        """(S, d) implicit-bias interpolators, one per seed's initialization."""
        model = self.point.model
        X, y = self._training_data()
        p0 = {k: np.asarray(v, np.float64) for k, v in params0.items()}
        out = []
        for i in range(next(iter(p0.values())).shape[0]):
            seed_p0 = {k: v[i] for k, v in p0.items()}
            h = hashlib.sha256(b"".join(np.ascontiguousarray(seed_p0[k]).tobytes()
                                        for k in sorted(seed_p0)))
            key = ("ib", h.hexdigest())
            if key not in self._refs:
                self._refs[key] = np.asarray(analysis.implicit_bias_interpolator(
                    X, y, parametrization=model.parametrization, params0=seed_p0,
                    depth=model.depth, dense_scale=model.dense_scale,
                ))
            out.append(self._refs[key])
        return np.stack(out)

    def __call__(self, result) -> dict[str, np.ndarray]:
        """Per-seed variables of one chunk's `SimulationResult`."""
        res: dict[str, np.ndarray] = {}
        for name in self.names:
            if name == "final_loss":
                value = np.asarray(result.loss)[:, -1]
            elif name == "status":
                continue
            elif name == "conserved_drift":
                value = analysis.conserved_drift(result).final
            elif name in ("dist_min_l2", "dist_min_l1"):
                value = analysis.distance(result, self._ref(name))
            elif name == "dist_implicit_bias":
                value = analysis.distance(result, self._implicit(result.params0))
            elif name == "dist_max_margin":
                value = analysis.direction_error(result, self._ref(name))
            elif name == "normalized_margin":
                value = analysis.normalized_margin(result)
            elif name == "test_risk":
                value = analysis.test_risk(result)
            elif name == "test_error":
                value = test_error(result)
            else:  # pragma: no cover - names are validated with the study
                raise ValueError(f"analyses: unknown analysis {name!r}")
            res[name] = np.asarray(value)
        return res


def test_error(result) -> np.ndarray:
    """(S,) 0-1 error on the held-out split: (1/n_test) #{i : sign f(θ_s; x_i) ≠ y_i}.

    For ±1 labels and scalar outputs (classification losses); f = 0 counts as an error.
    """
    X = jnp.asarray(result.data.X_test)
    y = jnp.asarray(result.data.y_test)
    pred = jax.vmap(lambda p: result.model.apply(p, X))(result.params)
    wrong = (jnp.sign(pred) != y[None, :]).astype(pred.dtype)
    return np.asarray(jnp.mean(wrong, axis=1))


test_error.__test__ = False  # not a pytest test


def summarize_measure(name: str, ds) -> dict[str, Any]:
    """Summary numbers of analysis `name` on one point's dataset: the counts of each status
    for `"status"`, else the number of finite values and their 5/25/50/75/95% quantiles
    (for the ensemble summary of an array, with a bootstrap CI, see
    `dynsim.analysis.summarize`)."""
    if name == "status":
        codes = np.asarray(ds["status"])
        return {STATUS_NAMES[c]: int(np.sum(codes == c)) for c in STATUS_NAMES}
    if name not in ds:
        return {}
    v = np.asarray(ds[name], np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0}
    q = np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {"n": int(v.size), "q05": q[0], "q25": q[1], "median": q[2], "q75": q[3], "q95": q[4]}
