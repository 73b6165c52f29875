r"""One seed's flow through `diffrax.diffeqsolve`: the stop event, the save grid, the
frozen state after a stop and the status.

`GradientFlow.run` (the ODE dθ = −∇L dt) and `StochasticGradientFlow.run` (the SDE
dθ = −∇L dt + Σ^{1/2} dW) differ only in their terms, solver and step control; both
call `solve_seed`, so they stop, save and report in the same way.
"""

from typing import Any

import diffrax
import jax
import jax.numpy as jnp

from .._custom_types import Params
from .._problem import Problem, at_steady_state, is_diverged, is_nonfinite, tree_norm
from ._flow_helpers import SolverTime, final_nonfinite, final_status
from ._trajectories import Trajectories


def solve_seed(
    problem: Problem,
    params0: Params,
    *,
    terms: diffrax.AbstractTerm,
    solver: diffrax.AbstractSolver,
    controller: diffrax.AbstractStepSizeController,
    dt0: Any,
    t1: Any,
    ts: Any,
    time: SolverTime,
    divergence: Any,
    stop_loss: Any,
    stop_grad_norm: Any,
    max_steps: int,
    adjoint: diffrax.AbstractAdjoint,
) -> Trajectories:
    """Solve `terms` from θ(0) = `params0` over [0, `t1`] (training time; the solver
    integrates in `time`'s s) and return one seed's `Trajectories`.

    A seed stops at `t1`, at a steady state (`stop_loss`, `stop_grad_norm`, checked
    after every step attempt), on divergence (max|θ_i| > `divergence`, or a
    non-finite initial loss or gradient: `DIVERGED`) or after `max_steps`. Save times
    after the stop hold the summary of the final state.
    """
    to_s = time.to_s

    def stop_condition(s, params, nonfinite0, **kwargs):
        # The event is evaluated after every step attempt, accepted or not: a seed
        # whose initial loss or gradient is not finite stops after its first one.
        bad = is_diverged(params, divergence) | nonfinite0
        if stop_loss is None and stop_grad_norm is None:
            return bad
        value, grads = problem.value_and_grad(params)
        return bad | at_steady_state(value, lambda: tree_norm(grads), stop_loss, stop_grad_norm)

    saveat = diffrax.SaveAt(
        subs=[
            diffrax.SubSaveAt(ts=to_s(ts), fn=lambda s, y, args: problem.summary(y)),
            diffrax.SubSaveAt(t1=True),
        ]
    )
    s0, s1 = jnp.zeros((), ts.dtype), to_s(jnp.asarray(t1, ts.dtype))
    sol = diffrax.diffeqsolve(
        terms,
        solver,
        t0=s0,
        t1=s1,
        dt0=dt0,
        y0=params0,
        saveat=saveat,
        stepsize_controller=controller,
        adjoint=adjoint,
        args=is_nonfinite(*problem.value_and_grad(params0)),
        event=diffrax.Event(stop_condition),
        max_steps=max_steps,
        throw=False,
    )
    saved, final = sol.ys
    final = jax.tree.map(lambda x: x[0], final)
    t_final = time.from_s(sol.ts[1][0])
    # Freeze the state after the trajectory stopped.
    final_summary = problem.summary(final)
    # (A stop at t = 0 saves nothing: then every save time gets the initial state.)
    after = (ts > t_final) | (sol.stats["num_steps"] == 0)
    saved = jax.tree.map(
        lambda s, f: jnp.where(after.reshape((-1,) + (1,) * (s.ndim - 1)), f, s),
        saved,
        final_summary,
    )
    diverged = is_diverged(final, divergence) | final_nonfinite(final_summary)
    status = final_status(
        sol.result == diffrax.RESULTS.successful,
        sol.result == diffrax.RESULTS.event_occurred,
        sol.result == diffrax.RESULTS.max_steps_reached,
        diverged,
    )
    return Trajectories(
        params=final,
        saved=saved,
        ts=ts,
        status=status,
        num_steps=sol.stats["num_steps"],
        t_final=t_final,
    )
