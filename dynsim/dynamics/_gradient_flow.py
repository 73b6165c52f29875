"""Gradient flow θ̇ = −∇L(θ) as a diffrax ODE: one seed with `diffrax.diffeqsolve`, a
batch in the loop of `dynsim.dynamics.batched`."""

from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_block_size, check_count, check_positive, check_ts
from .._custom_types import BatchedKey, BatchedParams, Key, Params, RealScalarLike
from .._problem import Problem
from ._base import AbstractDynamics, blockwise, log_grid, pads_small_batches
from ._flow_helpers import SolverTime, initial_step, params_dtype, step_controller
from ._flow_solve import solve_seed
from ._fused_tsit5 import FusedTsit5
from ._trajectories import Trajectories
from .batched import auto_slots, auto_vmap_block, solve


class GradientFlow(AbstractDynamics):
    r"""Gradient flow dθ/dt = −∇L(θ), integrated by diffrax from t = 0 to `t1`.

    **Arguments:**

    - `t1`: final time.
    - `ts`: save times (increasing, within [0, t1]); default `n_save` points: 0 and a
      geometric grid from min(10⁻², t1/10³) to `t1`.
    - `solver`: any diffrax ODE solver (default `Tsit5()`); adaptive solvers use a PID
      controller with `rtol`, `atol` (`pcoeff=0.3, icoeff=0.4`); `dt0` for fixed-step solvers.
      Per seed (`run`, the `vmap` path), `Tsit5()` runs as `dynsim.dynamics.FusedTsit5`:
      the same method and step control with fused stage sums, equal to diffrax's
      implementation up to rounding and faster (`benchmarks/vmap_solver.py`); a `Tsit5`
      given an explicit `scan_kind` runs as diffrax's own (`Tsit5(scan_kind="bounded")`
      is what diffrax makes of `Tsit5()` under `RecursiveCheckpointAdjoint`).
      Stiff flows (e.g. diagonal nets at α ≳ 1, Hessian eigenvalues ~ 8α²λ(XXᵀ)): an
      explicit solver's loss then stalls at a level ∝ rtol² (it ends at `MAX_STEPS`); use
      an implicit solver such as `diffrax.Kvaerno5()` in float64 (implicit solvers do not
      converge on such flows in float32).
      In float32, tolerances below about rtol = 1e-7 do not make the solution more
      accurate: the rounding of more steps outweighs it (error of the final parameters
      against float64 references, `benchmarks/equal_accuracy.py`; the figures are in
      `benchmarks/README.md`). Use float64 for tighter results.
    - `max_steps`: solver step budget per trajectory.
    - `stop_loss`, `stop_grad_norm`: stop a trajectory (status `CONVERGED`) once
      L(θ) < `stop_loss` or ‖∇L(θ)‖ < `stop_grad_norm` (checked after every step).
    - `divergence`: stop with status `DIVERGED` once max|θ_i| exceeds it.
    - `log_time`: integrate in τ = log(1 + t), dθ/dτ = −(1 + t)∇L(θ), for horizons up to
      t ~ 10¹² (tolerances then apply per unit of log-time).
    - `adjoint`: diffrax adjoint for differentiating through the solve (default
      `RecursiveCheckpointAdjoint()`: exact reverse mode with bounded memory; use
      `diffrax.ForwardMode()` for `jax.jacfwd`). `diffrax.BacksolveAdjoint` does not
      apply: it supports neither the stop event nor the `SaveAt(subs=...)` that `run`
      uses (diffrax raises `NotImplementedError`).
    - `batched`: how `run_batch` (used by `simulate`) solves many seeds. `True`
      (default): one adaptive Tsit5 loop over the whole batch with per-seed step sizes,
      error control, saving and stopping (`dynsim.dynamics.batched`), faster than
      `vmap` of `diffeqsolve` (`benchmarks/README.md`) and with the same results up to
      the tolerances; used when `solver` is `Tsit5` and `adjoint` is a
      `RecursiveCheckpointAdjoint` (reverse mode works; forward mode does not), otherwise
      `run_batch` falls back to `vmap(run)`. `False`: always `vmap(run)` (per-seed
      `diffeqsolve`), needed for other adjoints (`ForwardMode`).
    - `block_size`: how many seeds are integrated at once. Batched Tsit5 loop: the loop
      holds `block_size` slots; when a slot's seed stops (end time, event, divergence,
      `max_steps`) its result is written out and the slot takes the next waiting seed,
      so seeds with very different step counts do not hold each other back (the batch
      stays full until the queue runs dry). `vmap` path: blocks of `block_size` seeds
      one after another (`lax.map`, `dynsim.dynamics._base.blockwise`), the last one
      padded. `"auto"` (default), by `jax.default_backend()`: on CPU
      `dynsim.dynamics.batched.auto_slots` — 128, 64 or 32 slots, the largest whose
      step working set (~16 arrays of slots × one seed's parameters) fits in 1 MiB, else
      128 (thresholds tuned by measurement: `benchmarks/HISTORY.md`), and 32 on the
      `vmap` path; on GPU/TPU `batched.ACCELERATOR_BLOCK` (4096) seeds on both paths
      (not yet measured on a device).
      `None`: all seeds at once. A batch larger than `block_size` runs in blocks of
      exactly that shape (the loop's slots; its initial and final quantities are
      computed in slot-sized blocks, the last one padded), so a seed's result is
      bitwise independent of `chunk_size` and of how many seeds run (XLA's kernels
      round differently for different batch shapes; `tests/test_reproducibility.py`).
      A batch smaller than one block is padded to a full block when `block_size` is a
      number (bitwise independence then holds for every chunking, at a whole block's
      arithmetic for a small run); with `"auto"` it runs as one block of its own size
      (never of one seed: two copies then), which keeps small runs cheap, and its
      results can differ from a larger run's at rounding level, which chaotic or very
      long trajectories (e.g. 10⁴ steps in float32) can amplify into different step
      counts. So can a different `block_size`.
    """

    t1: RealScalarLike = 100.0
    ts: Any = None
    n_save: int = eqx.field(static=True, default=65)
    solver: diffrax.AbstractSolver = diffrax.Tsit5()
    rtol: RealScalarLike = 1e-6
    atol: RealScalarLike = 1e-9
    dt0: RealScalarLike | None = None
    max_steps: int = eqx.field(static=True, default=100_000)
    stop_loss: RealScalarLike | None = None
    stop_grad_norm: RealScalarLike | None = None
    divergence: RealScalarLike = 1e8
    log_time: bool = eqx.field(static=True, default=False)
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint()
    batched: bool = eqx.field(static=True, default=True)
    block_size: int | str | None = eqx.field(static=True, default="auto")

    def __check_init__(self):
        check_block_size(self.block_size)
        check_positive("t1", self.t1)
        check_positive("rtol", self.rtol)
        check_positive("atol", self.atol)
        check_positive("dt0", self.dt0, allow_none=True)
        check_positive("stop_loss", self.stop_loss, allow_none=True)
        check_positive("stop_grad_norm", self.stop_grad_norm, allow_none=True)
        check_positive("divergence", self.divergence)
        check_count("max_steps", self.max_steps)
        check_count("n_save", self.n_save)
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise ValueError(f"solver: expected a diffrax solver; got {self.solver!r}")
        if self.ts is not None:
            ts = check_ts(self.ts)
            if isinstance(self.t1, (int, float)) and ts[-1] > self.t1 * (1 + 1e-12):
                raise ValueError(f"ts: save times must lie in [0, t1={self.t1}]; got max {ts[-1]}")
        adaptive = isinstance(self.solver, diffrax.AbstractAdaptiveSolver)
        if not adaptive and self.dt0 is None:
            raise ValueError(f"dt0: the fixed-step solver {type(self.solver).__name__} needs dt0")

    def save_times(self):
        if self.ts is not None:
            return jnp.asarray(self.ts)
        t1 = float(self.t1) if isinstance(self.t1, (int, float)) else None
        if t1 is None:  # traced t1: a grid relative to t1
            return self.t1 * jnp.asarray(log_grid(1.0, self.n_save, 1e-3))
        return jnp.asarray(log_grid(t1, self.n_save, min(1e-2, t1 / 1e3)))

    def _controller(self):
        return step_controller(self.solver, self.rtol, self.atol)

    def run_batch(
        self, problem: Problem, params0: BatchedParams, keys: BatchedKey
    ) -> Trajectories:
        """`run` for a batch of seeds; see the `batched` and `block_size` fields."""
        bs = self.block_size
        pad = pads_small_batches(bs)
        if self.batched and supports_batched(self):
            slots = auto_slots(params0) if bs == "auto" else bs

            def run_slots(problem, params0, keys):
                return run_batched(self, problem, params0, slots=slots)

            # blockwise with one block: only its padding of a batch of one to two, or of
            # fewer seeds than an explicit slot count to it
            n = jax.tree.leaves(params0)[0].shape[0]
            block = slots if pad and n < slots else None
            return blockwise(run_slots, block, problem, params0, keys, pad_small=pad)
        block = auto_vmap_block() if bs == "auto" else bs
        return blockwise(super().run_batch, block, problem, params0, keys, pad_small=pad)

    def run(self, problem: Problem, params0: Params, key: Key) -> Trajectories:
        del key
        ts = self.save_times().astype(params_dtype(params0))
        time = SolverTime(self.log_time)

        def vector_field(s, params, args):
            g = problem.value_and_grad(params)[1]
            rate = time.rate(s)
            return jax.tree.map(lambda x: -rate * x, g)

        term = diffrax.ODETerm(vector_field)
        s0, s1 = jnp.zeros((), ts.dtype), time.to_s(jnp.asarray(self.t1, ts.dtype))
        solver = per_seed_solver(self.solver)
        controller = self._controller()
        if isinstance(solver, diffrax.AbstractAdaptiveSolver):
            dt0 = initial_step(solver, controller, term, s0, s1, params0, self.dt0)
        else:
            dt0 = self.dt0
        return solve_seed(
            problem, params0, terms=term, solver=solver, controller=controller, dt0=dt0,
            t1=self.t1, ts=ts, time=time, divergence=self.divergence,
            stop_loss=self.stop_loss, stop_grad_norm=self.stop_grad_norm,
            max_steps=self.max_steps, adjoint=self.adjoint,
        )


