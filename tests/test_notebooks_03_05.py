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
    narrow, wide = str(min(s["widths"])), str(max(s["widths"]))
    for setup in ("both", "fixed_outer"):
        inside = s["inside_envelope_fraction"][setup]
        # The theorem's statement: L(t) <= e^{-λ₀t} L(0) at every step with probability -> 1 as
        # m grows. Full size: 1.000 at m >= 128 in both set-ups; with 32 seeds a true fraction
        # of 0.99 gives < 0.9 with probability < 1e-3.
        assert inside[wide] >= 0.9
        assert inside[wide] >= inside[narrow]
        # Du et al.'s GD form (1 - ηλ₀/2)^k is weaker than e^{-λ₀ kη}: never a smaller fraction.
        assert all(s["inside_gd_envelope_fraction"][setup][m] >= inside[m] for m in inside)
        # The window [1e-10, 1e-2]·L(0): its infinite-width limit is the kernel dynamics' fit,
        # ≈ 1.10 × 2λ_min (higher modes still present), not 2λ_min. Deterministic given the
        # draws of r₀; 500 draws at small size: s.e. of the median ≈ 0.005.
        assert 1.05 <= s["window_rate_infinite_width_over_2lambda0"][setup] <= 1.16
        # The late window is dominated by the bottom mode: at infinite width the fit equals the
        # GD bottom-mode rate -2 log(1 - ηλ₀)/η (second mode weighted by e^{-15}).
        assert abs(s["late_rate_infinite_width_over_gd_rate_lambda0"][setup] - 1) < 1e-3
        # At finite width the late rate is that of the trained net's own kernel K_m(θ_T)
        # (median 0.98-0.99 at m = 128; below 1 where the second mode still contributes) ...
        assert 0.9 <= s["late_rate_over_gd_rate_ntk_final"][setup][wide] <= 1.02
        # ... and approaches the K∞ rate from below as m grows (0.5-0.7 at m = 16, ≈ 0.84 at 128).
        late = s["late_rate_over_gd_rate_lambda0"][setup]
        assert late[narrow] < late[wide] < 1.0
        # Empirical NTK -> analytic kernel with biases, error ∝ m^{-1/2}: fitted slope within 30%.
        assert -0.65 <= s["ntk_error_loglog_slope"][setup] <= -0.35
        errs = [s["ntk_mean_rel_error"][setup][str(m)] for m in s["kernel_widths"]]
        assert all(a > b for a, b in zip(errs, errs[1:]))
    # Pairwise linear independence: two parallel inputs make the bias-free kernel singular
    # (λ_min at rounding level, ~1e-16 of λ_max ≈ 9) but not the kernel with biases.
    par = s["parallel_inputs"]
    for key, lam in par["lambda_min_K_inf"].items():
        if key.startswith("bias=False"):
            assert abs(lam) < 1e-12
        else:
            assert lam > 0.05
    # Without biases f(x₂) = ½ f(x₁) for every parameter: no seed goes below the floor
    # ½(y₂ − ½y₁)²/(1 + ¼) (to rounding), while with biases the loss falls well below it
    # (full size: by many orders of magnitude; the small size runs a quarter of the horizon
    # at width 16, where the bottom kernel mode predicts L/floor ≈ 4·e^{-7.5} ≈ 2e-3).
    assert par["no_bias"]["min_final_over_floor"] >= 1 - 1e-9
    assert par["bias"]["median_final_over_floor"] < 0.1


def test_05_exponential_margins(nb05):
    s = nb05["summary"]
    assert s["scale"] == "small" and s["seeds"] >= 16
    # The SVM reference satisfies its KKT conditions (polished NNLS: rounding level).
    kkt_svm = s["svm_kkt"]
    assert abs(kkt_svm["primal_min_margin"] - 1) < 1e-10 and kkt_svm["dual_min"] >= 0
    assert kkt_svm["complementary_slackness_max"] < 1e-10 and kkt_svm["stationarity_rel"] < 1e-10
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
        # Approximate KKT point of the margin problem: stationarity and complementary
        # slackness residuals shrink along the flow (slowly, like 1/log t), multipliers >= 0.
        times = sorted((t for t in s["kkt"][name] if t[0].isdigit()), key=float)
        k = [s["kkt"][name][t] for t in times]
        assert all(a["eps_median"] > b["eps_median"] for a, b in zip(k, k[1:]))
        assert all(a["delta_median"] > b["delta_median"] for a, b in zip(k, k[1:]))
        assert all(x["dual_feasible_fraction"] == 1.0 for x in k)
    # Soudry's constant: on the support z_nᵀ(w(t) − ŵ log t) -> −log α_n, for every seed.
    sou = s["soudry_constant"]
    res = [sou["median_sv_residual"][t] for t in sorted(sou["median_sv_residual"], key=float)]
    assert res[-1] < 0.5 * res[0]
    assert sou["sv_residual_decreasing_fraction"] == 1.0
    # Balance of the two-layer linear net conserved to the solver tolerance.
    assert s["linear2_max_conserved_drift"] <= 1e-8
    relu = s["relu"]
    # Separation decided by small-step GD over all seeds (full size: see the results JSON).
    assert relu["separated_fraction_all_seeds"] >= 0.8
    assert relu["margin_seeds"] >= 0.8 * s["relu_seeds"]
    assert relu["smoothed_margin_monotone_fraction"] == 1.0
    assert relu["median_normalized_margin_T"] > 0
    k = [relu["kkt"][t] for t in sorted(relu["kkt"], key=float)]
    assert all(a["eps_median"] > b["eps_median"] for a, b in zip(k, k[1:]))
    assert all(a["delta_median"] > b["delta_median"] for a, b in zip(k, k[1:]))
    # Euler in log-time: the layer balance drifts by O(Δτ) relative to ‖θ‖².
    assert relu["median_layer_balance_drift_over_theta2"] <= 1e-3
