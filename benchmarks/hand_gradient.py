"""dynsim's cost per gradient evaluation against a hand-written einsum RK4 scan.

    python benchmarks/hand_gradient.py --seeds 1024,8192 --reps 3
    python benchmarks/hand_gradient.py --quick          # smoke test: 64 seeds, 1 rep

Workloads (float32, squared loss ½‖r‖², defined in `gf_batched.py`): W1 (LinearNet(50,
[100]), n = 20, to L < 1e-8), W2 at α = 0.1 (DiagonalNet(100) uu−vv, n = 40, to
L < 1e-10), W3 (TwoLayerNet(20, 50) relu with biases, NTK scaling, n = 100) run to
t = 10 with at most `--w3-max-steps` steps (the seeds then end `MAX_STEPS`: only the
cost per evaluation is measured).

Rows, interleaved within each (workload, seeds) point, best of `--reps`:

- `dynsim`: `GradientFlow(n_save=1)` through `simulate` (the batched Tsit5 loop), the
  models' hand-written pullbacks (`apply_and_pullback`): µs per gradient evaluation =
  wall time after compilation / (6·steps + 1 per seed).
- `dynsim-autodiff`: the same with the model wrapped in `AutodiffModel`, which only
  delegates and so gets `AbstractModel`'s reverse-mode pullback: the gradient as it was
  computed before the hand-written pullbacks (`jax.value_and_grad` per seed, `vmap`ped).
- `hand-rk4`: a fixed-step RK4 `lax.scan` over the whole batch (no `vmap`) whose
  gradient is written by hand with `jnp.einsum`, the data shared by all seeds, so each
  data contraction is one matrix product over seeds × width (`HAND_GRADIENTS`); as many
  gradient evaluations per seed as the `dynsim` run (4 per step), to its median stop
  time. No error control, step control, stopping or saving.
- `autodiff-rk4`: `gf_batched.rk4_scan`'s scan, `vmap` of a per-seed RK4 step over
  `jax.grad(L)` (reverse mode of `Problem.value`).
- `pullback-rk4`: the same over `Problem.value_and_grad` (the hand-written pullbacks):
  dynsim's gradient without dynsim's loop, so `dynsim` ÷ `pullback-rk4` is the cost of
  the adaptive loop (Tsit5 stage sums, error control, stopping) per evaluation.

`ratio` = `dynsim` ÷ `hand-rk4` (the target of issue #18: ≤ 1.2). The JSON (default
`benchmarks/results/hand_gradient_<date>.json`) records the machine (`lscpu` model
name), the date, the commit, every repetition and the best figures.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import gf_batched as gb  # noqa: E402  (puts the repository on sys.path)

from dynsim.models import AbstractModel  # noqa: E402


class AutodiffModel(AbstractModel):
    """`inner` with the default (reverse-mode) pullback: every method but
    `apply_and_pullback` delegates, so the gradient is autodiff's of `inner.apply`."""

    inner: AbstractModel

    @property
    def in_dim(self):
        return self.inner.in_dim

    @property
    def out_shape(self):
        return self.inner.out_shape

    @property
    def width(self):
        return self.inner.width

    @property
    def layers(self):
        return self.inner.layers

    def param_shapes(self, dtype=None):
        return self.inner.param_shapes(dtype)

    def apply(self, params, X):
        return self.inner.apply(params, X)

    def gaussian(self, key, std, dtype=None):
        return self.inner.gaussian(key, std, dtype)

    def conserved(self, params):
        return self.inner.conserved(params)


def _hand_w1(X, y):
    """LinearNet(d, [h]) scalar output, W_1 (S, h, d), W_2 (S, 1, h):
    H = W_1Xᵀ, f = W_2H, r = f − y, ∂L/∂W_2 = rHᵀ, ∂L/∂W_1 = (W_2ᵀr)X."""

    def grad(p):
        W1, W2 = p["W"]
        H = jnp.einsum("shd,nd->shn", W1, X)
        r = jnp.einsum("sh,shn->sn", W2[:, 0], H) - y
        gW2 = jnp.einsum("sn,shn->sh", r, H)[:, None, :]
        gW1 = jnp.einsum("sh,sn,nd->shd", W2[:, 0], r, X)
        return {"W": (gW1, gW2)}

    return grad


