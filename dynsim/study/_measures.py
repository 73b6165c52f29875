"""What the store's variables are: names, descriptions, units, and the laws they follow.

The one declaration of every variable a results store holds, read by `dynsim.load` (the
`long_name`, `description` and `units` attributes of the loaded variables) and by
`dynsim report` (axis labels, and which measures get a fitted law). Each analysis of
`_analyses.ANALYSES` has an entry (tests/test_study_load.py checks it); the definitions
themselves are those of `_analyses.py`.

`fit` declares the law a measure is expected to follow in a swept parameter x, and so
whether the report fits one:

- `"power_law"`: median ≈ c·x^a; the report fits a (least squares on log-log axes) and
  prints it. `conserved_drift` (the discretization error of gradient descent against the
  flow, a power of the step size), `dist_min_l2` (the distance of the limit to the
  minimum-ℓ2 interpolator, a power of the width or the initialization scale).
- `"inverse_log"`: median ≈ c/log(x/x0); the report fits c and x0 (1/median is a line
  in log x). `dist_max_margin`: the direction of gradient descent on separable data
  tends to the max-margin direction like 1/log t (Soudry et al. 2018); x0 absorbs the
  scale between a swept x (e.g. steps) and t.
- `None`: no fit (a loss, a count, a risk or a distance with no law across sweeps).
"""

import dataclasses
from typing import Literal

from .._status import STATUS_NAMES

Fit = Literal["power_law", "inverse_log"] | None


@dataclasses.dataclass(frozen=True)
class Measure:
    """One stored variable: its plot label, description, units and declared law."""

    long_name: str
    description: str
    units: str = "1"  # dimensionless unless stated
    fit: Fit = None
    log_scale: bool = True  # plotted on a log axis when its values are positive


MEASURES: dict[str, Measure] = {
    # per-seed analyses (`_analyses.ANALYSES`)
    "final_loss": Measure("final training loss",
                          "training loss at the last save time, loss[..., -1]"),
    "status": Measure("status", "how each trajectory ended: "
                      + ", ".join(f"{k}={v}" for k, v in STATUS_NAMES.items()),
                      log_scale=False),
    "conserved_drift": Measure(
        "conserved-quantity drift",
        "max_q max|C_q(θ_T) − C_q(θ_0)| / max_q max|C_q(θ_0)| "
        "(dynsim.analysis.conserved_drift(result).final)", fit="power_law"),
    "dist_min_l2": Measure("distance to min-ℓ2 interpolator",
                           "‖β − X⁺y‖₂ / ‖X⁺y‖₂, β the end-to-end predictor at the end",
                           fit="power_law"),
    "dist_min_l1": Measure("distance to min-ℓ1 interpolator",
                           "‖β − β_ℓ1‖₂ / ‖β_ℓ1‖₂, β_ℓ1 the minimum-ℓ1 interpolator"),
    "dist_implicit_bias": Measure(
        "distance to implicit-bias limit",
        "‖β − B‖₂ / ‖B‖₂, B the interpolator the theory predicts for the seed's own "
        "initialization (dynsim.analysis.implicit_bias_interpolator)"),
    "dist_max_margin": Measure("max-margin direction error",
                               "‖β/‖β‖₂ − w/‖w‖₂‖₂, w the ℓ2 hard-margin separator",
                               fit="inverse_log"),
    "normalized_margin": Measure("normalized margin",
                                 "min_i y_i f(θ; x_i) / ‖θ‖₂^L on the training data",
                                 log_scale=False),
    "test_risk": Measure("test risk", "mean per-sample loss on the held-out split"),
    "test_error": Measure("test error", "0-1 error on the held-out split", log_scale=False),
    # what every chunk stores (`SimulationResult.to_xarray`)
    "loss": Measure("training loss", "L(θ(t)) at the save times"),
    "grad_norm": Measure("gradient norm", "‖∇L(θ(t))‖₂ at the save times"),
    "num_steps": Measure("solver steps", "steps taken by the solver or optimizer",
                         log_scale=False),
    "t_final": Measure("final time", "the time each trajectory reached", log_scale=False),
    "time": Measure("time t", "training time; for gradient descent, steps × learning rate"),
    "seed": Measure("seed", "seed index s; its key is fold_in(run.key, s)", log_scale=False),
}

PREFIXES = {  # variables named <prefix><path>
    "param0_": ("initial parameter", "θ_0 at the leaf"),
    "param_": ("final parameter", "θ_T at the leaf"),
    "metric_": ("metric", "metric at the save times:"),
    "conserved_": ("conserved quantity", "conserved quantity at the save times:"),
    "path_": ("saved path", "saved path at the save times:"),
}


def variable_attrs(name: str) -> dict:
    """`long_name`, `description` and `units` of a stored variable (empty if unknown)."""
    if name in MEASURES:
        m = MEASURES[name]
        attrs = {"long_name": m.long_name, "description": m.description, "units": m.units}
        if name == "status":
            attrs["flag_values"] = list(STATUS_NAMES)
            attrs["flag_meanings"] = " ".join(STATUS_NAMES.values())
        return attrs
    for prefix, (long_name, description) in PREFIXES.items():
        if name.startswith(prefix):
            leaf = name[len(prefix):]
            return {"long_name": f"{long_name} {leaf}", "description": f"{description} {leaf}"}
    return {}


def measure(name: str) -> Measure | None:
    return MEASURES.get(name)
