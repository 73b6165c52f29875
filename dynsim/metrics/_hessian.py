r"""Sharpness: the top eigenvalue of the Hessian ∇²L(θ), from Hessian–vector products."""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from .._checks import check_count
from .._custom_types import Array, Params, Scalar
from ._base import AbstractMetric, trained_flat

METHODS = ("power", "lanczos")
START_KEY = 0
"""Seed of the fixed start vector v₀ (`jax.random.key(START_KEY)`, standard normal)."""


def hvp_flat(problem: Any, params: Params):
    """(d, v ↦ ∇²L(θ)v) in the flat coordinates of the trained parameters
    (`trained_flat`): forward-mode derivative of the reverse-mode gradient
    (`jax.jvp` of `jax.grad` of `problem.value`)."""
    flat, rebuild = trained_flat(problem.model, params)
    grad = jax.grad(lambda v: problem.value(rebuild(v)))
    return flat, lambda v: jax.jvp(grad, (flat,), (v,))[1]


def _start(flat: Array, salt: Any = 0) -> Array:
    v = jax.random.normal(jax.random.fold_in(jax.random.key(START_KEY), salt), flat.shape, flat.dtype)
    return v / jnp.linalg.norm(v)


def _safe_normalize(w):
    nrm = jnp.linalg.norm(w)
    return w / jnp.where(nrm > 0, nrm, 1)


def power_top(hvp, v0: Array, iters: int) -> Scalar:
    r"""λ_max by power iteration with a shift.

    Phase 1: `iters` steps v ← Hv/‖Hv‖ from v₀; μ = vᵀHv (the Rayleigh quotient before
    the last step) tends to the eigenvalue of largest |λ|. Phase 2: s = min(μ, 0) and
    `iters` steps on H − sI (whose spectrum λ_i − s ≥ 0 up to phase 1's error, so its
    dominant eigenvalue is λ_max − s), from phase 1's vector if s = 0 (then simply
    `2·iters` steps on H) or from v₀ again if s < 0; returns its Rayleigh quotient + s.
    """
    def steps(shift, v):
        def body(_, carry):
            v, _ = carry
            w = hvp(v) - shift * v
            return _safe_normalize(w), v @ w

        return jax.lax.fori_loop(0, iters, body, (v, jnp.zeros((), v.dtype)))

    v1, mu = steps(jnp.zeros((), v0.dtype), v0)
    shift = jnp.minimum(mu, 0)
    _, lam = steps(shift, jnp.where(shift < 0, v0, v1))
    return lam + shift


def lanczos_top(hvp, v0: Array, iters: int) -> Scalar:
    r"""λ_max as the largest Ritz value of m = min(`iters`, d) Lanczos steps.

    The Krylov basis q₁ = v₀, q_{j+1} ∝ Hq_j − α_j q_j − β_{j−1} q_{j−1} is
    reorthogonalized against all previous q's (twice, classical Gram–Schmidt) at every
    step; T = tridiag(β, α, β) = QᵀHQ, and max eig(T) ≤ λ_max, equal to it (to rounding)
    once the Krylov space holds the top eigenvector (always for m = d). On breakdown
    (β_j below rounding: the Krylov space is invariant, e.g. a Hessian of few distinct
    eigenvalues) the basis continues from a fixed random vector orthogonal to it, with
    β_j = 0, so the Ritz values stay those of QᵀHQ.
    """
    d = v0.shape[0]
    m = min(iters, d)
    eps = jnp.finfo(v0.dtype).eps

    def orth(Q, w):
        w = w - Q.T @ (Q @ w)
        return w - Q.T @ (Q @ w)

    def body(j, carry):
        Q, alpha, beta, q, q_prev, b_prev = carry
        Q = Q.at[j].set(q)
        hq = hvp(q)
        a = q @ hq
        w = orth(Q, hq - a * q - b_prev * q_prev)
        b = jnp.linalg.norm(w)
        ok = b > 10 * eps * (jnp.abs(a) + b_prev + jnp.linalg.norm(hq))
        fresh = _safe_normalize(orth(Q, _start(v0, j + 1)))
        q_next = jnp.where(ok, w / jnp.where(ok, b, 1), fresh)
        b = jnp.where(ok, b, 0)
        return Q, alpha.at[j].set(a), beta.at[j].set(b), q_next, q, b

    zeros = jnp.zeros((m,), v0.dtype)
    init = (jnp.zeros((m, d), v0.dtype), zeros, zeros, v0, jnp.zeros_like(v0),
            jnp.zeros((), v0.dtype))
    _, alpha, beta, *_ = jax.lax.fori_loop(0, m, body, init)
    off = beta[: m - 1]
    T = jnp.diag(alpha) + jnp.diag(off, 1) + jnp.diag(off, -1)
    return jnp.linalg.eigvalsh(T)[-1]


@dataclasses.dataclass(frozen=True)
class Sharpness(AbstractMetric):
    """λ_max(∇²L(θ)) over the trained parameters (see `sharpness`)."""

    iters: int = 20
    method: str = "power"

    def __call__(self, params: Params, problem: Any) -> Scalar:
        flat, hvp = hvp_flat(problem, params)
        v0 = _start(flat)
        if self.method == "power":
            return power_top(hvp, v0, self.iters)
        return lanczos_top(hvp, v0, self.iters)


def sharpness(iters: int = 20, method: str = "power") -> Sharpness:
    r"""The metric λ_max(∇²L(θ)): the largest (algebraic) eigenvalue of the Hessian of
    the training loss L at one seed's parameters, over the trained parameters (a
    `TwoLayerNet(train_outer=False)`'s fixed outer weights excluded). GD with step η is
    linearly stable at a minimum only if λ_max ≤ 2/η ("edge of stability").

    Only Hessian–vector products are used: ∇²L(θ)v = `jax.jvp` of `jax.grad` of
    `problem.value` (forward over reverse), never the d×d Hessian. The start vector v₀ is
    a fixed standard normal draw (key `START_KEY`), the same at every call and for every
    seed, so results are reproducible.

    **Arguments:**

    - `iters`: the number of Hessian–vector products per phase (`"power"`) or of
      Lanczos steps (`"lanczos"`, at most d).
    - `method`: `"power"` (default): power iteration, which converges to the eigenvalue
      of largest |λ|, with a shift: `iters` steps on H give μ; if μ < 0 (the most
      negative eigenvalue dominates) `iters` more steps on H − μI from v₀ give λ_max − μ,
      else `iters` more steps on H refine μ (2·`iters` products in all; the error falls
      like (|λ₂|/λ₁)^{2k} after k steps, or like ((λ₂ − λ_d)/(λ₁ − λ_d))^{2k} after
      the shift: slowly when those ratios are near 1, e.g. 0.9 needs ~200 steps for
      1e-10; memory O(d) per seed). `"lanczos"`: the largest Ritz value of `iters`
      Lanczos steps with full reorthogonalization (`iters` products, a lower bound on
      λ_max that converges much faster; exact to rounding when `iters` ≥ d; memory
      `iters`·d per seed for the basis).

    **Returns:** a metric `fn(params, problem) -> scalar`.
    """
    check_count("iters", iters)
    if method not in METHODS:
        raise ValueError(f"method: must be one of {METHODS}; got {method!r}")
    return Sharpness(int(iters), method)
