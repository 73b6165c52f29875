"""Per-evaluation cost of the batched loop relative to the hand-written scans, W1.

Single benchmark runs on a shared machine drift between runs, and the scans (whole-batch
arrays, memory-bound) drift more than the loop, so a ratio taken from one `gf_batched.py`
row pair moves by more than the gaps it is meant to show (the measured spreads are in
benchmarks/HISTORY.md, 2026-11-29). This script interleaves the three measurements and
keeps the best of `--reps` repetitions of each: the batched loop saving only the final
state (`GradientFlow()` defaults, `n_save=1`), then the RK4 and Tsit5
`jit(vmap(lax.scan))` baselines of `gf_batched.py` at the loop's number of gradient
evaluations per seed and its median stop time.

    python benchmarks/scan_ratio.py --seeds 1024 --reps 3 --out benchmarks/results/W1_1024_scan_ratio.json
"""

import argparse
import json

import gf_batched as gb
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.reps < 1 or args.seeds < 2:
        ap.error("--reps must be at least 1 and --seeds at least 2")
    wl = gb.workloads(["W1"])[0]
    best, runs = {}, []
    for rep in range(args.reps):
        res, wall, evals, _, _ = gb.run_sim(wl, args.seeds, True, n_save=1)
        us = {"batched-final": 1e6 * wall / evals}
        t_end = float(np.median(res.t_final))
        per_seed = evals / args.seeds
        n_rk4, n_tsit5 = int(round(per_seed / 4)), int(round(per_seed / 6))
        w, _, _ = gb.rk4_scan(wl, args.seeds, n_rk4, t_end)
        us["rk4-scan"] = 1e6 * w / (args.seeds * 4 * n_rk4)
        w, _, _ = gb.tsit5_scan(wl, args.seeds, n_tsit5, t_end)
        us["tsit5-scan"] = 1e6 * w / (args.seeds * 6 * n_tsit5)
        best = {k: min(v, best.get(k, np.inf)) for k, v in us.items()}
        ratios = {
            "rk4": best["batched-final"] / best["rk4-scan"],
            "tsit5": best["batched-final"] / best["tsit5-scan"],
        }
        runs.append(us)
        print(
            f"rep {rep}: us/eval "
            + ", ".join(f"{k} {v:.2f}" for k, v in us.items())
            + "; best "
            + ", ".join(f"{k} {v:.2f}" for k, v in best.items())
            + f"; batched-final / rk4-scan {ratios['rk4']:.3f}, / tsit5-scan {ratios['tsit5']:.3f}",
            flush=True,
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {
                    "machine": gb.machine(),
                    "seeds": args.seeds,
                    "reps": args.reps,
                    "us_per_eval": runs,
                    "best_us_per_eval": best,
                    "ratio": ratios,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
