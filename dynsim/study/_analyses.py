"""Per-seed analyses computed as each chunk finishes (stored in the chunk files).

Each analysis adds per-seed variables (dimension `seed`) to a chunk's dataset; summaries
(quantiles, counts) are computed from the stored variables by `_report.py`.

- `final_loss`: `final_loss` = training loss at the last save time.
- `status`: no variable (the `status` codes are always stored); summary = counts.
- `conserved_drift`: max over the model's conserved quantities C of
  ‖C(θ_T) − C(θ_0)‖ / ‖C(θ_0)‖ (Frobenius norms).
- `dist_min_l2`, `dist_min_l1`: ‖β − β_ref‖ / ‖β_ref‖ for β = `model.predictor(θ_T)` and
  β_ref = X⁺y (`dynsim.analysis.min_l2_interpolator`) or the minimum-ℓ1 interpolator.
- `dist_implicit_bias`: the same distance to `dynsim.analysis.implicit_bias_interpolator`
  evaluated at the seed's own initialization (diagonal networks): the limit theory
  predicts for that seed (one solve per distinct initialization).
- `dist_max_margin`: ‖β/‖β‖ − w/‖w‖‖ for the ℓ2 max-margin separator w
  (`dynsim.analysis.max_margin`); `margin`: min_i y_i⟨β, x_i⟩ / ‖β‖.
- `test_risk`: on the held-out split, mean squared error (1/n_test)Σ‖f(x) − y‖² for the
  squared loss, the 0-1 error rate for classification losses.
"""

import hashlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

ANALYSES = (
    "final_loss", "status", "conserved_drift", "dist_min_l2", "dist_min_l1",
    "dist_implicit_bias", "dist_max_margin", "margin", "test_risk",
)
DISTANCES = ("dist_min_l2", "dist_min_l1", "dist_implicit_bias", "dist_max_margin")


def _has_predictor(model) -> bool:
    from ..models import DiagonalNet, LinearNet

    return isinstance(model, (LinearNet, DiagonalNet))


def _has_reference(name: str) -> bool:
    try:
        from .. import analysis
    except Exception:  # noqa: BLE001 - the analysis subpackage is optional here
        return False
    fn = {"dist_min_l2": "min_l2_interpolator", "dist_min_l1": "min_l1_interpolator",
          "dist_implicit_bias": "implicit_bias_interpolator",
          "dist_max_margin": "max_margin"}.get(name)
    return fn is None or hasattr(analysis, fn)


def check_analysis(name: str, model, data, loss, init) -> str | None:
    """Why `name` cannot run on this point, or None."""
    from ..models import DiagonalNet

    if not _has_reference(name):
        return "its reference solver is not available in dynsim.analysis"
    if name == "conserved_drift":
        shapes = model.param_shapes(jnp.result_type(data.X))
        zeros = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes)
        if not jax.eval_shape(model.conserved, zeros):
            return f"{type(model).__name__} has no known conserved quantities"
    if name in ("dist_min_l2", "dist_min_l1", "dist_implicit_bias", "dist_max_margin", "margin"):
        if not _has_predictor(model):
            return f"needs a model linear in its input (LinearNet, DiagonalNet); got {type(model).__name__}"
    if name in ("dist_min_l1", "dist_implicit_bias") and jnp.ndim(data.y) != 1:
        return "needs scalar targets"
    if name == "dist_implicit_bias" and not isinstance(model, DiagonalNet):
        return "needs a DiagonalNet"
    if name in ("dist_max_margin", "margin") and not loss.classification:
        return "needs a classification loss (logistic, exponential) and ±1 labels"
    if name in ("dist_min_l2", "dist_min_l1", "dist_implicit_bias") and loss.classification:
        return "interpolators apply to regression (squared loss)"
    if name == "test_risk" and data.X_test is None:
        return "needs a held-out split (data.n_test > 0)"
    return None


