"""Per-evaluation cost of `GradientFlow(batched=False)` (vmap of per-seed `diffeqsolve`)
with `dynsim.dynamics.FusedTsit5` against diffrax's own `Tsit5`, on W1.

W1 is `gf_batched.py`'s: LinearNet(50, [100]) scalar output, regression(n=20, d=50),
Gaussian(0.1), stop at L < 1e-8 (t1 = 1e4), float32 (float64 with --x64), 65 saved
summaries. The two rows run the same `simulate` call, differing only in the solver:

- `fused`: `GradientFlow(batched=False)`, whose `Tsit5()` runs as `FusedTsit5`;
- `diffrax`: `GradientFlow(batched=False, solver=diffrax.Tsit5(scan_kind="bounded"))`,
  the program `GradientFlow(batched=False)` ran before `FusedTsit5` (diffrax gives a
  `Tsit5()` under `RecursiveCheckpointAdjoint` that stage-loop kind).

Cost per gradient evaluation: wall time after compilation ÷ (6 × steps + 1 per seed),
as `gf_batched.py` counts it (saved summaries and the stop check not counted). The two
solvers round differently, so in float32 a few seeds can take a step more or less: the
per-evaluation figure compares them at their own step counts. The measurements are
interleaved (fused, diffrax, fused, ... at each seed count): the table gives the best of
`--reps` of each and the median of the paired ratios (diffrax ÷ fused of the two runs
made one after the other), since a shared machine drifts between runs.

    python benchmarks/vmap_solver.py --seeds 8,32,128 --reps 5
    python benchmarks/vmap_solver.py --x64 --seeds 32 --reps 3 --out benchmarks/results/vmap_solver_x64.json
"""

import argparse
import datetime
import json
import os
import subprocess

import diffrax
import gf_batched as gb
import jax
import numpy as np


def _commit():
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=os.path.dirname(__file__))
        return out.stdout.strip() or None
    except OSError:
        return None


SOLVERS = {
    "fused": diffrax.Tsit5(),
    "diffrax": diffrax.Tsit5(scan_kind="bounded"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="8,32,128", help="comma-separated seed counts")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--x64", action="store_true", help="float64")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/vmap_solver_<date>.json)")
    ap.add_argument("--commit", default=None,
                    help="the commit measured, recorded in the JSON (default: git HEAD of this checkout)")
    args = ap.parse_args()
    if args.reps < 3:
        ap.error("--reps must be at least 3")
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    seeds_list = [int(s) for s in args.seeds.split(",")]
    wl = gb.workloads(["W1"])[0]
    now = datetime.datetime.now(datetime.UTC)
    out = args.out or os.path.join(gb.RESULTS, f"vmap_solver_{now:%Y%m%d-%H%M}.json")
    runs = {s: {k: [] for k in SOLVERS} for s in seeds_list}
    info = {s: {} for s in seeds_list}
    for rep in range(args.reps):
        for seeds in seeds_list:
            for name, solver in SOLVERS.items():
                res, wall, evals, _, _ = gb.run_sim(wl, seeds, False, solver=solver)
                us = 1e6 * wall / evals
                runs[seeds][name].append(us)
                if rep == 0:
                    info[seeds][name] = dict(
                        compile_s=float(res.compile_time),
                        steps_mean=float(np.mean(res.num_steps)),
                        evals=int(evals),
                        loss_final_median=float(np.median(np.asarray(res.loss[:, -1]))),
                        status_counts=np.bincount(np.asarray(res.status), minlength=5).tolist(),
                    )
                print(f"rep {rep} seeds {seeds} {name}: {us:.2f} us/eval", flush=True)
    rows = []
    for seeds in seeds_list:
        best = {k: min(v) for k, v in runs[seeds].items()}
        paired = [d / f for d, f in zip(runs[seeds]["diffrax"], runs[seeds]["fused"])]
        rows.append(dict(seeds=seeds, best_us_per_eval=best, speedup=best["diffrax"] / best["fused"],
                         paired_speedups=paired, paired_speedup_median=float(np.median(paired)),
                         runs_us_per_eval=runs[seeds], **{f"{k}_info": v for k, v in info[seeds].items()}))
    print()
    print("| seeds | diffrax Tsit5 µs/eval | FusedTsit5 µs/eval | best ÷ best | median of paired ratios "
          "(min–max) | steps/seed (diffrax / fused) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        b, p = r["best_us_per_eval"], r["paired_speedups"]
        print(f"| {r['seeds']} | {b['diffrax']:.2f} | {b['fused']:.2f} | {r['speedup']:.2f}× | "
              f"{r['paired_speedup_median']:.2f}× ({min(p):.2f}–{max(p):.2f}) | "
              f"{r['diffrax_info']['steps_mean']:.1f} / {r['fused_info']['steps_mean']:.1f} |")
    meta = dict(
        script="benchmarks/vmap_solver.py",
        date=now.isoformat(timespec="seconds"),
        commit=args.commit or _commit(),
        machine=gb.machine(),
        diffrax=diffrax.__version__,
        dtype="float64" if args.x64 else "float32",
        workload="W1",
        reps=args.reps,
        block_size="auto (32 seeds per block on the vmap path)",
    )
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(dict(meta, rows=rows), f, indent=1)
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
