r"""One Tsit5 step attempt for every slot at once, with diffrax's PID step control.

A step from (s, y) of size h = s_next − s evaluates the six new stages of Tsit5 (FSAL:
the first stage is the previous step's last), forms the embedded error estimate and
hands it to the controller, per seed. The loop keeps raw gradients g_j = ∇L(y_j): the
stage derivative is f_j = −rate(s_j)·g_j, so k_j = h·f_j = w_j·g_j with per-seed
weights w_j = −h·rate(s_j), folded into the coefficients of the stage sums
(`_stage_sum`): no pass over the state scales the gradients.
"""

import functools
import math
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import optimistix as optx

from ..._custom_types import Array, RealScalarLike
from ..._problem import Problem, is_diverged, max_abs_diverged, tree_max_abs
from .._flow_helpers import SolverTime

# The fused error pass (`_error_ratio`) from this many bytes of slots × parameters on:
# XLA emits it as one scalar (unvectorized) reduction loop, which beats materializing
# the error and reducing it with the vectorized library reduction only when the arrays
# do not fit in cache. Tuned by measurement on W1–W3: benchmarks/HISTORY.md.
_FUSED_ERROR_BYTES = 2**18


def _stage_sum(y, coeffs, weights, gs):
    """y + Σ_j coeffs[j]·weights[j]·gs[j], per seed: `coeffs` are tableau entries
    (Python floats, zeros skipped), `weights[j]` (S,) per-seed factors (−dt·rate), `gs`
    raw gradients (leaves (S, ...)); `y=None` for the plain sum. One fused pass over
    y and the gradients: the scaled stages dt·f_j are never materialized. (Scalar
    weights and leaves without a seed axis: one seed, as in `FusedTsit5`.)"""
    terms = [(float(c), w, g) for c, w, g in zip(coeffs, weights, gs) if float(c) != 0.0]

    def leaf(y_leaf, *g_leaves):
        acc = None
        for (c, w, _), g in zip(terms, g_leaves):
            t = (c * w).reshape(w.shape + (1,) * (g.ndim - w.ndim)) * g
            acc = t if acc is None else acc + t
        return acc if y_leaf is None else y_leaf + acc

    g_trees = [g for _, _, g in terms]
    if y is None:
        return jax.tree.map(lambda *ls: leaf(None, *ls), *g_trees)
    return jax.tree.map(leaf, y, *g_trees)


def _error_ratio(controller, y0, y1, coeffs, weights, gs):
    """diffrax's scaled error of a step, per seed: RMS_i(e_i / (atol + rtol·max(|y0_i|,
    |y1_i|))) over all parameters, the error estimate e = Σ_j coeffs[j]·weights[j]·gs[j]
    (as `_stage_sum`) and `controller`'s `atol`, `rtol` and RMS norm (`optx.rms_norm`).
    Also returns max|y1| per seed (NaN-propagating), for the divergence check.

    One fused pass reading y0, y1 and the stage gradients; e and the scaled error are
    never materialized. (`PIDController.adapt_step_size` builds the scaled error as an
    array, after a NaN check over y1 and a select; an error estimate that cannot fuse
    into its norm then costs a pass of its own over the state.) The exceptional cases
    are delegated, so the result is diffrax's: where the fused value is NaN (a NaN error
    or state), the seed's ratio is recomputed as `PIDController.adapt_step_size` does
    it — NaN errors counted infinite (`_PIDController`), y1 replaced by y0 in the scale
    of a leaf holding a NaN — inside a `cond` that runs only when some seed has a NaN.
    """
    atol, rtol, norm = controller.atol, controller.rtol, controller.norm

    def exact():
        # (e recomputed here: were the branch to take the fused pass's e, XLA would have
        # to materialize it)
        err = _stage_sum(None, coeffs, weights, gs)

        def one(a, b, e):
            def scale(a_, b_, e_):
                e_ = jnp.where(jnp.isnan(e_), jnp.inf, e_)
                b_ = jnp.where(jnp.isnan(b_).any(), a_, b_)
                return e_ / (atol + jnp.maximum(jnp.abs(a_), jnp.abs(b_)) * rtol)

            return norm(jax.tree.map(scale, a, b, e))

        return jax.vmap(one)(y0, y1, err)

    if norm is not optx.rms_norm:
        return jax.lax.stop_gradient(exact()), jax.vmap(tree_max_abs)(y1)

    def sum_sq(a, b, e):
        # One variadic reduction: Σ q² and max|y1| (the divergence check of y1) in the
        # same pass. (XLA emits it as one loop fusion with the error estimate inside;
        # a plain sum becomes a library reduction that takes e as a materialized array.)
        q = e / (atol + jnp.maximum(jnp.abs(a), jnp.abs(b)) * rtol)
        z = jnp.zeros((), q.dtype)
        return jax.lax.reduce(
            (q * q, jnp.abs(b)),
            (z, z),
            lambda u, v: (u[0] + v[0], jnp.maximum(u[1], v[1])),
            tuple(range(1, q.ndim)),
        )

    leaves = jax.tree.leaves(y0)
    size = sum(x[0].size for x in leaves)
    err = _stage_sum(None, coeffs, weights, gs)
    per_leaf = [sum_sq(*ls) for ls in zip(leaves, jax.tree.leaves(y1), jax.tree.leaves(err))]
    fast = jnp.sqrt(sum(s for s, _ in per_leaf)) / math.sqrt(size)
    max_abs_y1 = functools.reduce(jnp.maximum, [m for _, m in per_leaf])
    has_nan = jnp.isnan(fast)
    ratio = jax.lax.cond(
        jnp.any(has_nan), lambda: jnp.where(has_nan, exact(), fast), lambda: fast
    )
    # diffrax stops gradients through the scaled error (step sizes are not differentiated)
    return jax.lax.stop_gradient(ratio), max_abs_y1


