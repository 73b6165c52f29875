"""Where W1 and W3 stand against the machine's roofline.

    python benchmarks/roofline.py --seeds 1024 --reps 5
    python benchmarks/roofline.py --quick            # smoke test: 64 seeds, 1 rep

For each workload (defined in `gf_batched.py`, float32):

- FLOPs per gradient evaluation and seed: XLA's count for the compiled batched gradient
  `jit(vmap(Problem.value_and_grad))` (`cost_analysis()["flops"]` / seeds; the work the
  program does, e.g. W1's end-to-end pullback does far fewer than the layer-by-layer
  count `flops` in `gf_batched.workloads`, also reported), and the bytes XLA's cost
  model says that program reads and writes per seed;
- the time of that batched gradient alone (best of `--reps`), and of one evaluation
  inside dynsim's loop (`GradientFlow(n_save=1)`, wall time / evaluations), each as
  achieved GFLOP/s (XLA's count) and, for the gradient alone, GB/s (XLA's bytes);
- the machine's measured peaks: a large float32 matrix product (GFLOP/s) and a stream
  update y ← a·y + b over 2^26 floats, repeated in place (GB/s, 3 × 4 bytes per
  element: read y, read b, write y);
- the roofline bound min(peak FLOP/s, intensity × peak B/s) at the gradient's arithmetic
  intensity (FLOPs / bytes), and the fraction of it each time reaches. The same stream
  over 2^19 floats (cache-resident) is reported too: XLA's bytes count every operand of
  every fused kernel, and the data X and a block's parameters stay in cache, so a
  working set under the cache size can run above the memory-bandwidth roof.

The JSON (default `benchmarks/results/roofline_<date>.json`) records the machine
(`lscpu` model name), the date, the commit and every repetition.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(__file__))
import gf_batched as gb  # noqa: E402  (puts the repository on sys.path)

from dynsim._problem import Problem  # noqa: E402
from dynsim.losses import get_loss  # noqa: E402


def best_time(fn, *args, reps):
    jax.block_until_ready(fn(*args))  # warm
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return min(times), times


def peak_matmul(reps, n=2048):
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f = jax.jit(jnp.matmul).lower(a, b).compile()
    t, times = best_time(f, a, b, reps=reps)
    return 2 * n**3 / t / 1e9, times


def peak_stream(reps, n=2**26, sweeps=8):
    """y ← a·y + b, `sweeps` times over 2^26 floats in place (a `fori_loop`, so the
    buffer is reused and no pass is fused with the next): 12 bytes per element."""
    y = jnp.ones((n,), jnp.float32)
    b = jnp.full((n,), 0.5, jnp.float32)
    a = jnp.asarray(0.999, jnp.float32)
    body = lambda _, y: a * y + b
    f = jax.jit(lambda y, b: jax.lax.fori_loop(0, sweeps, body, y)).lower(y, b).compile()
    t, times = best_time(f, y, b, reps=reps)
    return sweeps * 3 * 4 * n / t / 1e9, times


def gradient_point(wl, seeds, reps):
    problem = Problem(wl["model"], get_loss("squared"), wl["data"].X, wl["data"].y)
    p0 = gb.params0(wl, seeds)
    grad = jax.jit(jax.vmap(problem.value_and_grad)).lower(p0).compile()
    cost = grad.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    xla_flops = float(cost.get("flops", float("nan"))) / seeds
    xla_bytes = float(cost.get("bytes accessed", float("nan"))) / seeds
    t, times = best_time(grad, p0, reps=reps)
    loop_us = []
    for _ in range(reps):
        _, wall, evals, _, _ = gb.run_sim(wl, seeds, True, n_save=1)
        loop_us.append(1e6 * wall / evals)
    return dict(
        workload=wl["name"], seeds=seeds, flops_per_eval=wl["flops"],
        xla_flops_per_eval=xla_flops, xla_bytes_per_eval=xla_bytes,
        grad_us_per_eval=1e6 * t / seeds, grad_times_s=times,
        loop_us_per_eval=min(loop_us), loop_us_reps=loop_us,
    )


def roofline(points, peak_gflops, peak_gbs):
    rows = []
    for p in points:
        intensity = p["xla_flops_per_eval"] / p["xla_bytes_per_eval"]
        bound = min(peak_gflops, intensity * peak_gbs)  # GFLOP/s
        grad_gflops = p["xla_flops_per_eval"] / p["grad_us_per_eval"] / 1e3
        loop_gflops = p["xla_flops_per_eval"] / p["loop_us_per_eval"] / 1e3
        grad_gbs = p["xla_bytes_per_eval"] / p["grad_us_per_eval"] / 1e3
        rows.append(dict(p, intensity_flop_per_byte=intensity, roofline_gflops=bound,
                         bound_by="compute" if bound == peak_gflops else "memory",
                         grad_gflops=grad_gflops, grad_gbs=grad_gbs, loop_gflops=loop_gflops,
                         grad_fraction=grad_gflops / bound, loop_fraction=loop_gflops / bound))
    return rows


def table(rows, peak_gflops, peak_gbs):
    out = [f"peak: matmul {peak_gflops:.1f} GFLOP/s, stream {peak_gbs:.1f} GB/s", "",
           "| workload | seeds | FLOP/eval (XLA / layer count) | bytes/eval (XLA) | FLOP/B | bound | "
           "roofline GFLOP/s | gradient µs/eval | GFLOP/s | GB/s | of roofline | loop µs/eval | "
           "GFLOP/s | of roofline |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['workload']} | {r['seeds']} | {r['xla_flops_per_eval']:.0f} / "
            f"{r['flops_per_eval']:.0f} | {r['xla_bytes_per_eval']:.0f} | "
            f"{r['intensity_flop_per_byte']:.2f} | {r['bound_by']} | {r['roofline_gflops']:.1f} | "
            f"{r['grad_us_per_eval']:.3f} | {r['grad_gflops']:.1f} | {r['grad_gbs']:.1f} | "
            f"{100 * r['grad_fraction']:.0f} % | {r['loop_us_per_eval']:.3f} | "
            f"{r['loop_gflops']:.1f} | {100 * r['loop_fraction']:.0f} % |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="W1,W3")
    ap.add_argument("--seeds", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    seeds, reps = (64, 1) if args.quick else (args.seeds, args.reps)
    wls = gb.workloads(args.workloads.split(","))
    for wl in wls:
        if wl["name"] == "W3":  # only the cost per evaluation counts (ReLU chatter)
            wl["flow"] = {**wl["flow"], "max_steps": 60}
    peak_gflops, mm_times = peak_matmul(reps)
    peak_gbs, stream_times = peak_stream(reps)
    cached_gbs, cached_times = peak_stream(reps, n=2**19, sweeps=256)
    points = [gradient_point(wl, seeds, reps) for wl in wls]
    rows = roofline(points, peak_gflops, peak_gbs)
    text = table(rows, peak_gflops, peak_gbs)
    text += (f"\n\ncache-resident stream (2^19 floats, 4 MiB in all): {cached_gbs:.1f} GB/s: a "
             "working set that fits in cache can exceed the memory roofline above")
    print(text)
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=os.path.dirname(__file__)).stdout.strip()
    except OSError:
        rev = "?"
    out = args.out or os.path.join(gb.RESULTS, f"roofline_{datetime.date.today()}.json")
    with open(out, "w") as f:
        json.dump(dict(machine=gb.machine(), date=str(datetime.datetime.now()), commit=rev,
                       peak_matmul_gflops=peak_gflops, matmul_times_s=mm_times,
                       peak_stream_gbs=peak_gbs, stream_times_s=stream_times,
                       cached_stream_gbs=cached_gbs, cached_stream_times_s=cached_times, rows=rows,
                       table=text), f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
