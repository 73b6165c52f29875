"""Batched gradient flow vs. baselines, per gradient evaluation.

    python benchmarks/gf_batched.py                      # W1 W2 W3 at 1024 seeds
    python benchmarks/gf_batched.py --quick              # small, for a smoke test
    python benchmarks/gf_batched.py --workloads W1 --seeds 1024
    python benchmarks/gf_batched.py --workloads W2 --alphas 1,10 --x64   # stiff: + Kvaerno5

Workloads (float32, or float64 with --x64; squared loss ½‖r‖²):

- W1: LinearNet(50, [100]) scalar output, regression(n=20, d=50), Gaussian(0.1),
  stop at L < 1e-8 (t1 = 1e4).
- W2: DiagonalNet(100) on sparse_regression(n=40, d=100, k=5), init α·exp(0.1·z) per
  seed (β₀ = 0), α ∈ {1e-3, 1e-1, 1, 10} (`--alphas`), stop at L < 1e-10 (t1 = 1e6,
  log-time for α = 1e-3). α ≥ 1 is stiff: explicit solvers stall above that loss (∝ rtol²)
  and end at max_steps = 1e5; with --x64 a `kvaerno5` row shows the implicit solver.
- W3: TwoLayerNet(20, 50, relu, bias) student, teacher TwoLayerNet(20, 4), n = 100,
  Gaussian(1.0), integrated to t1 = 10 with at most 10⁴ steps (ReLU kinks make adaptive
  steps chatter).

Methods (rows), all timed after compilation, `block_until_ready`d:

- `batched`: `GradientFlow()` (one adaptive Tsit5 loop over the batch) via `simulate`,
  saving its default 65 summaries (loss, gradient norm: one loss-and-gradient evaluation
  each, NOT counted in `evals`).
- `batched-final`: the same with `n_save=1` (only the final state), like the scan.
- `vmap-diffrax`: `GradientFlow(batched=False)` (vmap of per-seed `diffeqsolve`), on at
  most `--vmap-seeds` seeds.
- `rk4-scan`: hand-written `jit(vmap(lax.scan))` fixed-step RK4 with the same number of
  gradient evaluations per seed as the adaptive run (no saving, no stopping).
- `tsit5-scan`: the same with fixed-step Tsit5 (diffrax's tableau, FSAL): the adaptive
  loop's method without error control, step control, saving or stopping.
- `scipy`: `solve_ivp(RK45)` per seed, same tolerances and stopping event, to the
  batched run's median stop time, on `--scipy-seeds` seeds; the wall time is
  extrapolated linearly to all seeds.
- `kvaerno5` (stiff workloads, --x64 only): `GradientFlow(solver=Kvaerno5())`, `vmap`
  of per-seed implicit `diffeqsolve`, on at most `--implicit-seeds` seeds; its
  evaluations (Newton iterations, Jacobians) are not counted: compare wall time and the
  final loss.
- `torchdiffeq`: dopri5 with the batch as one ODE, the model re-written in torch and
  checked against jax's gradient at θ₀, same tolerances, to the same time, at most the
  workload's max_steps; only if `import torchdiffeq` works (otherwise a skipped row).

`L final`: the median over seeds of the training loss where each method stopped.

Gradient evaluations ("evals"): Tsit5 = 6 per step attempt (FSAL) per seed, counted per
seed from `num_steps` (finished seeds that still ride along in the batched loop are NOT
counted: `us/eval` is charged only for useful work; `evals_exec` counts what the batched
loop actually computed); RK4 = 4 per step; scipy/torchdiffeq = their `nfev`.
FLOPs per gradient evaluation are analytic (multiply-adds × 2 of the forward and
backward matrix products; elementwise work ignored). Peak memory: `ru_maxrss` of the
process after the row (monotone: a row can only show the running maximum) and, for the
dynsim rows, `XLA MB`: arguments + outputs + temporaries of the compiled chunk program
(`Compiled.memory_analysis()`), the footprint that must scale linearly with seeds.
The JSON file is rewritten after every (workload, seeds) point.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import dynsim  # noqa: E402
from dynsim._problem import Problem  # noqa: E402
from dynsim.losses import get_loss  # noqa: E402
from dynsim.models import DiagonalNet, LinearNet, TwoLayerNet  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def _shaped_constant(alpha, d):
    def init(key):
        shape = jnp.exp(0.1 * jax.random.normal(key, (d,)))
        return {"u": alpha * shape, "v": alpha * shape}

    return dynsim.init.Custom(init)


def workloads(names, alphas=(1e-3, 1e-1, 1.0, 10.0)):
    key = jax.random.key(0)
    out = []
    if "W1" in names:
        n, d, h = 20, 50, 100
        out.append(
            dict(
                name="W1",
                model=LinearNet(d, [h]),
                data=dynsim.data.regression(key, n, d),
                init=dynsim.init.Gaussian(0.1),
                flow=dict(t1=1e4, stop_loss=1e-8),
                flops=2 * n * (2 * d * h + 3 * h),
            )
        )
    if "W2" in names:
        n, d = 40, 100
        data = dynsim.data.sparse_regression(key, n, d, 5)
        for alpha in alphas:
            out.append(
                dict(
                    name=f"W2(a={alpha:g})",
                    model=DiagonalNet(d),
                    data=data,
                    # Per-seed random init shape around α·1 (β₀ = 0): with the deterministic
                    # Constant(α) every seed is identical and XLA hoists the repeated
                    # blocks out of the loop, which would make the timing meaningless.
                    init=_shaped_constant(alpha, d),
                    # α ≥ 1 is stiff (Hessian eigenvalues ~ 8α²λ(XXᵀ)): explicit solvers
                    # stall at a loss ∝ rtol² above the target and end at max_steps =
                    # 1e5 (MAX_STEPS); the `kvaerno5` row (--x64) reaches it.
                    flow=dict(t1=1e6, stop_loss=1e-10, log_time=alpha < 1e-2),
                    stiff=alpha >= 1.0,
                    flops=2 * n * 2 * d,
                )
            )
    if "W3" in names:
        n, d, m = 100, 20, 50
        teacher = TwoLayerNet(d, 4)
        out.append(
            dict(
                name="W3",
                model=TwoLayerNet(d, m),
                data=dynsim.data.teacher_student(key, n, teacher),
                init=dynsim.init.Gaussian(1.0),
                # ReLU kinks make the adaptive step chatter (step counts to t = 50:
                # benchmarks/HISTORY.md, W3): a horizon of t = 10 and at most 10⁴ steps
                # keep the sweep affordable.
                flow=dict(t1=10.0, max_steps=10_000),
                flops=2 * n * (2 * d * m + 3 * m),
            )
        )
    return out


def maxrss_mb():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if platform.system() == "Linux" else r / 2**20


def row(wl, method, seeds, wall, compile_s, evals, steps=None, evals_exec=None, note="", xla_mb=None,
        loss=None):
    us = 1e6 * wall / evals if evals else float("nan")
    return dict(
        workload=wl["name"],
        method=method,
        seeds=int(seeds),
        wall_s=float(wall),
        compile_s=float(compile_s),
        steps_mean=None if steps is None else float(steps),
        evals=int(evals),
        evals_exec=None if evals_exec is None else int(evals_exec),
        us_per_eval=float(us),
        gflops=float(wl["flops"] * evals / wall / 1e9) if evals else float("nan"),
        maxrss_mb=float(maxrss_mb()),
        xla_mb=None if xla_mb is None else float(xla_mb),
        loss_final=None if loss is None else float(np.median(np.asarray(loss))),
        note=note,
    )


def xla_memory_mb():
    """Peak memory XLA planned for the program `simulate` compiled last (arguments +
    outputs + temporaries, MiB): the device-memory footprint of one chunk, exact and
    per configuration (unlike `ru_maxrss`, which only grows over the process)."""
    from dynsim import _simulate

    if not _simulate._COMPILED:
        return None
    m = list(_simulate._COMPILED.values())[-1].memory_analysis()
    if m is None:
        return None
    total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
    return (total - m.alias_size_in_bytes) / 2**20


def run_sim(wl, seeds, batched, chunk=None, **flow_kw):
    flow = dynsim.GradientFlow(batched=batched, **{**wl["flow"], **flow_kw})
    res = dynsim.simulate(
        wl["model"], wl["data"], init=wl["init"], dynamics=flow, seeds=seeds,
        key=jax.random.key(1), chunk_size=chunk,
    )
    xla_mb = xla_memory_mb() if res.compile_time > 0 else None  # cache hit: not the last compiled
    wall = res.wall_time - res.compile_time
    steps = np.asarray(res.num_steps, dtype=np.int64)
    evals = int(6 * steps.sum() + seeds)  # + the FSAL evaluation at t = 0
    n_chunk = seeds if chunk is None else chunk
    exec_ = int(sum(6 * steps[i : i + n_chunk].max() * n_chunk for i in range(0, seeds, n_chunk)))
    return res, wall, evals, exec_, xla_mb


def final_losses(wl, params):
    """Per-seed training loss of a batch of parameters (leading seed axis)."""
    problem, _ = grad_fn(wl)
    return np.asarray(jax.jit(jax.vmap(problem.value))(params))


def grad_fn(wl):
    problem = Problem(wl["model"], get_loss("squared"), wl["data"].X, wl["data"].y)
    return problem, (lambda p: jax.tree.map(jnp.negative, jax.grad(problem.value)(p)))


def params0(wl, seeds):
    keys = jax.random.split(jax.random.key(1), seeds)
    data = dynsim.data.Dataset(wl["data"].X, wl["data"].y)
    return jax.vmap(lambda k: wl["init"](wl["model"], data, k))(keys)


def time_batched(one, p0):
    """(run s, compile s, output) of `jit(vmap(one))` on the batch p0, compiled ahead of
    time."""
    t0 = time.perf_counter()
    fn = jax.jit(jax.vmap(one)).lower(p0).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(p0))
    return time.perf_counter() - t0, compile_s, out


def scan_rhs(wl):
    """The scans' vector field at (s, θ): −∇L(θ), or −e^s ∇L(θ) in log-time
    s = log(1 + t) where the workload integrates in log-time (as `GradientFlow`)."""
    _, f = grad_fn(wl)
    log_time = wl["flow"].get("log_time", False)

    def rhs(s, y):
        g = f(y)
        return jax.tree.map(lambda x: jnp.exp(s) * x, g) if log_time else g

    return rhs


def rk4_one(rhs, dt, n_steps):
    """One seed's fixed-step RK4 `lax.scan` of dy/ds = rhs(s, y): n_steps steps of dt."""

    def one(p):
        def step(y, i):
            s = i * dt
            ax = lambda a, b, c: jax.tree.map(lambda u, v: u + c * v, a, b)
            k1 = rhs(s, y)
            k2 = rhs(s + dt / 2, ax(y, k1, dt / 2))
            k3 = rhs(s + dt / 2, ax(y, k2, dt / 2))
            k4 = rhs(s + dt, ax(y, k3, dt))
            return jax.tree.map(
                lambda y, a, b, c, d: y + dt / 6 * (a + 2 * b + 2 * c + d), y, k1, k2, k3, k4
            ), None

        return jax.lax.scan(step, p, jnp.arange(n_steps))[0]

    return one