def _hand_w2(X, y):
    """DiagonalNet uu−vv, u, v (S, d): r = (u² − v²)Xᵀ − y, g = rX, ∂L/∂u = 2u⊙g,
    ∂L/∂v = −2v⊙g."""

    def grad(p):
        u, v = p["u"], p["v"]
        r = jnp.einsum("sd,nd->sn", u * u - v * v, X) - y
        g = jnp.einsum("sn,nd->sd", r, X)
        return {"u": 2 * u * g, "v": -2 * v * g}

    return grad


def _hand_w3(X, y, scale):
    """TwoLayerNet relu with biases, w (S, m, d), b, a (S, m): Z = wXᵀ + b,
    f = s·a·relu(Z), r = f − y, ∂L/∂a = s·relu(Z)r, Δ = s·(a rᵀ)⊙1{Z > 0},
    ∂L/∂w = ΔX, ∂L/∂b = Δ1."""

    def grad(p):
        w, b, a = p["w"], p["b"], p["a"]
        Z = jnp.einsum("smd,nd->smn", w, X) + b[:, :, None]
        H = jax.nn.relu(Z)
        r = scale * jnp.einsum("sm,smn->sn", a, H) - y
        ga = scale * jnp.einsum("smn,sn->sm", H, r)
        delta = jnp.where(Z > 0, scale * a[:, :, None] * r[:, None, :], 0.0)
        return {"w": jnp.einsum("smn,nd->smd", delta, X), "b": delta.sum(-1), "a": ga}

    return grad


HAND_GRADIENTS = {"W1": _hand_w1, "W2": _hand_w2, "W3": _hand_w3}


def hand_grad(wl):
    X, y = wl["data"].X, wl["data"].y
    name = wl["name"].split("(")[0]
    if name == "W3":
        return HAND_GRADIENTS[name](X, y, float(wl["model"].scale))
    return HAND_GRADIENTS[name](X, y)


def check_hand_gradient(wl, p0):
    """The hand gradient is the workload's: it equals autodiff's at θ₀ (float32)."""
    problem, _ = gb.grad_fn(wl)
    auto = jax.vmap(jax.grad(problem.value))(p0)
    hand = hand_grad(wl)(p0)
    for a, h in zip(jax.tree.leaves(auto), jax.tree.leaves(hand)):
        err = float(jnp.max(jnp.abs(a - h)) / jnp.max(jnp.abs(a)))
        assert err < 1e-4, f"{wl['name']}: hand gradient differs from autodiff by {err:.1e}"


def hand_rk4(wl, n_steps, t_end):
    """Fixed-step RK4 `lax.scan` of θ̇ = −∇L(θ) over the whole batch, the hand gradient."""
    grad = hand_grad(wl)
    dt = t_end / n_steps

    def rhs(y):
        return jax.tree.map(jnp.negative, grad(y))

    def run(p):
        def step(y, _):
            ax = lambda a, b, c: jax.tree.map(lambda u, v: u + c * v, a, b)
            k1 = rhs(y)
            k2 = rhs(ax(y, k1, dt / 2))
            k3 = rhs(ax(y, k2, dt / 2))
            k4 = rhs(ax(y, k3, dt))
            return jax.tree.map(
                lambda y, a, b, c, d: y + dt / 6 * (a + 2 * b + 2 * c + d), y, k1, k2, k3, k4
            ), None

        return jax.lax.scan(step, p, None, length=n_steps)[0]

    return run


def autodiff_rk4(wl, n_steps, t_end, pullback=False):
    """`gf_batched.rk4_scan`'s scan: `vmap` of a per-seed RK4 over −∇L by reverse mode
    (`jax.grad(Problem.value)`), or by `Problem.value_and_grad` with `pullback`."""
    problem, _ = gb.grad_fn(wl)
    if pullback:
        rhs = lambda s, y: jax.tree.map(jnp.negative, problem.value_and_grad(y)[1])
    else:
        rhs = gb.scan_rhs(wl)
    dt = t_end / n_steps

    return jax.vmap(gb.rk4_one(rhs, dt, n_steps))


