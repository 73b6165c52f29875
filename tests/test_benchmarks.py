"""The benchmark baselines integrate the same flow as dynsim (`benchmarks/`).

The hand-written scans of `benchmarks/gf_batched.py` are what dynsim's speed is compared
with, so they must solve the same ODE: in log-time too (until 2026-11-30 the RK4 scan
integrated the plain flow there, to the wrong horizon, unnoticed). Small sizes, float64.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import equal_accuracy  # noqa: E402
import gf_batched as gb  # noqa: E402


def _rel(a, b):
    """The largest per-seed ‖a − b‖ / ‖b‖ (the benchmark's own error measure)."""
    return np.max(equal_accuracy._rel_err(a, b))


@pytest.mark.parametrize("name, alpha, t1", [("W1", None, 0.5), ("W2", 1e-3, np.expm1(1.0))])
def test_scans_solve_the_flow_dynsim_solves(name, alpha, t1):
    wl = gb.workloads([name], alphas=(alpha,))[0]
    log_time = wl["flow"].get("log_time", False)
    assert log_time == (name == "W2")  # W2 at α = 1e-3 is the log-time workload
    res, _, _, _, _ = gb.run_sim(wl, 2, True, n_save=1, t1=t1, stop_loss=None, rtol=1e-11, atol=1e-13)
    assert res.status_counts()["reached_end"] == 2
    s_end = float(np.log1p(t1)) if log_time else t1
    _, _, rk4 = gb.rk4_scan(wl, 2, 1600, s_end, p0=res.params0)
    _, _, tsit5 = gb.tsit5_scan(wl, 2, 800, s_end, p0=res.params0)
    # Over these horizons the flow moves the parameters by 7 % (W1) and 100 % (W2) of
    # their final size, so solving another ODE or to another time cannot pass. Measured:
    # the scans agree with the adaptive solve (rtol 1e-11) to 1.9e-9 / 1.4e-10 (W1) and
    # 9.8e-10 / 6.3e-12 (W2, log-time to τ = 1); with a quarter of the steps RK4's
    # error is 5.7e-7 (W1): the 1e-7 bound sits between the truncation error of these
    # step counts and what a wrong flow gives (RK4 without the log-time rate: 2.1e-2, W2).
    assert _rel(res.params0, res.params) > 0.05
    assert _rel(rk4, res.params) < 1e-7
    assert _rel(tsit5, res.params) < 1e-7


def test_equal_accuracy_interpolates_in_log_log():
    pts = [
        dict(evals_per_seed=100.0, us_per_eval=1.0, err=1e-2),
        dict(evals_per_seed=400.0, us_per_eval=3.0, err=1e-6),
    ]
    ev, us, how = equal_accuracy._matched(pts, 1e-4, "err")
    assert how == "interpolated"
    assert ev == pytest.approx(200.0, rel=1e-12)  # halfway in log error -> halfway in log evals
    assert us == pytest.approx(2.0, rel=1e-12)
    assert equal_accuracy._matched(pts, 1e-7, "err") == (None, None, None)
    assert equal_accuracy._matched(pts, 1e-1, "err")[2] == "first"
    pts[0]["err"] = np.inf  # a diverged first point: the second is only an upper bound
    assert equal_accuracy._matched(pts, 1e-4, "err")[:3:2] == (400.0, "first")


def test_roofline_bound_and_fractions():
    """min(peak FLOP/s, intensity × peak B/s), with XLA's FLOPs and bytes per evaluation."""
    import roofline

    p = dict(workload="W", seeds=8, flops_per_eval=1e6, xla_flops_per_eval=2e4,
             xla_bytes_per_eval=1e4, grad_us_per_eval=2.0, loop_us_per_eval=4.0)
    (memory,) = roofline.roofline([p], peak_gflops=100.0, peak_gbs=10.0)
    assert memory["intensity_flop_per_byte"] == pytest.approx(2.0)
    assert memory["bound_by"] == "memory" and memory["roofline_gflops"] == pytest.approx(20.0)
    assert memory["grad_gflops"] == pytest.approx(10.0)  # 2e4 FLOP in 2 µs
    assert memory["grad_gbs"] == pytest.approx(5.0)
    assert memory["grad_fraction"] == pytest.approx(0.5)
    assert memory["loop_fraction"] == pytest.approx(0.25)
    (compute,) = roofline.roofline([p], peak_gflops=15.0, peak_gbs=10.0)
    assert compute["bound_by"] == "compute" and compute["roofline_gflops"] == pytest.approx(15.0)