def rk4_scan(wl, seeds, n_steps, t_end, p0=None):
    """Hand-written `jit(vmap(lax.scan))` fixed-step RK4 from `p0` (default: `params0`),
    in log-time τ = log(1 + t) (dθ/dτ = −e^τ ∇L, `t_end` then in τ) where the workload
    integrates in log-time. Returns (wall s, compile s, final params)."""
    rhs = scan_rhs(wl)
    dt = t_end / n_steps

    one = rk4_one(rhs, dt, n_steps)

    return time_batched(one, params0(wl, seeds) if p0 is None else p0)


def tsit5_scan(wl, seeds, n_steps, t_end, p0=None):
    """Hand-written `jit(vmap(lax.scan))` fixed-step Tsit5 (FSAL, 6 evaluations per
    step, diffrax's tableau): the same method as the adaptive loop without error control,
    step-size control, saving or stopping, from `p0` (default: `params0`). Returns
    (wall s, compile s, final params)."""
    import diffrax

    rhs = scan_rhs(wl)
    tab = diffrax.Tsit5.tableau
    a = [[float(c) for c in row] for row in tab.a_lower]
    c = [float(x) for x in tab.c]
    b = [float(x) for x in tab.b_sol]
    dt = t_end / n_steps

    def lin(y, coeffs, ks):
        return jax.tree.map(
            lambda y0, *kl: y0 + dt * sum(cc * k for cc, k in zip(coeffs, kl) if cc != 0.0),
            y, *ks,
        )

    def one(p):
        def step(carry, i):
            y, f0 = carry
            s = i * dt
            ks = [f0]
            for j in range(6):
                ks.append(rhs(s + c[j] * dt, lin(y, a[j], ks)))
            return (lin(y, b, ks[:6]), ks[6]), None

        return jax.lax.scan(step, (p, rhs(0.0, p)), jnp.arange(n_steps))[0][0]

    return time_batched(one, params0(wl, seeds) if p0 is None else p0)


