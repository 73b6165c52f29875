"""Work against accuracy, W1 or W2: the batched adaptive loop and the hand-written scans.

The per-evaluation comparison (`gf_batched.py`, `scan_ratio.py`) gives each fixed-step
scan the loop's number of gradient evaluations, whatever accuracy that buys it. Here
every method integrates the same initial states (the loop's own, `SimulationResult.params0`)
over the same interval [0, T] and is scored by the error of its final parameters against
a float64 reference from an independent solver (diffrax's Dopri8 per seed, rtol 1e-12,
run in a subprocess with x64, checked against a second reference at rtol 1e-10):

    err(seed) = ‖θ(T) − θ_ref(T)‖₂ / ‖θ_ref(T)‖₂     over all parameters,

on the first `--ref-seeds` seeds. Reported per method and setting: wall time (best of
`--reps`, after compilation), gradient evaluations per seed, µs per evaluation and the
median and maximum of err. The loop runs at several tolerances (rtol, atol = rtol/1000;
the default is GradientFlow's 1e-6 / 1e-9), the scans at geometrically spaced step
counts, so each row is a point of a work–precision diagram.

"At equal accuracy": for the loop at its default tolerances, the evaluations a scan needs
to reach the loop's median (and maximum) error, interpolated linearly in
(log evaluations, log error) between the two sweep points that bracket it, and the scan's
wall time there (its µs per evaluation at the bracketing points × evaluations × seeds),
divided by the loop's wall time; the same for the loop at each tolerance. A sweep ends
when it reaches the loop's smallest error or when its error grew at two successive step
counts (float32 rounding then outweighs the truncation error). When no sweep point
reaches the loop's error, the scan's smallest error and its cost are reported instead.
A seed whose fixed-step solution diverged counts as an infinite error.

    python benchmarks/equal_accuracy.py --seeds 1024 --out benchmarks/results/W1_1024_equal_accuracy.json
    python benchmarks/equal_accuracy.py --workload W2 --alpha 0.1 --seeds 1024

Workloads as in `gf_batched.py`; in log-time (W2 at α < 0.01) the scans and the reference
integrate dθ/dτ = −e^τ ∇L over τ ∈ [0, log(1 + T)].

T defaults to the median time at which the default benchmark run (stop at its stop_loss)
stopped; the loop here has no stop condition (`stop_loss=None`), so every seed runs to T.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import gf_batched as gb  # noqa: E402

RTOLS = (1e-4, 1e-5, 1e-6, 1e-7, 1e-8)
FACTORS = (0.5, 2**-0.5, 1.0, 2**0.5, 2.0, 2**1.5, 4.0, 2**2.5, 8.0, 2**3.5, 16.0)


def reference(path_in, path_out):
    """The float64 reference: Dopri8 per seed (vmap of diffeqsolve) at rtol 1e-12 and at
    rtol 1e-10 (its own error estimate), from the float32 initial states in `path_in`."""
    jax.config.update("jax_enable_x64", True)
    import diffrax

    from dynsim._problem import Problem
    from dynsim.losses import get_loss

    z = np.load(path_in)
    wl = _workload(str(z["workload"]), float(z["alpha"]))
    log_time = wl["flow"].get("log_time", False)
    X, y = (jnp.asarray(z[k], jnp.float64) for k in ("X", "y"))
    problem = Problem(wl["model"], get_loss("squared"), X, y)
    n_leaves = int(z["n_leaves"])
    p0 = [jnp.asarray(z[f"p{i}"], jnp.float64) for i in range(n_leaves)]
    treedef = jax.tree.structure(
        jax.eval_shape(lambda k: wl["init"](wl["model"], wl["data"], k), jax.random.key(0))
    )
    y0 = jax.tree.unflatten(treedef, p0)
    term = diffrax.ODETerm(
        lambda s, p, args: jax.tree.map(lambda g: -(jnp.exp(s) if log_time else 1.0) * g,
                                        jax.grad(problem.value)(p)))
    T = float(z["T"])
    s1 = float(np.log1p(T)) if log_time else T

    def solve(rtol):
        def one(p):
            sol = diffrax.diffeqsolve(
                term, diffrax.Dopri8(), 0.0, s1, None, p,
                stepsize_controller=diffrax.PIDController(rtol=rtol, atol=rtol * 1e-3),
                saveat=diffrax.SaveAt(t1=True), max_steps=1_000_000,
            )
            return jax.tree.map(lambda x: x[0], sol.ys), sol.stats["num_steps"], sol.result == diffrax.RESULTS.successful

        return jax.jit(jax.vmap(one))(y0)

    fine, n_fine, ok_fine = solve(1e-12)
    coarse, _, ok_coarse = solve(1e-10)
    if not (bool(jnp.all(ok_fine)) and bool(jnp.all(ok_coarse))):
        raise RuntimeError("reference: Dopri8 did not reach T on every seed")
    out = {f"p{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(fine))}
    out["ref_err"] = np.asarray(_rel_err(coarse, fine))
    out["ref_steps"] = np.asarray(n_fine)
    np.savez(path_out, **out)


def _workload(name, alpha):
    return gb.workloads([name], alphas=(alpha,))[0]


def _rel_err(theta, ref):
    """‖θ − θ_ref‖ / ‖θ_ref‖ per seed (leading axis), over all leaves, in float64 (numpy:
    the timed process runs without x64)."""
    a = [np.asarray(x, np.float64).reshape(x.shape[0], -1) for x in jax.tree.leaves(theta)]
    b = [np.asarray(x, np.float64).reshape(x.shape[0], -1) for x in jax.tree.leaves(ref)]
    num = sum(np.sum((u - v) ** 2, axis=1) for u, v in zip(a, b))
    den = sum(np.sum(v**2, axis=1) for v in b)
    err = np.sqrt(num / den)
    return np.where(np.isfinite(err), err, np.inf)  # a diverged seed counts as infinitely wrong


def _subset(tree, n):
    return jax.tree.map(lambda x: np.asarray(x[:n]), tree)


def _matched(points, target, key):
    """Evaluations per seed and µs per evaluation at which a sweep (`points`, ascending
    in evaluations) first reaches err[key] <= target: log-log interpolation between the
    bracketing points. Returns (evals, us_per_eval, how): how = "interpolated", "first"
    (the first point to reach it has no finite predecessor, the first point tried or one
    after a diverged run: its evaluations are an upper bound) or None (no point reaches it)."""
    for i, p in enumerate(points):
        if p[key] <= target:
            if i == 0 or not np.isfinite(points[i - 1][key]):
                return p["evals_per_seed"], p["us_per_eval"], "first"
            q = points[i - 1]
            lx0, lx1 = np.log(q["evals_per_seed"]), np.log(p["evals_per_seed"])
            ly0, ly1 = np.log(q[key]), np.log(p[key])
            w = (np.log(target) - ly0) / (ly1 - ly0) if ly1 != ly0 else 1.0
            ev = float(np.exp(lx0 + w * (lx1 - lx0)))
            return ev, q["us_per_eval"] + w * (p["us_per_eval"] - q["us_per_eval"]), "interpolated"
    return None, None, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", default="W1", choices=("W1", "W2"))
    ap.add_argument("--alpha", type=float, default=0.1, help="W2's init scale")
    ap.add_argument("--seeds", type=int, default=1024)
    ap.add_argument("--ref-seeds", type=int, default=64, help="seeds scored against the reference")
    ap.add_argument("--t-end", type=float, default=None, help="T (default: median stop time of the default run)")
    ap.add_argument("--reps", type=int, default=2, help="timed runs per point (best kept)")
    ap.add_argument("--rtols", default=",".join(f"{r:g}" for r in RTOLS))
    ap.add_argument("--out", default=None)
    ap.add_argument("--reference", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reference:
        return reference(*args.reference)
    if args.reps < 1 or args.seeds < 2 or not 1 <= args.ref_seeds <= args.seeds:
        ap.error("--reps must be >= 1, --seeds >= 2 and 1 <= --ref-seeds <= --seeds")
    if args.t_end is not None and not args.t_end > 0:
        ap.error(f"--t-end must be positive; got {args.t_end}")
    rtols = [float(r) for r in args.rtols.split(",")]
    if 1e-6 not in rtols:
        ap.error("--rtols must include 1e-6 (GradientFlow's default, the comparison point)")
    wl = _workload(args.workload, args.alpha)
    S, R = args.seeds, args.ref_seeds

    if args.t_end is None:
        res, _, _, _, _ = gb.run_sim(wl, S, True, n_save=1)
        T = float(np.median(np.asarray(res.t_final)))
    else:
        T = args.t_end
    print(f"{wl['name']}, {S} seeds, T = {T:.6g}; reference on {R} seeds", flush=True)
    s_end = float(np.log1p(T)) if wl["flow"].get("log_time") else T  # the scans' horizon

    # The loop at each tolerance: no stop condition, every seed to T.
    loop = []
    p0 = None
    for rtol in rtols:
        best = None
        for _ in range(args.reps):
            res, wall, evals, _, _ = gb.run_sim(
                wl, S, True, n_save=1, t1=T, stop_loss=None, rtol=rtol, atol=rtol * 1e-3
            )
            best = wall if best is None else min(best, wall)
        status = np.bincount(np.asarray(res.status), minlength=5).tolist()
        if p0 is None:
            p0 = res.params0
        loop.append(dict(rtol=rtol, wall_s=best, evals_per_seed=evals / S, us_per_eval=1e6 * best / evals,
                         status_counts=status, theta=_subset(res.params, R)))

    # The float64 reference, in a subprocess (x64 must not leak into the timed runs).
    with tempfile.TemporaryDirectory() as tmp:
        leaves = jax.tree.leaves(_subset(p0, R))
        np.savez(os.path.join(tmp, "in.npz"), X=np.asarray(wl["data"].X), y=np.asarray(wl["data"].y),
                 T=T, workload=args.workload, alpha=args.alpha, n_leaves=len(leaves),
                 **{f"p{i}": x for i, x in enumerate(leaves)})
        subprocess.run([sys.executable, __file__, "--reference", os.path.join(tmp, "in.npz"),
                        os.path.join(tmp, "ref.npz")], check=True)
        z = np.load(os.path.join(tmp, "ref.npz"))
        ref = jax.tree.unflatten(jax.tree.structure(p0), [z[f"p{i}"] for i in range(len(leaves))])
        ref_err, ref_steps = z["ref_err"], z["ref_steps"]
    print(f"reference: Dopri8 rtol 1e-12, {np.median(ref_steps):.0f} steps (median); "
          f"vs rtol 1e-10: max err {ref_err.max():.1e}", flush=True)

    rows = []

    def add(method, setting, wall, evals_per_seed, theta, extra=None):
        err = _rel_err(theta, ref)
        r = dict(method=method, setting=setting, wall_s=float(wall), evals_per_seed=float(evals_per_seed),
                 us_per_eval=float(1e6 * wall / (evals_per_seed * S)),
                 err_median=float(np.median(err)), err_max=float(np.max(err)), **(extra or {}))
        rows.append(r)
        print(f"{method:<12} {setting:<16} {r['wall_s']:8.2f} s {r['evals_per_seed']:8.0f} evals/seed "
              f"{r['us_per_eval']:7.2f} us/eval  err median {r['err_median']:.2e} max {r['err_max']:.2e}", flush=True)
        return r

    for lp in loop:
        add("batched", f"rtol={lp['rtol']:g}", lp["wall_s"], lp["evals_per_seed"], lp["theta"],
            dict(rtol=lp["rtol"], status_counts=lp["status_counts"]))
    base = next(r for r in rows if r.get("rtol") == 1e-6)

    target = {k: min(r[k] for r in rows) for k in ("err_median", "err_max")}
    sweeps = {}
    for name, fn, per_step in (("rk4-scan", gb.rk4_scan, 4), ("tsit5-scan", gb.tsit5_scan, 6)):
        pts = []
        for f in FACTORS:
            n = max(1, int(round(f * base["evals_per_seed"] / per_step)))
            best, out = None, None
            for _ in range(args.reps):
                w, _, o = fn(wl, S, n, s_end, p0=p0)
                if best is None or w < best:
                    best, out = w, o
            evals = per_step * n + (1 if per_step == 6 else 0)  # Tsit5: + the FSAL evaluation at 0
            pts.append(add(name, f"{n} steps", best, evals, _subset(out, R), dict(steps=n)))
            if pts[-1]["err_max"] <= target["err_max"] and pts[-1]["err_median"] <= target["err_median"]:
                break
            # past the scan's float rounding floor: the error grew at the last two points
            med = [p["err_median"] for p in pts]
            if len(med) >= 3 and med[-1] > med[-2] > med[-3]:
                break
        sweeps[name] = pts

    # Each scan at the accuracy of the loop at each tolerance.
    matched = []
    for lp in (r for r in rows if r["method"] == "batched"):
        for name, pts in sweeps.items():
            for key in ("err_median", "err_max"):
                ev, us, how = _matched(pts, lp[key], key)
                m = dict(loop_rtol=lp["rtol"], scan=name, error=key, target=lp[key], loop_wall_s=lp["wall_s"])
                if how is None:
                    best = min(pts, key=lambda p: p[key])
                    m.update(evals_per_seed=None, wall_s=None, ratio_scan_to_loop=None,
                             note=f"not reached: the scan's smallest {key[4:]} error is {best[key]:.2e} "
                                  f"(at {best['evals_per_seed']:.0f} evals/seed, {best['wall_s']:.2f} s)")
                    text = m["note"]
                else:
                    wall = us * 1e-6 * ev * S
                    m.update(evals_per_seed=ev, wall_s=wall, ratio_scan_to_loop=wall / lp["wall_s"],
                             note="upper bound: the first step count that reaches it has no finite-error predecessor"
                             if how == "first" else "")
                    text = f"{ev:.0f} evals/seed, {wall:.2f} s = {wall / lp['wall_s']:.2f}x" + (
                        f" ({m['note']})" if m["note"] else "")
                matched.append(m)
                print(f"loop rtol={lp['rtol']:g} ({lp['wall_s']:.2f} s), {key[4:]} error {lp[key]:.2e}: "
                      f"{name} {text}", flush=True)

    if args.out:
        with open(args.out, "w") as fh:
            json.dump(dict(machine=gb.machine(), args=vars(args), T=T, reference=dict(
                method="Dopri8 float64, rtol 1e-12, atol 1e-15", seeds=R,
                steps_median=float(np.median(ref_steps)), err_vs_rtol_1e10_max=float(ref_err.max())),
                rows=rows, equal_accuracy=matched), fh, indent=1)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
