"""`StochasticGradientFlow` against the Euler–Maruyama loop a researcher would write.

Workloads (`gf_batched.workloads`): W1 (LinearNet(50, [100]), regression n = 20) and W3
(TwoLayerNet(20, 50) ReLU teacher–student, n = 100), squared loss, 1,000 Euler–Maruyama
steps of dt = 10⁻³ with isotropic noise (τ = 10⁻³), or with SGD noise (η = dt, b = 4).
Rows, for the same number of seeds from the same initialization scheme:

- `dynsim`: `dynsim.simulate` with `StochasticGradientFlow(t1=1, dt0=1e-3, ...)`, 9 saved
  summaries, default `block_size`;
- `hand`: `jit(vmap(lax.scan))` of θ ← θ − h∇L(θ) + G(θ)√h ξ with ξ from
  `fold_in(key, k)` and ∇L by `jax.grad` — isotropic G = √(2τ); SGD G from per-sample
  gradients (`vmap(grad)` over the samples, centred, contracted with ξ ∈ ℝⁿ) — no saving,
  no status, no stop checks.

The table gives run time after compilation (best of `--reps`), µs per seed-step and the
ratio dynsim ÷ hand. Both produce their noise differently, so results agree in
distribution, not path by path (the tests check the SDE's statistics).

    python benchmarks/sde.py --seeds 1024 --reps 3 --out benchmarks/results/sde_<machine>.json
"""

import argparse
import datetime
import json
import os
import subprocess
import time

import gf_batched as gb
import jax
import jax.numpy as jnp
import numpy as np

import dynsim

T1, DT, TAU, BATCH = 1.0, 1e-3, 1e-3, 4


def hand_loop(wl, noise):
    problem, _ = gb.grad_fn(wl)
    X, y = wl["data"].X, wl["data"].y
    n = X.shape[0]
    steps = int(round(T1 / DT))
    grad = jax.grad(problem.value)

    def per_sample(p, x, t):
        # the one-sample estimate of the summed loss: n·ℓ_i
        return n * 0.5 * jnp.sum((wl["model"].apply(p, x[None]) - t[None]) ** 2)

    def one(p0, key):
        def step(p, k):
            g = grad(p)
            xi_key = jax.random.fold_in(key, k)
            if noise == "isotropic":
                leaves, tree = jax.tree.flatten(p)
                keys = jax.random.split(xi_key, len(leaves))
                xi = jax.tree.unflatten(tree, [jax.random.normal(kk, x.shape, x.dtype)
                                               for kk, x in zip(keys, leaves)])
                scale = jnp.sqrt(2 * TAU * DT)
                new = jax.tree.map(lambda x, gg, e: x - DT * gg + scale * e, p, g, xi)
            else:
                G = jax.vmap(jax.grad(per_sample), in_axes=(None, 0, 0))(p, X, y)
                w = jax.random.normal(xi_key, (n,), X.dtype)
                w = w - jnp.mean(w)
                c = DT * (n - BATCH) / ((n - 1) * BATCH * n)  # η = dt
                new = jax.tree.map(lambda x, gg, Gi: x - DT * gg + jnp.sqrt(c * DT) *
                                   jnp.tensordot(w, Gi, axes=1), p, g, G)
            return new, None

        return jax.lax.scan(step, p0, jnp.arange(steps))[0]

    return one


def run(wl, seeds, noise, reps):
    p0 = gb.params0(wl, seeds)
    keys = jax.random.split(jax.random.key(2), seeds)
    kw = dict(temperature=TAU) if noise == "isotropic" else dict(
        learning_rate=DT, batch_size=BATCH)
    dyn = dynsim.StochasticGradientFlow(t1=T1, dt0=DT, noise=noise, n_save=9, **kw)
    init = wl["init"]
    best = {"dynsim": np.inf, "hand": np.inf}
    compile_s = {}
    fn = jax.jit(jax.vmap(hand_loop(wl, noise)))
    t0 = time.perf_counter()
    fn = fn.lower(p0, keys).compile()
    compile_s["hand"] = time.perf_counter() - t0
    for _ in range(reps):
        res = dynsim.simulate(wl["model"], wl["data"], init=init, dynamics=dyn, seeds=seeds,
                              key=jax.random.key(1))
        compile_s.setdefault("dynsim", res.compile_time)
        best["dynsim"] = min(best["dynsim"], res.wall_time - res.compile_time)
        t0 = time.perf_counter()
        jax.block_until_ready(fn(p0, keys))
        best["hand"] = min(best["hand"], time.perf_counter() - t0)
    steps = int(round(T1 / DT))
    return [dict(workload=wl["name"], noise=noise, method=m, seeds=seeds, run_s=best[m],
                 compile_s=compile_s[m], us_per_seed_step=best[m] / (seeds * steps) * 1e6,
                 ok=None if m == "hand" else int(np.sum(res.ok())))
            for m in ("dynsim", "hand")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", default="W1,W3")
    ap.add_argument("--noise", default="isotropic,sgd")
    ap.add_argument("--seeds", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    for wl in gb.workloads(args.workloads.split(",")):
        for noise in args.noise.split(","):
            r = run(wl, args.seeds, noise, args.reps)
            r[0]["ratio_to_hand"] = r[0]["run_s"] / r[1]["run_s"]
            rows += r
            for x in r:
                print(f"{x['workload']:4s} {x['noise']:9s} {x['method']:7s} {x['seeds']:6d} "
                      f"run {x['run_s']:8.3f} s  compile {x['compile_s']:6.2f} s  "
                      f"{x['us_per_seed_step']:7.3f} µs/seed-step"
                      + (f"  ×{x['ratio_to_hand']:.2f} of hand" if "ratio_to_hand" in x else ""))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=os.path.dirname(__file__)).stdout.strip() or None
    out = dict(benchmark="sde", date=datetime.date.today().isoformat(), commit=commit,
               machine=gb.machine(), t1=T1, dt=DT, temperature=TAU, batch_size=BATCH, rows=rows)
    path = args.out or os.path.join(os.path.dirname(__file__), "results",
                                    f"sde_{datetime.date.today():%Y%m%d}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
