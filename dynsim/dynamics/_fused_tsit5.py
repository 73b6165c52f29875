r"""Tsit5 as a diffrax solver built from the batched loop's stage arithmetic.

`FusedTsit5` is Tsitouras' 5(4) pair with diffrax's tableau, FSAL and interpolant, the
method of `diffrax.Tsit5`, for use with `diffrax.diffeqsolve` (the `vmap` path of
`GradientFlow`). It differs from `diffrax.Tsit5` in how a step is computed, not in what:

- the six stages are unrolled in Python, each stage value y_i = y0 + Σ_j a_ij·h·f_j one
  fused sum over the previous stage derivatives (`_stage_sum`, shared with the batched
  loop's stepper), where `diffrax.Tsit5` runs the stages as a loop
  (`equinox.internal.while_loop`, of kind "bounded" under `RecursiveCheckpointAdjoint`)
  that writes the scaled stages k_j = h·f_j into a (7, ...) buffer and contracts the
  whole zero-padded buffer at every stage;
- for an `ODETerm` the step size h is folded into the coefficients, so the scaled
  stages are never formed; the error estimate Σ_j (b_j − b̂_j)·h·f_j is one more such sum;
- the dense output keeps the seven stage derivatives and h and evaluates
  y0 + Σ_j b_j(θ)·h·f_j with diffrax's Tsit5 interpolating polynomials b_j(θ);
- the first stage of the first step is evaluated in `init` (diffrax evaluates it inside
  the first step, behind a flag).

Other terms (e.g. the adjoint term of `diffrax.BacksolveAdjoint`) take the generic
route: k_j = `term.prod(f_j, control)` and the same stage sums over the k_j.
Results equal `diffrax.Tsit5`'s up to rounding (the sums are associated differently);
`tests/test_fused_tsit5.py` compares them step by step.
"""

from collections.abc import Callable
from typing import ClassVar

import diffrax
import equinox.internal as eqxi
import jax
import jax.numpy as jnp

from .._custom_types import Array, RealScalarLike
from .batched._stepper import _stage_sum

_TABLEAU = diffrax.Tsit5.tableau
_NUM_STAGES = 7


def _interpolation_weights(t0, t1, t) -> Array:
    """diffrax's Tsit5 interpolating polynomials b_j(θ), θ = (t − t0)/(t1 − t0), as a (7,)
    array: the interpolant y0 + Σ_j b_j(θ)·k_j is linear in (y0, k), so evaluating it at
    y0 = 0, k = I₇ gives the weights."""
    dtype = jnp.result_type(t0, t1, t)
    eye = jnp.eye(_NUM_STAGES, dtype=dtype)
    zero = jnp.zeros(_NUM_STAGES, dtype)
    return diffrax.Tsit5.interpolation_cls(t0=t0, t1=t1, y0=zero, y1=zero, k=eye).evaluate(t)


def _unwrap(term):
    """The term inside diffrax's `WrapTerm` (which only flips the direction of time;
    `diffeqsolve` wraps every term in one; not exported by diffrax)."""
    while isinstance(term, diffrax._term.WrapTerm):
        term = term.term
    return term


class _FusedTsit5Interpolation(diffrax.AbstractLocalInterpolation):
    """Tsit5's dense output over [t0, t1]: y0 + Σ_j b_j(θ)·scale·fs[j] (fs: the stage
    derivatives with scale = h, or the scaled stages with scale = 1)."""

    t0: RealScalarLike
    t1: RealScalarLike
    y0: object
    fs: tuple
    scale: Array

    def evaluate(self, t0, t1=None, left: bool = True):
        del left
        if t1 is not None:
            return jax.tree.map(jnp.subtract, self.evaluate(t1), self.evaluate(t0))
        b = _interpolation_weights(self.t0, self.t1, t0).astype(self.scale.dtype)
        weights = [b[j] * self.scale for j in range(_NUM_STAGES)]
        return _stage_sum(self.y0, [1.0] * _NUM_STAGES, weights, list(self.fs))


class FusedTsit5(diffrax.AbstractAdaptiveSolver):
    r"""Tsitouras' 5(4) Runge–Kutta pair (FSAL, 5th-order dense output): the method of
    `diffrax.Tsit5`, computed with unrolled, fused stage sums.

    A drop-in replacement for `diffrax.Tsit5()` in `diffrax.diffeqsolve` (adaptive step
    control, `SaveAt(ts=...)`/dense output, events, `RecursiveCheckpointAdjoint`,
    `ForwardMode`, `BacksolveAdjoint`) for ODEs, whose steps equal `diffrax.Tsit5`'s up
    to rounding. `GradientFlow` uses it for `solver=diffrax.Tsit5()` on its `vmap` path.

    **Arguments:** None.
    """

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., _FusedTsit5Interpolation]] = (
        _FusedTsit5Interpolation
    )

    def order(self, terms):
        return 5

    def init(self, terms, t0, t1, y0, args):
        # The FSAL stage: f(t0, y0) for the first step.
        return terms.vf(t0, y0, args)

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        f0 = solver_state
        if made_jump is not False:
            # After a jump the stored FSAL stage is stale (any seed: all re-evaluate;
            # an unjumped seed's f(t0, y0) is its stored stage).
            f0 = jax.lax.cond(
                eqxi.unvmap_any(made_jump), lambda: terms.vf(t0, y0, args), lambda: f0
            )
        dtype = jnp.result_type(*jax.tree.leaves(y0))
        dt = t1 - t0
        control = terms.contr(t0, t1)
        if isinstance(_unwrap(terms), diffrax.ODETerm):
            # k_j = h·f_j (h = the control): h is folded into the coefficients of the
            # stage sums, which then run over the stage derivatives f_j themselves.
            scale, to_stage = jnp.asarray(control, dtype), (lambda f: f)
        else:
            scale, to_stage = jnp.ones((), dtype), (lambda f: terms.prod(f, control))
        ks, ws = [to_stage(f0)], [scale]
        for i in range(_NUM_STAGES - 1):
            yi = _stage_sum(y0, _TABLEAU.a_lower[i], ws, ks)
            c = float(_TABLEAU.c[i])
            ti = t1 if c == 1.0 else t0 + c * dt
            fi = terms.vf(ti, yi, args)
            ks.append(to_stage(fi))
            ws.append(scale)
        # The last stage is the solution (c = 1, a = b_sol) and its derivative the FSAL
        # stage of the next step.
        y1, f1 = yi, fi
        y_error = _stage_sum(None, _TABLEAU.b_error, ws, ks)
        dense_info = dict(y0=y0, fs=tuple(ks), scale=scale)
        return y1, y_error, dense_info, f1, diffrax.RESULTS.successful