def _on_scaled_error(controller):
    """`controller` with atol = 1, rtol = 0: its `adapt_step_size(t0, t1, 0, 0, args,
    r, ...)` is then `controller`'s step decision for a step of scaled error r
    (`_error_ratio`): the error norm of the scalar r is |r|/(1 + 0·0) = r, exactly."""
    return eqx.tree_at(lambda c: (c.atol, c.rtol), controller, (1.0, 0.0))


class Attempt(NamedTuple):
    """A step attempt of every slot, from s to s_next (leaves (B, ...), flags (B,))."""

    y1: Any  # the state at s_next: the last stage (c = 1, a = b_sol)
    g1: Any  # ∇L(y1), the FSAL stage
    value1: Array  # L(y1)
    weights: list  # w_j = −h·rate(s_j), (B,) each, j = 0..6
    grads: list  # g_j = ∇L(y_j), the seven stage gradients
    keep: Array  # the controller accepts the step
    sprev: Array  # where the next attempt starts (s_next if kept, else s), ≤ s1
    snext: Array  # where it ends: the controller's proposal, clipped to s1
    cstate: Any  # the controller's state after the decision
    y1_diverged: Array  # y1 is non-finite or beyond `divergence`


class Tsit5Stepper(eqx.Module):
    """Tsit5 step attempts of a batch of slots for dθ/ds = −rate(s)·∇L(θ), with
    `controller` (a `diffrax.PIDController`) deciding each seed's step.

    `fused_error`: the scaled error in one fused pass (`_error_ratio`) and the
    controller on that scalar (`_on_scaled_error`), or the materialized error estimate
    handed to `controller.adapt_step_size` (the same decisions). The proposed next step
    is clipped to end exactly at `s1` when it ends within 100 ULP of it, as diffrax
    does.
    """

    problem: Problem
    time: SolverTime
    controller: diffrax.PIDController
    s1: Array
    t1_clip_floor: Array
    zero: Array
    divergence: RealScalarLike
    fused_error: bool = eqx.field(static=True)

    def __init__(self, problem, time, controller, s1, divergence, fused_error):
        self.problem = problem
        self.time = time
        self.controller = controller
        self.s1 = s1
        floor = s1
        for _ in range(100):
            floor = eqxi.prevbefore(floor)
        self.t1_clip_floor = floor
        self.zero = jnp.zeros((), s1.dtype)
        self.divergence = divergence
        self.fused_error = fused_error

    @property
    def term(self) -> diffrax.ODETerm:
        """dθ/ds = −rate(s)·∇L(θ) for one seed (for the first step and `error_order`)."""

        def vector_field(s, params, args):
            _, g = self.problem.value_and_grad(params)
            r = self.time.rate(s)
            return jax.tree.map(lambda x: -r * x, g)

        return diffrax.ODETerm(vector_field)

    @property
    def error_order(self) -> int:
        return diffrax.Tsit5().error_order(self.term)

    def grads(self, params):
        """L and ∇L of every slot: (B, ...) -> (B,), (B, ...)."""
        return jax.vmap(self.problem.value_and_grad)(params)

    def attempt(self, y, g, sprev, snext, cstate) -> Attempt:
        """The step [sprev, snext] from state y with ∇L(y) = g, for every slot."""
        tableau, rate, s1 = diffrax.Tsit5.tableau, self.time.rate, self.s1
        dt = snext - sprev
        gs, ws = [g], [-dt * rate(sprev)]
        for i in range(6):
            yi = _stage_sum(y, tableau.a_lower[i], ws, gs)
            si = sprev + tableau.c[i] * dt
            vi, gi = self.grads(yi)
            gs.append(gi)
            ws.append(-dt * rate(si))
        y1, g1, value1 = yi, gi, vi
        error_order = self.error_order
        if self.fused_error:
            ratio, max_abs_y1 = _error_ratio(self.controller, y, y1, tableau.b_error, ws, gs)
            unit, zero = _on_scaled_error(self.controller), self.zero
            keep, sprev_new, snext_new, _, cstate_new, _ = jax.vmap(
                lambda a, b, e, c: unit.adapt_step_size(a, b, zero, zero, None, e, error_order, c)
            )(sprev, snext, ratio, cstate)
            y1_diverged = max_abs_diverged(max_abs_y1, self.divergence)
        else:
            y_err = _stage_sum(None, tableau.b_error, ws, gs)
            keep, sprev_new, snext_new, _, cstate_new, _ = jax.vmap(
                lambda a, b, c, d, e, s: self.controller.adapt_step_size(
                    a, b, c, d, None, e, error_order, s
                )
            )(sprev, snext, y, y1, y_err, cstate)
            y1_diverged = jax.vmap(lambda p: is_diverged(p, self.divergence))(y1)
        sprev_new = jnp.minimum(sprev_new, s1)
        clip = snext_new > self.t1_clip_floor
        sclip = jnp.where(keep, s1, sprev_new + 0.5 * (s1 - sprev_new))
        snext_new = jnp.where(clip, sclip, snext_new)
        return Attempt(
            y1, g1, value1, ws, gs, keep, sprev_new, snext_new, cstate_new, y1_diverged
        )
