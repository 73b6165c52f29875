r"""Gradient flow for a whole batch of seeds in one adaptive stepping loop.

`GradientFlow.run` solves one seed with `diffrax.diffeqsolve`; `vmap` of it turns the
solver's `while_loop` into a batched loop whose every step pays for selects over the
whole solver state. `solve` instead runs ONE loop over the batch and treats the seed
axis explicitly: each seed has its own time, step size, PID controller state,
accept/reject decision, save index and status, while the vector field is evaluated for
all seeds at once (`vmap` of the per-seed gradient: batched matrix products). The loop
works on a fixed number of slots (`_slots.SlotPool`), refilled from the queue of
waiting seeds as seeds stop.

Semantics follow diffrax (`diffeqsolve` with `Tsit5`, `PIDController`, `SaveAt(ts=...)`,
a boolean `Event` and no root finder):

- the initial step size is `initial_step` (Hairer's heuristic, as for the per-seed
  path);
- a step of Tsit5 (FSAL: 6 new gradient evaluations per step attempt, `_stepper`);
- the error control is `PIDController.adapt_step_size` itself, applied per seed: error
  norm RMS(err / (atol + rtol·max(|y0|, |y1|))), accept iff < 1, same factor limits.
  For large states the scaled error is computed in one fused pass (`_error_ratio`, NaN
  cases delegated to diffrax's own rule) and handed to the controller, which then
  decides the step;
- `tnext` is clipped to `t1` exactly as diffrax does (within 100 ULP);
- save times are filled by Tsit5's dense output over the accepted step (`_saving`);
- the stop condition is checked on the state after every step attempt (the event
  fires on the step's end, `t_final` = that time); `max_steps` counts attempts.

The loss at the end of a step is obtained from the FSAL stage (`value_and_grad`), so
checking `stop_loss` costs no extra gradient evaluation.

The loops are `equinox.internal.while_loop(kind="checkpointed")`, as in diffrax's
`RecursiveCheckpointAdjoint`: reverse-mode differentiable with bounded memory and a plain
`lax.while_loop` when not differentiated. Forward mode (`jax.jvp`, `jacfwd`) is not
supported here: use `GradientFlow(batched=False, adjoint=diffrax.ForwardMode())`.
"""

import diffrax
import equinox.internal as eqxi
import jax
import jax.numpy as jnp

from ..._custom_types import BatchedParams, RealScalarLike
from ..._problem import Problem, at_steady_state, is_diverged, is_nonfinite, tree_norm
from .._base import map_blocks
from .._flow_helpers import SolverTime, final_nonfinite, final_status, initial_step, params_dtype
from .._trajectories import Trajectories
from ._saving import SaveGrid, freeze_after_stop
from ._slots import SlotPool, seed_bytes
from ._stepper import _FUSED_ERROR_BYTES, Tsit5Stepper

# Per-seed results (diffrax's RESULTS, restricted to what can happen here).
_RUNNING, _EVENT, _MAX_STEPS = 0, 1, 2