class Analyzer:
    """Computes the per-seed analysis variables of one sweep point, caching references."""

    def __init__(self, point):
        self.point = point
        self.names = tuple(point.analyses)
        self._refs: dict = {}

    def _ref(self, name):
        if name not in self._refs:
            from .. import analysis

            X = np.asarray(self.point.data.X, np.float64)
            y = np.asarray(self.point.data.y, np.float64)
            if name == "dist_min_l2":
                r = np.asarray(analysis.min_l2_interpolator(X, y))
            elif name == "dist_min_l1":
                r = np.asarray(analysis.min_l1_interpolator(X, y))
            else:  # dist_max_margin
                r = np.asarray(analysis.max_margin(X, y).direction)
            self._refs[name] = r.T if r.ndim == 2 else r
        return self._refs[name]

    def _implicit(self, p0: dict) -> np.ndarray:
        from .. import analysis

        model = self.point.model
        h = hashlib.sha256(b"".join(np.ascontiguousarray(p0[k]).tobytes() for k in sorted(p0)))
        key = ("ib", h.hexdigest())
        if key not in self._refs:
            X = np.asarray(self.point.data.X, np.float64)
            y = np.asarray(self.point.data.y, np.float64)
            self._refs[key] = np.asarray(analysis.implicit_bias_interpolator(
                X, y, parametrization=model.parametrization,
                params0={k: np.asarray(v, np.float64) for k, v in p0.items()},
                depth=model.depth, dense_scale=model.dense_scale,
            ))
        return self._refs[key]

    def __call__(self, out: dict) -> dict[str, np.ndarray]:
        """Per-seed variables for one chunk (`out` as given to `simulate`'s callback)."""
        model = self.point.model
        data = self.point.data
        res: dict[str, np.ndarray] = {}
        params = jax.tree.map(jnp.asarray, out["params"])
        beta = None
        if any(n in self.names for n in DISTANCES + ("margin",)):
            beta = np.asarray(jax.vmap(model.predictor)(params), np.float64)
            beta = beta.reshape(beta.shape[0], -1)
        for name in self.names:
            if name == "final_loss":
                res[name] = np.asarray(out["saved"]["loss"])[:, -1]
            elif name == "conserved_drift":
                c0 = jax.vmap(model.conserved)(jax.tree.map(jnp.asarray, out["params0"]))
                c1 = jax.vmap(model.conserved)(params)
                drift = [
                    _rel(np.asarray(c1[k]), np.asarray(c0[k])) for k in c0
                ]
                res[name] = np.max(np.stack(drift), axis=0)
            elif name in ("dist_min_l2", "dist_min_l1"):
                ref = self._ref(name).reshape(-1)
                res[name] = np.linalg.norm(beta - ref, axis=1) / np.linalg.norm(ref)
            elif name == "dist_implicit_bias":
                p0 = {k: np.asarray(v) for k, v in out["params0"].items()}
                d = []
                for i in range(beta.shape[0]):
                    ref = self._implicit({k: v[i] for k, v in p0.items()})
                    d.append(np.linalg.norm(beta[i] - ref) / np.linalg.norm(ref))
                res[name] = np.asarray(d)
            elif name == "dist_max_margin":
                ref = self._ref(name).reshape(-1)
                ref = ref / np.linalg.norm(ref)
                unit = beta / np.linalg.norm(beta, axis=1, keepdims=True)
                res[name] = np.linalg.norm(unit - ref, axis=1)
            elif name == "margin":
                X = np.asarray(data.X, np.float64)
                y = np.asarray(data.y, np.float64)
                res[name] = np.min(y[None] * (beta @ X.T), axis=1) / np.linalg.norm(beta, axis=1)
            elif name == "test_risk":
                pred = np.asarray(jax.vmap(lambda p: model.apply(p, data.X_test))(params))
                yt = np.asarray(data.y_test)
                if self.point.loss.classification:
                    res[name] = np.mean(np.sign(pred) != yt[None], axis=1)
                else:
                    err = (pred - yt[None]).reshape(pred.shape[0], -1)
                    res[name] = np.sum(err**2, axis=1) / yt.shape[0]
        return res


def _rel(c1: np.ndarray, c0: np.ndarray) -> np.ndarray:
    s = c0.shape[0]
    num = np.linalg.norm((c1 - c0).reshape(s, -1), axis=1)
    den = np.linalg.norm(c0.reshape(s, -1), axis=1)
    return num / np.where(den > 0, den, 1.0)


def summarize(name: str, ds) -> dict[str, Any]:
    """Summary numbers of analysis `name` on one point's dataset."""
    if name == "status":
        from .._status import STATUS_NAMES

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
