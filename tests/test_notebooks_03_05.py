"""Smoke-and-science tests of notebooks 03 and 05 at DYNSIM_NOTEBOOK_SCALE=small.

Each notebook is executed top to bottom (`tests/notebook_runner.py`) and its key numbers are
checked at the small size. Seeds and data keys are fixed, so the numbers are deterministic up to
floating-point differences between platforms; the tolerances below are set from the theory and
from the seed-to-seed spread (binomial / ensemble standard errors at the small seed counts), not
tuned to the last digit of one run.
"""

from pathlib import Path

import pytest
from notebook_runner import run_notebook

NB = Path(__file__).resolve().parent.parent / "notebooks"
SMALL = {"DYNSIM_NOTEBOOK_SCALE": "small"}


@pytest.fixture(scope="module")
def nb03():
    return run_notebook(NB / "03_relu_bias_linear_rate.ipynb", SMALL)


@pytest.fixture(scope="module")
def nb05():
    return run_notebook(NB / "05_exponential_margins.ipynb", SMALL)


def test_03_relu_bias_linear_rate(nb03):
    s = nb03["summary"]
    assert s["scale"] == "small" and s["seeds_per_width"] >= 32
    widest = str(max(s["widths"]))
    # Linear convergence for most seeds at the widest width (full size: 0.98 at m = 256; with
    # 64 seeds the binomial s.e. at p ≈ 0.97 is ≈ 0.02, so 0.85 is a > 5 s.e. margin).
    assert s["linear_rate_fraction"][widest] >= 0.85
    # Kernel regime: the median rate approaches 2λ_min(K∞) (within the 10–30% for
    # asymptotic quantities; full size: 0.97 at m = 128, 1.00 at m = 256).
    assert 0.8 <= s["median_rate_over_theory"][widest] <= 1.2
    # and it increases with width (narrow nets are slower: 0.73 at m = 16).
    assert s["median_rate"][widest] > s["median_rate"][str(min(s["widths"]))]
    # Empirical NTK -> analytic kernel with biases, error ∝ m^{-1/2}: fitted slope within 30%.
    assert -0.65 <= s["ntk_error_loglog_slope"] <= -0.35
    errs = [s["ntk_mean_rel_error"][str(m)] for m in s["kernel_widths"]]
    assert all(a > b for a, b in zip(errs, errs[1:]))


def test_05_exponential_margins(nb05):
    s = nb05["summary"]
    assert s["scale"] == "small" and s["seeds"] >= 16
    for name in ("linear", "linear2"):
        dec = s["decay"][name]
        # 1/error is linear in log t (error ≈ c/(log t + b), Soudry et al. 2018).
        assert dec["inv_err_r2"] >= 0.99
        assert dec["inv_err_slope"] > 0 and dec["frac_inv_err_increasing"] == 1.0
        # the apparent log–log slope vs log t is negative and no steeper than the asymptotic −1
        assert -1.3 <= dec["slope_loglog"] < -0.2
        # Lyu & Li: smoothed margin non-decreasing once L < 1, every seed.
        assert dec["smoothed_monotone_fraction"] == 1.0
        assert s["median_direction_error_t1"][name] < 0.2
    # Balance of the two-layer linear net conserved to the solver tolerance.
    assert s["linear2_max_conserved_drift"] <= 1e-8
    relu = s["relu"]
    assert relu["separated_fraction"] >= 0.9  # full size: 0.966 (24/1000 seeds never separate)
    assert relu["smoothed_margin_monotone_fraction"] == 1.0
    assert relu["median_normalized_margin_T"] > 0
    # Euler in log-time: the layer balance drifts by O(Δτ) relative to ‖θ‖².
    assert relu["median_layer_balance_drift_over_theta2"] <= 1e-3