def solve(
    problem: Problem,
    params0: BatchedParams,
    *,
    ts,
    t1: RealScalarLike,
    controller: diffrax.PIDController,
    dt0: RealScalarLike | None,
    log_time: bool,
    divergence: RealScalarLike,
    stop_loss: RealScalarLike | None,
    stop_grad_norm: RealScalarLike | None,
    max_steps: int,
    checkpoints: int | None = None,
    slots: int | None = None,
    fused_error: bool | None = None,
) -> Trajectories:
    """dθ/dt = −∇L(θ) from `params0` (leading seed axis S ≥ 2) to `t1`, saved at `ts`,
    for every seed, in one loop (the arguments are `GradientFlow`'s fields).

    `controller`: the PID controller (its `rtol`, `atol`); `dt0`: the first step, or
    `None` for Hairer's heuristic; `log_time`: integrate in s = log(1 + t); a seed stops
    as diverged once max|θ_i| > `divergence` or its loss or gradient is not finite, as
    converged once L < `stop_loss` or ‖∇L‖ < `stop_grad_norm`, out of steps after
    `max_steps` attempts. `checkpoints`: of the reverse pass (diffrax's
    `RecursiveCheckpointAdjoint`). `slots`: how many seeds are integrated at once
    (`SlotPool`). `fused_error`: the step's scaled error in one fused pass
    (`Tsit5Stepper`); `None`: fused from `_FUSED_ERROR_BYTES` of slots × parameters on.

    Returns the `Trajectories` of `GradientFlow.run`, with a leading seed axis.
    """
    n_seeds = jax.tree.leaves(params0)[0].shape[0]
    pool = SlotPool(n_seeds, slots)
    if fused_error is None:
        fused_error = pool.n_slots * seed_bytes(params0) >= _FUSED_ERROR_BYTES
    dtype = params_dtype(params0)
    ts = ts.astype(dtype)
    time = SolverTime(log_time)
    grid = SaveGrid(time.to_s(ts))
    s1 = time.to_s(jnp.asarray(t1, dtype))
    stepper = Tsit5Stepper(problem, time, controller, s1, divergence, fused_error)

    def steady(value, g):
        grad_norm = lambda: jax.vmap(tree_norm)(g)
        return at_steady_state(value, grad_norm, stop_loss, stop_grad_norm)

    # The initial state in blocks of the slot count: computed on batches of the shape
    # the loop uses, whatever the number of seeds (at least one block of them).
    queue = map_blocks(
        lambda p: _queue(stepper, p, dt0, divergence, steady), pool.n_slots, params0
    )
    summary_shape = jax.eval_shape(problem.summary, jax.tree.map(lambda x: x[0], params0))
    state0 = pool.initial_state(queue, grid.empty(summary_shape, n_seeds))

    def active(st):
        return (
            pool.occupied(st)
            & (st["sprev"] < s1)
            & (st["result"] == _RUNNING)
            & (st["num_steps"] < max_steps)
        )

    def body(st):
        live = active(st)
        rows = st["seed"]
        step = stepper.attempt(st["y"], st["g"], st["sprev"], st["snext"], st["cstate"])
        accept = live & step.keep
        save_index, saved = grid.save_step(
            problem.summary, rows, n_seeds, accept=accept, y=st["y"], sprev=st["sprev"],
            snext=st["snext"], ws=step.weights, gs=step.grads, save_index=st["save_index"],
            saved=st["saved"],
        )
        y_new = _where(accept, step.y1, st["y"])
        g_new = _where(accept, step.g1, st["g"])
        value_new = jnp.where(accept, step.value1, st["value"])
        # The event on the state after the attempt. A running seed's state is never
        # diverged (that would have stopped it), so only an accepted y1 can be; its
        # gradient is finite (it entered the error estimate, which was finite), its loss
        # need not be.
        event = live & (
            (accept & (step.y1_diverged | is_nonfinite(value_new))) | steady(value_new, g_new)
        )
        new_st = dict(
            y=y_new,
            g=g_new,
            value=value_new,
            sprev=jnp.where(live, step.sprev, st["sprev"]),
            snext=jnp.where(live, step.snext, st["snext"]),
            cstate=_where(live, step.cstate, st["cstate"]),
            result=jnp.where(event, _EVENT, st["result"]),
            num_steps=st["num_steps"] + live.astype(jnp.int32),
            save_index=save_index,
            seed=rows,
            next_seed=st["next_seed"],
            waiting=st["waiting"],
            saved=saved,
            out=st["out"],
        )
        finished = pool.occupied(new_st) & ~active(new_st)
        # Retire and refill inside a `cond`: only when a seed stopped, or when a slot
        # still waits for a seed (refills are capped at `n_load` per iteration).
        return jax.lax.cond(
            jnp.any(finished) | st["waiting"],
            lambda s, done: pool.retire_and_refill(s, done, queue),
            lambda s, _: s,
            new_st,
            finished,
        )

    last = eqxi.while_loop(
        lambda st: jnp.any(pool.occupied(st)),
        body,
        state0,
        max_steps=pool.max_iterations(max_steps),
        kind="checkpointed",
        checkpoints=checkpoints,
    )
    return _finish(problem, time, ts, s1, divergence, last, pool.n_slots)


def _finish(problem, time, ts, s1, divergence, last, block: int) -> Trajectories:
    """The `Trajectories` from the loop's final state: the stopped seeds' outputs, their
    status and the saved summaries frozen after each seed's stop."""
    final = last["out"]
    result = jnp.where(
        (final["sprev"] < s1) & (final["result"] == _RUNNING), _MAX_STEPS, final["result"]
    )
    y_final = final["y"]
    t_final = time.from_s(final["sprev"])
    final_summary = map_blocks(jax.vmap(problem.summary), block, y_final)
    saved = freeze_after_stop(last["saved"], ts, t_final, final["num_steps"], final_summary)
    diverged = jax.vmap(lambda p: is_diverged(p, divergence))(y_final)
    diverged = diverged | final_nonfinite(final_summary)
    status = final_status(result == _RUNNING, result == _EVENT, result == _MAX_STEPS, diverged)
    return Trajectories(
        params=y_final,
        saved=saved,
        ts=jnp.broadcast_to(ts, t_final.shape + ts.shape),
        status=status,
        num_steps=final["num_steps"],
        t_final=t_final,
    )


def _queue(stepper: Tsit5Stepper, params0, dt0, divergence, steady) -> dict:
    """Every seed's initial state, as `diffeqsolve` starts it (leaves (S, ...)): the
    first step (`initial_step`), the controller's state, L and ∇L, and the stop
    condition on the initial state (`_EVENT`: a seed that stops at t = 0)."""
    n_seeds = jax.tree.leaves(params0)[0].shape[0]
    term, controller, s1 = stepper.term, stepper.controller, stepper.s1
    solver, error_order = diffrax.Tsit5(), stepper.error_order
    s0 = jnp.zeros((n_seeds,), s1.dtype)
    h0 = jax.vmap(lambda s, y: initial_step(solver, controller, term, s, s1, y, dt0))(
        s0, params0
    )
    snext, cstate = jax.vmap(
        lambda s, y, h: controller.init(term, s, s1, y, h, None, solver.func, error_order)
    )(s0, params0, h0)
    value0, g0 = stepper.grads(params0)
    bad = jax.vmap(lambda p, v, gp: is_diverged(p, divergence) | is_nonfinite(v, gp))
    return dict(
        y=params0,
        g=g0,
        value=value0,
        sprev=s0,
        snext=jnp.minimum(snext, s1),
        cstate=cstate,
        result=jnp.where(bad(params0, value0, g0) | steady(value0, g0), _EVENT, _RUNNING).astype(
            jnp.int32
        ),
        num_steps=jnp.zeros((n_seeds,), jnp.int32),
        save_index=jnp.zeros((n_seeds,), jnp.int32),
    )


def _where(mask, a, b):
    """Per-seed select: `mask` (S,) broadcast against leaves (S, ...)."""
    return jax.tree.map(
        lambda x, y: jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - 1)), x, y), a, b
    )