def per_seed_solver(solver: diffrax.AbstractSolver) -> diffrax.AbstractSolver:
    """The solver `GradientFlow.run` hands to `diffeqsolve`: `FusedTsit5` for
    `diffrax.Tsit5()` (the same method and steps, computed with fused stage sums), any
    other solver as given. A `Tsit5` with an explicit `scan_kind` (a setting of
    diffrax's own stage loop) is kept: that is how to run diffrax's implementation
    (`scan_kind="bounded"`: what diffrax runs for `Tsit5()` under
    `RecursiveCheckpointAdjoint`, `"lax"` under `ForwardMode`)."""
    if type(solver) is diffrax.Tsit5 and solver.scan_kind is None:
        return FusedTsit5()
    return solver


def supports_batched(flow: GradientFlow) -> bool:
    """Whether `run_batched` reproduces `flow.run` (Tsit5, checkpointed adjoint)."""
    return type(flow.solver) in (diffrax.Tsit5, FusedTsit5) and isinstance(
        flow.adjoint, diffrax.RecursiveCheckpointAdjoint
    )


def run_batched(
    flow: GradientFlow,
    problem: Problem,
    params0: BatchedParams,
    slots: int | None = None,
    fused_error: bool | None = None,
) -> Trajectories:
    """`flow.run` for every seed of `params0` (leading seed axis S ≥ 2) in one loop:
    `dynsim.dynamics.batched.solve` given `flow`'s fields (`GradientFlow.run_batch`
    pads a batch of one to two through `blockwise`).

    `slots`: how many seeds are integrated at once (at least 2; `None`: all S); when a
    slot's seed stops (end time, event or `max_steps`), its final state is written out
    and the slot takes the next waiting seed. `fused_error`: the step's scaled error in
    one fused pass instead of materializing the error estimate for
    `PIDController.adapt_step_size` (the same decisions); `None`: chosen by size.
    """
    return solve(
        problem,
        params0,
        ts=flow.save_times(),
        t1=flow.t1,
        controller=flow._controller(),
        dt0=flow.dt0,
        log_time=flow.log_time,
        divergence=flow.divergence,
        stop_loss=flow.stop_loss,
        stop_grad_norm=flow.stop_grad_norm,
        max_steps=flow.max_steps,
        checkpoints=getattr(flow.adjoint, "checkpoints", None),
        slots=slots,
        fused_error=fused_error,
    )
