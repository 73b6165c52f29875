"""Mirror links of diagonal linear networks: β(t) = φ(Xᵀν(t)).

For every diagonal parametrization trained by gradient flow on L = ½‖Xβ − y‖²
(residual r = Xβ − y, g = Xᵀr), each coordinate obeys d/dt z = −g with
z(t) = Xᵀν(t), ν(t) = −∫₀ᵗ r ds, and the parameters are explicit functions of z.
Hence β(t) = φ(z(t)) coordinatewise, with φ strictly increasing; its antiderivative
Φ (Φ′ = φ) defines the dual objective G(ν) = Σ_i Φ((Xᵀν)_i) − yᵀν whose minimiser
gives the GF limit, and Q = Φ* (convex conjugate, ∇Q = φ⁻¹) is the implicit-bias
potential: β∞ = argmin Q(β) s.t. Xβ = y.

The link functions dispatch on their input: numpy in → numpy out (used by the
solvers), jax in → jax out (jit / vmap / grad friendly).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ...models._diagonal import PARAMETRIZATIONS
from ._validation import as_positive_scalar, as_vector


class DiagonalLink(NamedTuple):
    """Coordinatewise link β = φ(z) of a diagonal network, its derivative and antiderivative.

    - `phi(z)`: β = φ(z), strictly increasing, shape `(..., d) → (..., d)`.
    - `dphi(z)`: φ′(z) > 0 (the GF Hessian weights; also the NTK diagonal).
    - `Phi(z)`: Φ(z) with Φ′ = φ, convex, `+inf` outside the domain of φ.

    Unpacks as the triple `(phi, dphi, Phi)`.
    """

    phi: Callable
    dphi: Callable
    Phi: Callable


def _xp(z):
    return jnp if isinstance(z, jax.Array) else np


def _aligned(z, *consts):
    """(xp, z, consts) with z and the per-coordinate constants broadcast to one shape.

    Explicit, so that batched z `(..., d)` against constants `(d,)` also works under
    `jax_numpy_rank_promotion="raise"`.
    """
    xp = _xp(z)
    shape = np.broadcast_shapes(np.shape(z), *(np.shape(c) for c in consts))
    return xp, xp.broadcast_to(z, shape), [xp.broadcast_to(c, shape) for c in consts]


def _exp_family(A, B, c, lin0, lin1) -> DiagonalLink:
    """φ(z) = A e^{cz} − B e^{−cz} + lin0 + lin1·z with A, B ≥ 0 (numerically stable).

    Where A, B > 0 it is evaluated as 2√(AB)·sinh(c(z − z₀)), z₀ = ln(B/A)/(2c), in the
    log domain (no overflow of e^{cz} against a tiny A, no cancellation near φ = 0).
    Φ(z) = (A e^{cz} + B e^{−cz})/c + lin0·z + lin1·z²/2, φ′ = c(A e^{cz} + B e^{−cz}) + lin1.
    """
    with np.errstate(divide="ignore"):
        logA, logB = np.log(A), np.log(B)
    both = (A > 0) & (B > 0)
    lA0, lB0 = np.where(both, logA, 0.0), np.where(both, logB, 0.0)
    m = 0.5 * (lA0 + lB0)  # log √(AB)
    z0 = (lB0 - lA0) / (2 * c)  # zero of φ (without the linear part)
    lA1 = np.where(both, -np.inf, logA)
    lB1 = np.where(both, -np.inf, logB)

    def parts(z):
        # odd = A e^{cz} − B e^{−cz}, even = A e^{cz} + B e^{−cz}
        xp, z, (both_, m_, z0_, lA1_, lB1_, lin0_, lin1_) = _aligned(
            z, both, m, z0, lA1, lB1, lin0, lin1
        )
        x = xp.where(both_, c * (z - z0_), 0.0)
        ax = xp.abs(x)
        big = xp.exp(m_ + ax)
        odd2 = xp.sign(x) * big * (-xp.expm1(-2.0 * ax))
        even2 = big * (1.0 + xp.exp(-2.0 * ax))
        eA = xp.exp(lA1_ + c * z)
        eB = xp.exp(lB1_ - c * z)
        odd = xp.where(both_, odd2, eA - eB)
        even = xp.where(both_, even2, eA + eB)
        return z, odd, even, lin0_, lin1_

    def phi(z):
        with np.errstate(over="ignore", invalid="ignore"):
            z, odd, _, l0, l1 = parts(z)
            return odd + l0 + l1 * z

    def dphi(z):
        with np.errstate(over="ignore", invalid="ignore"):
            _, _, even, _, l1 = parts(z)
            return c * even + l1

    def Phi(z):
        with np.errstate(over="ignore", invalid="ignore"):
            z, _, even, l0, l1 = parts(z)
            return even / c + l0 * z + 0.5 * l1 * z * z

    return DiagonalLink(phi, dphi, Phi)


def _depth_family(u0, v0, D) -> DiagonalLink:
    """β = u^D − v^D, u^{2−D} = u₀^{2−D} − D(D−2)z, v^{2−D} = v₀^{2−D} + D(D−2)z."""
    c = D * (D - 2.0)
    p = D / (D - 2.0)
    au = np.exp((2.0 - D) * np.log(u0))
    av = np.exp((2.0 - D) * np.log(v0))

    def s(z):
        xp, z, (au_, av_) = _aligned(z, au, av)
        su, sv = au_ - c * z, av_ + c * z
        ok_u, ok_v = su > 0, sv > 0
        return xp, xp.where(ok_u, su, 1.0), xp.where(ok_v, sv, 1.0), ok_u, ok_v

    def phi(z):
        xp, su, sv, ok_u, ok_v = s(z)
        return xp.where(ok_u, su ** (-p), xp.inf) - xp.where(ok_v, sv ** (-p), xp.inf)

    def dphi(z):
        xp, su, sv, ok_u, ok_v = s(z)
        val = D * D * (su ** (-p - 1.0) + sv ** (-p - 1.0))
        return xp.where(ok_u & ok_v, val, xp.inf)

    def Phi(z):
        xp, su, sv, ok_u, ok_v = s(z)
        q = -2.0 / (D - 2.0)
        val = (su**q + sv**q) / (2.0 * D)  # = (u² + v²)/(2D)
        return xp.where(ok_u & ok_v, val, xp.inf)

    return DiagonalLink(phi, dphi, Phi)


def diagonal_link(
    parametrization: str,
    params0: dict,
    *,
    depth: int | None = None,
    dense_scale: float = 1.0,
) -> DiagonalLink:
    """The mirror link β = φ(z) of a diagonal network under GF on L = ½‖Xβ − y‖².

    Per coordinate, with z(t) = Xᵀν(t), ν(t) = −∫₀ᵗ r ds (so ż = −Xᵀr), and
    initial parameters u₀, v₀ (w₀):

    - `"uu-vv"`: β = u² − v², u = u₀e^{2z}, v = v₀e^{−2z} ⇒ φ(z) = u₀²e^{4z} − v₀²e^{−4z};
      with u₀ = v₀ = α, φ = 2α² sinh(4z) and φ⁻¹(β) = ¼·arcsinh(β/(2α²)) = ¼∇Q_α(β)
      (Woodworth et al. 2020). Φ = (u₀²e^{4z} + v₀²e^{−4z})/4.
    - `"uv"`: β = u·v; a = u + v = a₀e^{z}, b = u − v = b₀e^{−z} ⇒
      φ(z) = (a₀²e^{2z} − b₀²e^{−2z})/4 = β₀cosh(2z) + (k/4)sinh(2z), β₀ = u₀v₀,
      k = 2(u₀² + v₀²) (Azulay et al. 2021). Φ = (a₀²e^{2z} + b₀²e^{−2z})/8.
    - `"depth"` (D = `depth` ≥ 3, u₀, v₀ > 0): β = u^D − v^D, u̇ = D u^{D−1} ż ⇒
      u^{2−D} = u₀^{2−D} − D(D−2)z, v^{2−D} = v₀^{2−D} + D(D−2)z, so
      φ(z) = (u₀^{2−D} − D(D−2)z)^{−D/(D−2)} − (v₀^{2−D} + D(D−2)z)^{−D/(D−2)},
      φ′ = D²(u^{2D−2} + v^{2D−2}), Φ = (u² + v²)/(2D); valid (u, v finite and
      positive) on −v₀^{2−D} < D(D−2)z < u₀^{2−D}, and Φ = +inf outside.
      `depth=2` gives `"uu-vv"`.
    - `"uu-vv+w"`: β = u² − v² + λw with λ = `dense_scale`; w = w₀ + λz ⇒
      φ(z) = u₀²e^{4z} − v₀²e^{−4z} + λw₀ + λ²z, Φ adds λw₀z + λ²z²/2.

    **Arguments:**

    - `parametrization`: one of `"uu-vv"`, `"uv"`, `"depth"`, `"uu-vv+w"`.
    - `params0`: dict with `"u"`, `"v"` of shape `(d,)` (and `"w"` for `"uu-vv+w"`;
      zero if absent). Scalars are broadcast only if another entry fixes `d`.
    - `depth`: D for `"depth"` (required there, D ≥ 2).
    - `dense_scale`: λ for `"uu-vv+w"`.

    **Returns:**

    A [`DiagonalLink`][] `(phi, dphi, Phi)` of coordinatewise functions.

    **Raises:**

    `ValueError` naming `parametrization`, `params0`, `depth` or `dense_scale`.
    """
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(
            f"parametrization: expected one of {PARAMETRIZATIONS}; got {parametrization!r}"
        )
    if not isinstance(params0, dict) or "u" not in params0 or "v" not in params0:
        raise ValueError('params0: expected a dict with keys "u" and "v"')
    d = next(
        (int(np.shape(params0[k])[0]) for k in ("u", "v", "w")
         if k in params0 and np.ndim(params0[k]) == 1),
        None,
    )
    if d is None:
        raise ValueError('params0: "u" or "v" must be a 1-d array of shape (d,)')
    u0 = as_vector('params0["u"]', params0["u"], d)
    v0 = as_vector('params0["v"]', params0["v"], d)
    zero = np.zeros(d)
    if parametrization == "depth":
        if depth is None:
            raise ValueError('depth: required for parametrization="depth"')
        D = float(depth)
        if not np.isfinite(D) or D < 2:
            raise ValueError(f"depth: expected a number >= 2; got {depth!r}")
        if D == 2:
            return _exp_family(u0**2, v0**2, 4.0, zero, zero)
        if np.any(u0 <= 0) or np.any(v0 <= 0):
            raise ValueError('params0: "u" and "v" must be > 0 for parametrization="depth"')
        return _depth_family(u0, v0, D)
    if parametrization == "uu-vv":
        return _exp_family(u0**2, v0**2, 4.0, zero, zero)
    if parametrization == "uv":
        return _exp_family((u0 + v0) ** 2 / 4.0, (u0 - v0) ** 2 / 4.0, 2.0, zero, zero)
    lam = float(dense_scale)
    if not np.isfinite(lam):
        raise ValueError(f"dense_scale: expected a finite number; got {dense_scale!r}")
    w0 = as_vector('params0["w"]', params0.get("w", 0.0), d)
    return _exp_family(u0**2, v0**2, 4.0, lam * w0, np.full(d, lam * lam))


def link_inverse(
    link: DiagonalLink, beta: Float[ArrayLike, "*batch d"], *, iterations: int = 256
) -> Float[Array, "*batch d"]:
    """z = φ⁻¹(β) = ∇Q(β), coordinatewise, by bracketing and bisection (jit-able).

    The bracket [−2^k, 2^k] is doubled (≤ 64 times) until φ(lo) ≤ β ≤ φ(hi), then
    `iterations` bisection steps reach float precision. Used for the KKT check of an
    implicit-bias solution: P_null(X)∇Q(β∞) = 0.

    **Arguments:**

    - `link`: a [`DiagonalLink`][].
    - `beta`: values in the range of φ, shape `(..., d)` matching the link's `d`.
    - `iterations`: number of bisection steps.

    **Returns:**

    z with φ(z) = β, same shape as `beta` (NaN where β is outside the range of φ).
    """
    beta = jnp.asarray(beta)
    phi = link.phi
    one = jnp.ones_like(beta)

    def expand(_, lohi):
        lo, hi = lohi
        lo = jnp.where(phi(lo) > beta, 2.0 * lo, lo)
        hi = jnp.where(phi(hi) < beta, 2.0 * hi, hi)
        return lo, hi

    lo, hi = jax.lax.fori_loop(0, 64, expand, (-one, one))
    ok = (phi(lo) <= beta) & (phi(hi) >= beta)  # β inside the range of φ

    def bisect(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        below = phi(mid) < beta
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iterations, bisect, (lo, hi))
    z = 0.5 * (lo + hi)
    return jnp.where(ok, z, jnp.nan)


def link_potential(
    link: DiagonalLink, beta: Float[ArrayLike, "*batch d"]
) -> Float[Array, "*batch"]:
    """Implicit-bias potential Q(β) = Σ_i [β_i z_i − Φ(z_i)], z = φ⁻¹(β) (Q = Φ*).

    ∇Q = φ⁻¹. For `"uu-vv"` with u₀ = v₀ = α, Q = Q_α/4 − dα²/2 (Q_α of
    [`q_alpha`][]; the ¼ comes from the time scaling of L = ½‖r‖²).

    **Returns:**

    Q summed over the last axis, shape `(...)`.
    """
    beta = jnp.asarray(beta)
    z = link_inverse(link, beta)
    return jnp.sum(beta * z - link.Phi(z), axis=-1)


def q_alpha(beta: Float[ArrayLike, "*batch d"], alpha: float) -> Float[Array, "*batch"]:
    """Woodworth et al.'s potential Q_α(β) = α² Σ_i q(β_i/α²).

    q(s) = 2 − √(4 + s²) + s·arcsinh(s/2), evaluated as s·arcsinh(s/2) − s²/(2 + √(4 + s²))
    (no cancellation near 0). ∇Q_α(β) = arcsinh(β/(2α²)) (see [`q_alpha_grad`][]).
    Q_α/(α²ln(1/α²)) → ‖β‖₁ as α → 0 and Q_α ≈ ‖β‖²/(4α²) as α → ∞.

    **Arguments:**

    - `beta`: shape `(..., d)`.
    - `alpha`: initialisation scale α > 0.

    **Returns:**

    Q_α summed over the last axis, shape `(...)`.
    """
    alpha = as_positive_scalar("alpha", alpha)
    s = jnp.asarray(beta) / alpha**2
    q = s * jnp.arcsinh(s / 2) - s * s / (2 + jnp.sqrt(4 + s * s))
    return alpha**2 * jnp.sum(q, axis=-1)


def q_alpha_grad(beta: Float[ArrayLike, "*batch d"], alpha: float) -> Float[Array, "*batch d"]:
    """∇Q_α(β) = arcsinh(β/(2α²)) coordinatewise (= 4·φ⁻¹(β) for `"uu-vv"`, u₀ = v₀ = α)."""
    alpha = as_positive_scalar("alpha", alpha)
    return jnp.arcsinh(jnp.asarray(beta) / (2 * alpha**2))
