"""Smoke-run notebooks 01 and 02 at DYNSIM_NOTEBOOK_SCALE=small and check their key numbers.

Tolerances (float64, rtol 1e-10 solvers):
- conserved imbalance drift ≤ 1e-8 (measured ~1e-11; the conservation budget of
  test_conservation.py is 1e-9 at rtol 1e-11);
- Min et al.'s rate bound is a theorem: it must hold for every seed (the check already
  allows 1e-6 relative solver error), and the fitted asymptotic rate must not be below it;
- the invariant-set limit is exact: relative distance to X⁺Y ≤ 1e-6 (measured ~1e-10,
  limited by the final loss ~1e-20);
- width sweep: the exact reduction ‖U∞V∞ᵀ − X⁺y‖ = ‖U₂(0)V∞ᵀ‖ (U₂ = Φ₂ᵀU frozen) holds per
  seed up to the row-space residual, bounded by ‖r∞‖/σ_r(X) with ‖r∞‖ = √(2f(T)) (the bound the
  notebook records, plus 1e-12 relative for rounding); U₂ drifts only by rounding (≤ 1e-10
  relative over ~10³ steps of ~1e-16 each); Z = ‖U₂(0)V∞ᵀ‖/(h^{−α}‖V∞‖) is χ_{d−r}, so its mean
  square is d − r = 8 within 4.5 standard errors (a statistical check: 16 seeds per point);
- GF limit vs the implicit-bias interpolator ≤ 1e-5 relative where GF reaches a loss
  ≤ 1e-16 (α ≥ 1e-2; at smaller α the slow final phase is cut by max_steps);
- orderings of the ℓ1/ℓ2 distances and test risks across α (monotone in theory).
"""

import pathlib

import numpy as np
import pytest
from notebook_runner import run_notebook

NB = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
SMALL = {"DYNSIM_NOTEBOOK_SCALE": "small"}


@pytest.fixture(scope="module")
def nb01():
    return run_notebook(str(NB / "01_shallow_linear_min_norm.ipynb"), SMALL)


@pytest.fixture(scope="module")
def nb02():
    return run_notebook(str(NB / "02_diagonal_implicit_bias.ipynb"), SMALL)


def test_01_conservation_and_rate(nb01):
    s = nb01["rate_summary"]
    assert s["max_relative_imbalance_drift"] < 1e-8
    assert s["fraction_bound_holds"] == 1.0
    assert s["n_rate_nan"] == 0
    assert s["fraction_measured_rate_ge_bound"] == 1.0


def test_01_min_norm_invariant_set(nb01):
    s = nb01["minnorm_summary"]
    assert s["fraction_in_invariant_set"] == 1.0
    assert s["rowspace_max_relative_distance"] < 1e-6
    # a generic Gaussian init does not reach X⁺Y (U₂ ≠ 0 is frozen)
    assert s["gaussian_median_relative_distance"] > 1e-2


def test_01_width_slopes(nb01):
    w = nb01["width_summary"]["per_alpha"]
    assert nb01["width_summary"]["unconverged"] == 0
    # α = 1/2: predicted −1/2; 16 seeds and two widths -> generous band
    assert -0.8 < w["0.5"]["measured_slope_median"] < -0.25
    for a, v in w.items():
        assert v["measured_slope_median"] < 0.0, a


def test_01_width_exact_reduction(nb01):
    s = nb01["width_summary"]
    assert s["max_err_over_bound_exact_reduction"] <= 1.0
    assert s["max_rel_drift_U2"] < 1e-10
    d_minus_r = nb01["d"] - nb01["n"]
    for a, v in s["per_alpha"].items():
        for z2, se in zip(v["mean_Z2"], v["se_mean_Z2"], strict=True):
            assert abs(z2 - d_minus_r) < 4.5 * se, (a, z2, se)
        # at the smallest width training shrinks the output layer (median ‖V∞‖/‖V₀‖ < 1):
        # the reason the small-width slopes are shallower than −(2α − ½)
        assert v["median_V_ratio"][0] < 1.0, (a, v["median_V_ratio"])


def test_02_implicit_bias_limit(nb02):
    rows = [r for r in nb02["rows"] if 1e-2 <= r["alpha"] <= 10]
    assert rows, "no init scale in [1e-2, 10] was run"
    for r in rows:
        assert r["const_dist_qalpha"] < 1e-5, r["alpha"]
        assert np.max(r["pert_dist_own"]) < 1e-5, r["alpha"]


def test_02_l1_to_l2_transition_and_risk(nb02):
    rows = nb02["rows"]
    d_l1 = [r["const_dist_l1"] for r in rows]
    d_l2 = [r["const_dist_l2"] for r in rows]
    assert all(np.diff(d_l1) > 0), d_l1  # moves away from min-ℓ1 as α grows
    assert all(np.diff(d_l2) < 0), d_l2  # and towards min-ℓ2
    assert d_l1[0] < 0.1 and d_l2[-1] < 0.1  # α = 1e-3 and α = 10 are close to the limits
    risk = [r["const_test_risk"] for r in rows]
    assert risk[0] < 0.1 * nb02["risk_l2"]
    assert risk[0] < risk[-1]
    assert nb02["risk_l1"] < nb02["risk_l2"]


def test_02_saddle_rescaled_time(nb02):
    tau1 = nb02["tau1_theory"]
    errs = [abs(nb02["saddle"][a]["tau_jump"] - tau1) for a in nb02["SADDLE_ALPHAS"]]
    assert errs[-1] < errs[0]  # the first jump approaches 1/(2‖Xᵀy‖∞) as α → 0