def scipy_loop(wl, seeds, total_seeds, t_end):
    from scipy.integrate import solve_ivp

    problem, _ = grad_fn(wl)
    p0 = params0(wl, seeds)
    flat0, unravel = jax.flatten_util.ravel_pytree(jax.tree.map(lambda x: x[0], p0))
    log_time = wl["flow"].get("log_time", False)

    @jax.jit
    def vg(s, x):
        v, g = jax.value_and_grad(lambda x: problem.value(unravel(x)))(x)
        rate = jnp.exp(s) if log_time else 1.0
        return v, -rate * g

    s1 = t_end  # the batched run's median stop time (already in log-time if used)
    stop = wl["flow"].get("stop_loss")
    vg(0.0, flat0)  # compile
    nfev, wall, losses = 0, 0.0, []
    for i in range(seeds):
        x0 = np.asarray(jax.flatten_util.ravel_pytree(jax.tree.map(lambda x: x[i], p0))[0])
        fun = lambda s, x: np.asarray(vg(s, x)[1])
        events = None
        if stop is not None:
            ev = lambda s, x: float(vg(s, x)[0]) - stop
            ev.terminal = True
            events = [ev]
        t0 = time.perf_counter()
        sol = solve_ivp(fun, (0.0, s1), x0, method="RK45", rtol=1e-6, atol=1e-9, events=events)
        wall += time.perf_counter() - t0
        nfev += sol.nfev
        losses.append(float(vg(s1, sol.y[:, -1])[0]))
    return wall, nfev, losses