SCANS = {
    "hand-rk4": hand_rk4,
    "autodiff-rk4": autodiff_rk4,
    "pullback-rk4": lambda wl, n, t: autodiff_rk4(wl, n, t, pullback=True),
}


def timed(compiled, p0):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(p0))
    return time.perf_counter() - t0


def point(wl, seeds, reps, log):
    """Interleaved repetitions of the four rows at one (workload, seeds)."""
    auto_wl = {**wl, "model": AutodiffModel(wl["model"])}
    p0 = gb.params0(wl, seeds)
    check_hand_gradient(wl, p0)
    runs, scans = [], None
    for rep in range(reps):
        us = {}
        for label, w in (("dynsim", wl), ("dynsim-autodiff", auto_wl)):
            res, wall, evals, _, _ = gb.run_sim(w, seeds, True, n_save=1)
            us[label] = 1e6 * wall / evals
            if label == "dynsim" and scans is None:
                t_end = float(np.median(res.t_final))
                n_steps = max(1, int(round(evals / seeds / 4)))
                scans = {
                    name: jax.jit(make(wl, n_steps, t_end)).lower(p0).compile()
                    for name, make in SCANS.items()
                }
                steps = dict(evals_per_seed=evals / seeds, rk4_steps=n_steps, t_end=t_end)
        for name, fn in scans.items():
            us[name] = 1e6 * timed(fn, p0) / (seeds * 4 * steps["rk4_steps"])
        runs.append(us)
        log(f"  {wl['name']} S={seeds} rep {rep}: " + ", ".join(f"{k} {v:.3f}" for k, v in us.items()))
    best = {k: min(r[k] for r in runs) for k in runs[0]}
    return dict(
        workload=wl["name"],
        seeds=seeds,
        **steps,
        us_per_eval=runs,
        best_us_per_eval=best,
        ratio=best["dynsim"] / best["hand-rk4"],
        ratio_autodiff=best["dynsim-autodiff"] / best["hand-rk4"],
    )


def table(points):
    head = (
        "| workload | seeds | dynsim | dynsim-autodiff | hand-rk4 | autodiff-rk4 "
        "| pullback-rk4 | dynsim ÷ hand | autodiff ÷ hand |"
    )
    lines = [head, "|" + "---|" * 9]
    for p in points:
        b = p["best_us_per_eval"]
        lines.append(
            f"| {p['workload']} | {p['seeds']} | {b['dynsim']:.3f} | {b['dynsim-autodiff']:.3f} "
            f"| {b['hand-rk4']:.3f} | {b['autodiff-rk4']:.3f} | {b.get('pullback-rk4', np.nan):.3f} "
            f"| {p['ratio']:.2f} | {p['ratio_autodiff']:.2f} |"
        )
    return "\n".join(lines)


def commit():
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
            cwd=os.path.dirname(__file__), check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", default="W1,W2,W3")
    ap.add_argument("--seeds", default="1024,8192")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--w3-max-steps", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="64 seeds, 1 repetition")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    seeds = [64] if args.quick else [int(s) for s in args.seeds.split(",")]
    reps = 1 if args.quick else args.reps
    wls = gb.workloads(args.workloads.split(","), alphas=(0.1,))
    for wl in wls:
        if wl["name"] == "W3":
            wl["flow"] = {**wl["flow"], "max_steps": args.w3_max_steps}
    now = datetime.datetime.now(datetime.UTC)
    out = args.out or os.path.join(gb.RESULTS, f"hand_gradient_{now:%Y%m%d-%H%M}.json")
    record = dict(
        machine=gb.machine(),
        date=now.isoformat(timespec="seconds"),
        commit=commit(),
        jax=jax.__version__,
        equinox=eqx.__version__,
        reps=reps,
        w3_max_steps=args.w3_max_steps,
        points=[],
    )
    log = lambda s: print(s, flush=True)
    for S in seeds:
        for wl in wls:
            record["points"].append(point(wl, S, reps, log))
            with open(out, "w") as f:
                json.dump(record, f, indent=1)
    print(table(record["points"]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
