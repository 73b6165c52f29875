r"""What the two gradient-flow solvers share: the integration time, the step controller,
the first step and the mapping of solver outcomes to `dynsim.Status`.

`GradientFlow.run` (per seed, `diffrax.diffeqsolve`) and the batched loop
(`dynsim.dynamics.batched`) both use these, so that they integrate the same ODE with
the same step control.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array
from .._problem import is_nonfinite
from .._status import Status


class SolverTime(eqx.Module):
    r"""The time s the solver integrates in, and its map to the training time t.

    Plain time (`log_time=False`): s = t, dθ/ds = −∇L(θ). Log-time (`log_time=True`):
    s = log(1 + t), so dθ/ds = (dt/ds)·dθ/dt = −(1 + t)∇L(θ) = −eˢ∇L(θ); a horizon
    t ~ 10¹² is s ≈ 27.6, and the tolerances apply per unit of s.
    """

    log_time: bool = eqx.field(static=True)

    def to_s(self, t):
        """s(t): log(1 + t) in log-time, else t."""
        return jnp.log1p(t) if self.log_time else t

    def from_s(self, s):
        """t(s): eˢ − 1 in log-time, else s."""
        return jnp.expm1(s) if self.log_time else s

    def rate(self, s):
        """dt/ds: the factor of −∇L in dθ/ds (eˢ in log-time, else 1)."""
        return jnp.exp(s) if self.log_time else 1.0


class _PIDController(diffrax.PIDController):
    """diffrax's PID controller, robust to a NaN error estimate.

    A trial step that overflows gives y_error = NaN, which diffrax turns into a NaN step
    size (the solve then never advances); here NaN errors count as infinite, so the step
    is rejected and shrunk by `factormin`, as diffrax does for infinite errors.
    """

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state):
        y_error = jax.tree.map(lambda e: jnp.where(jnp.isnan(e), jnp.inf, e), y_error)
        return super().adapt_step_size(
            t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state
        )


def step_controller(solver, rtol, atol) -> diffrax.AbstractStepSizeController:
    """The step control of a gradient flow: for adaptive solvers a PID controller on
    RMS(err / (atol + rtol·max(|y0|, |y1|))) with `pcoeff=0.3, icoeff=0.4` (NaN errors
    rejected, `_PIDController`); fixed steps otherwise."""
    if isinstance(solver, diffrax.AbstractAdaptiveSolver):
        return _PIDController(rtol=rtol, atol=atol, pcoeff=0.3, icoeff=0.4)
    return diffrax.ConstantStepSize()


def initial_step(solver, controller, term, s0, s1, y0, dt0=None) -> Array:
    """The first step: `dt0` if given, else Hairer's heuristic (diffrax's own).

    `diffeqsolve` never runs that heuristic itself (it hands the controller a wrapped
    term and falls back to dt = 0.01, far too large for stiff flows such as diagonal
    nets at large α), so both gradient-flow paths call it on the plain `ODETerm` and
    pass the result as `dt0`. The step is clipped to end at `s1`.
    """
    if dt0 is not None:
        return jnp.asarray(dt0, jnp.result_type(s0))
    error_order = solver.error_order(term)
    s_next, _ = controller.init(term, s0, s1, y0, None, None, solver.func, error_order)
    return jnp.minimum(s_next, s1) - s0


def final_nonfinite(summary) -> Array:
    """A final state whose loss or gradient norm is not finite (counted `DIVERGED`)."""
    return is_nonfinite(summary["loss"]) | is_nonfinite(summary["grad_norm"])


def final_status(successful, event, max_steps, diverged) -> Array:
    """The `dynsim.Status` code (`int8`) of a solve that ended at t1 (`successful`), at
    an event (`CONVERGED`: a stop threshold, or the divergence event, overridden by
    `diverged`), out of steps (`MAX_STEPS`) or otherwise (`FAILED`); `diverged`
    (non-finite or beyond `divergence`) takes precedence."""
    status = jnp.where(
        successful,
        Status.REACHED_END,
        jnp.where(event, Status.CONVERGED, jnp.where(max_steps, Status.MAX_STEPS, Status.FAILED)),
    )
    return jnp.where(diverged, Status.DIVERGED, status).astype(jnp.int8)


def params_dtype(params) -> jnp.dtype:
    """The floating dtype of a parameter PyTree (the result type of its leaves)."""
    return jnp.result_type(*jax.tree.leaves(params))