def _torch_loss(wl, X, y):
    """The workload's training loss in torch, as a function of the list of parameter
    leaves (jax.tree.leaves order, each with a leading seed axis S), summed over seeds:
    gradients w.r.t. each seed's parameters are then that seed's own gradients."""
    import torch

    name = wl["name"]
    if name.startswith("W1"):  # LinearNet(d, [h]): leaves W0 (S, h, d), W1 (S, 1, h)

        def loss(A, B):
            pred = torch.einsum("nd,shd->snh", X, A) @ B.transpose(1, 2)  # (S, n, 1)
            return 0.5 * ((pred[..., 0] - y) ** 2).sum()

    elif name.startswith("W2"):  # DiagonalNet uu-vv: leaves u, v (S, d)

        def loss(u, v):
            return 0.5 * (((u * u - v * v) @ X.T - y) ** 2).sum()

    elif name.startswith("W3"):  # TwoLayerNet relu, bias, NTK scaling: leaves a, b, w
        model = wl["model"]
        assert model.activation == "relu" and model.bias and not model.output_bias
        scale = float(model.scale)

        def loss(a, b, w):
            z = torch.einsum("smd,nd->smn", w, X) + b[..., None]
            pred = scale * torch.einsum("sm,smn->sn", a, torch.relu(z))
            return 0.5 * ((pred - y) ** 2).sum()

    else:
        return None
    return loss


def torchdiffeq_rows(wl, seeds, t_end, max_steps):
    """torchdiffeq `odeint(dopri5)` with the whole batch as one ODE (shared steps, one
    error norm over all seeds: what a PyTorch user would write), the model re-written in
    torch (`_torch_loss`, checked against jax's gradient first), at most `max_steps`
    steps. Returns (wall s, gradient evaluations, note, final losses or None on failure)
    or a skip reason."""
    try:
        import torch
        import torchdiffeq
    except ImportError:
        return "skipped: torch/torchdiffeq not installed"
    torch.set_num_threads(os.cpu_count() or 1)
    p0 = params0(wl, seeds)
    leaves = [np.asarray(x) for x in jax.tree.leaves(p0)]
    dtype = torch.float64 if leaves[0].dtype == np.float64 else torch.float32
    X = torch.tensor(np.asarray(wl["data"].X), dtype=dtype)
    y = torch.tensor(np.asarray(wl["data"].y), dtype=dtype)
    loss = _torch_loss(wl, X, y)
    if loss is None:
        return f"skipped: no torch model for {wl['name']}"
    S = leaves[0].shape[0]
    shapes = [x.shape[1:] for x in leaves]
    sizes = [int(np.prod(sh)) for sh in shapes]
    log_time = wl["flow"].get("log_time", False)
    nfev = [0]

    def unflatten(z):  # (S, |θ|) -> the parameter leaves, each (S, ...)
        return [q.reshape((S,) + tuple(sh)) for q, sh in zip(torch.split(z, sizes, dim=1), shapes)]

    def grads(z):
        with torch.enable_grad():
            ps = [p.detach().requires_grad_() for p in unflatten(z)]
            gs = torch.autograd.grad(loss(*ps), ps)
        return torch.cat([g.reshape(S, -1) for g in gs], 1)

    def f(t, z):
        nfev[0] += 1
        g = grads(z)
        return -(torch.exp(t) * g if log_time else g)

    z0 = torch.cat([torch.tensor(x, dtype=dtype).reshape(S, -1) for x in leaves], 1)
    # The torch model must be the workload's model: its gradient equals jax's at θ₀.
    problem, _ = grad_fn(wl)
    g_jax = jax.vmap(jax.grad(problem.value))(p0)
    g_jax = np.concatenate([np.asarray(g).reshape(S, -1) for g in jax.tree.leaves(g_jax)], 1)
    g_t = grads(z0).numpy()
    err = np.max(np.abs(g_t - g_jax)) / np.max(np.abs(g_jax))
    assert err < (1e-4 if dtype == torch.float32 else 1e-10), f"torch model differs: {err:.2e}"
    nfev[0] = 0
    ts = torch.tensor([0.0, t_end], dtype=dtype)
    note = f"dopri5, batch as one ODE, to t={t_end:.3g}"
    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            zs = torchdiffeq.odeint(f, z0, ts, method="dopri5", rtol=1e-6, atol=1e-9,
                                    options=dict(max_num_steps=max_steps))
    except (AssertionError, RuntimeError) as e:  # max_num_steps exceeded, dt underflow
        note = f"dopri5, batch as one ODE, failed: {str(e)[:60]!r} (max_num_steps={max_steps})"
        return time.perf_counter() - t0, nfev[0] * S, note, None
    wall = time.perf_counter() - t0
    final = jax.tree.unflatten(jax.tree.structure(p0), [jnp.asarray(p.numpy()) for p in unflatten(zs[-1])])
    return wall, nfev[0] * S, note, final_losses(wl, final)


def bench(wl, seeds, args):
    rows = []
    bs = {} if args.block_size is None else {"block_size": None if args.block_size == "all" else args.block_size}
    res, wall, evals, exec_, xla_mb = run_sim(wl, seeds, True, **bs)
    steps = float(np.mean(res.num_steps))
    status = np.bincount(np.asarray(res.status), minlength=5).tolist()
    rows.append(row(wl, "batched", seeds, wall, res.compile_time, evals, steps, exec_,
                    note=f"{res.ts.shape[-1]} summaries saved; status counts {status}",
                    xla_mb=xla_mb, loss=res.loss[:, -1]))
    # The same solve saving only the final state: what the scan baseline does (the saved
    # summaries cost a loss-and-gradient evaluation each, not counted in `evals`).
    rf, wf, ef, xf, mf = run_sim(wl, seeds, True, n_save=1, **bs)
    rows.append(row(wl, "batched-final", seeds, wf, rf.compile_time, ef, float(np.mean(rf.num_steps)),
                    xf, note="n_save=1", xla_mb=mf, loss=rf.loss[:, -1]))
    if args.vmap_seeds > 0:
        sv = min(seeds, args.vmap_seeds)
        r2, w2, e2, _, m2 = run_sim(wl, sv, False)
        rows.append(row(wl, "vmap-diffrax", sv, w2, r2.compile_time, e2, float(np.mean(r2.num_steps)),
                        note=f"{sv} seeds", xla_mb=m2, loss=r2.loss[:, -1]))
    if wl.get("stiff") and args.implicit_seeds > 0:
        if not jax.config.jax_enable_x64:
            rows.append(dict(workload=wl["name"], method="kvaerno5", seeds=seeds,
                             note="skipped: implicit solvers need --x64 (README: known limitations)"))
        else:
            import diffrax

            si = min(seeds, args.implicit_seeds)
            ri, wi, _, _, mi = run_sim(wl, si, False, solver=diffrax.Kvaerno5())
            st = np.bincount(np.asarray(ri.status), minlength=5).tolist()
            rows.append(row(wl, "kvaerno5", si, wi, ri.compile_time, 0, float(np.mean(ri.num_steps)),
                            note=f"implicit, vmap of diffeqsolve, {si} seeds; status counts {st}; "
                                 "evaluations not counted (Jacobian + Newton)",
                            xla_mb=mi, loss=ri.loss[:, -1]))
    n_rk4 = max(1, int(round((evals / seeds) / 4)))
    t_end = float(np.median(res.t_final))
    if wl["flow"].get("log_time"):
        t_end = float(np.log1p(t_end))
    w3, c3, o3 = rk4_scan(wl, seeds, n_rk4, t_end)
    rows.append(row(wl, "rk4-scan", seeds, w3, c3, 4 * n_rk4 * seeds, n_rk4,
                    note="same evals/seed as batched", loss=final_losses(wl, o3)))
    n_ts = max(1, int(round((evals / seeds) / 6)))
    w5, c5, o5 = tsit5_scan(wl, seeds, n_ts, t_end)
    rows.append(row(wl, "tsit5-scan", seeds, w5, c5, 6 * n_ts * seeds + seeds, n_ts,
                    note="fixed-step Tsit5, same evals/seed as batched", loss=final_losses(wl, o5)))
    if args.scipy_seeds > 0:
        ss = min(seeds, args.scipy_seeds)
        w4, nfev, l4 = scipy_loop(wl, ss, seeds, t_end)
        rows.append(row(wl, "scipy", seeds, w4 * seeds / ss, 0.0, nfev * seeds // ss,
                        note=f"RK45 on {ss} seeds, extrapolated x{seeds / ss:g}", loss=l4))
    td = (torchdiffeq_rows(wl, seeds, t_end, wl["flow"].get("max_steps", 100_000))
          if seeds <= args.torch_max_seeds
          else f"skipped: more than --torch-max-seeds={args.torch_max_seeds} seeds")
    if isinstance(td, str):
        rows.append(dict(workload=wl["name"], method="torchdiffeq", seeds=seeds, note=td))
    else:
        rows.append(row(wl, "torchdiffeq", seeds, td[0], 0.0, td[1], note=td[2], loss=td[3]))
    return rows


def fmt(rows):
    head = f"{'workload':<12} {'method':<13} {'seeds':>6} {'wall s':>8} {'compile s':>9} {'steps':>8} {'evals':>11} {'us/eval':>8} {'GFLOP/s':>8} {'maxrss MB':>9} {'XLA MB':>7} {'L final':>8}  note"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "wall_s" not in r:
            lines.append(f"{r['workload']:<12} {r['method']:<13} {r['seeds']:>6}  {r['note']}")
            continue
        steps = "" if r["steps_mean"] is None else f"{r['steps_mean']:.0f}"
        lines.append(
            f"{r['workload']:<12} {r['method']:<13} {r['seeds']:>6} {r['wall_s']:>8.2f} {r['compile_s']:>9.2f} "
            f"{steps:>8} {r['evals']:>11} {r['us_per_eval']:>8.2f} {r['gflops']:>8.2f} {r['maxrss_mb']:>9.0f} "
            f"{'' if r.get('xla_mb') is None else format(r['xla_mb'], '.1f'):>7} "
            f"{'' if r.get('loss_final') is None else format(r['loss_final'], '.1e'):>8}  {r['note']}"
        )
    return "\n".join(lines)


def machine():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name")), "?")
    except OSError:
        model = platform.processor()
    return dict(cpu=model, cores=os.cpu_count(), jax=jax.__version__, backend=jax.default_backend(),
                devices=[str(d) for d in jax.devices()])


def _block_size(text):
    """--block-size: an int, "auto", or "all" (block_size=None: all seeds in one block)."""
    if text in ("auto", "all"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number of slots, "auto" or "all", got {text!r}') from None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", default="W1,W2,W3")
    ap.add_argument("--seeds", default="1024", help="comma-separated, e.g. 16,256,1024,8192")
    ap.add_argument("--quick", action="store_true", help="16 seeds, few baseline seeds")
    ap.add_argument("--vmap-seeds", type=int, default=128)
    ap.add_argument("--scipy-seeds", type=int, default=8)
    ap.add_argument("--torch-max-seeds", type=int, default=1024)
    ap.add_argument("--implicit-seeds", type=int, default=1024,
                    help="seeds for the Kvaerno5 row on stiff workloads (needs --x64)")
    ap.add_argument("--alphas", default="1e-3,1e-1,1,10", help="W2 init scales")
    ap.add_argument("--x64", action="store_true", help="float64 everywhere (default float32)")
    ap.add_argument("--block-size", type=_block_size, default=None,
                    help='GradientFlow block_size for the batched rows: a number of slots, '
                         '"auto" or "all" (every seed at once); default: GradientFlow\'s ("auto")')
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    seeds_list = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        seeds_list, args.vmap_seeds, args.scipy_seeds = [16], 16, 2
    rows = []
    info = machine()
    os.makedirs(RESULTS, exist_ok=True)
    out = args.out or os.path.join(RESULTS, f"gf_batched_{time.strftime('%Y%m%d-%H%M%S')}.json")

    def write():  # after every (workload, seeds) point: an interrupted sweep keeps its rows
        tmp = out + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(dict(machine=info, args=vars(args), rows=rows), fh, indent=1)
        os.replace(tmp, out)

    for wl in workloads(args.workloads.split(","), [float(a) for a in args.alphas.split(",")]):
        for s in seeds_list:
            new = bench(wl, s, args)
            print(fmt(new).split("\n", 2)[-1], flush=True)
            rows.extend(new)
            write()
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores, jax {info['jax']} ({info['backend']})")
    print(fmt(rows))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
