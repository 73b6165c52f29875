"""Neural tangent kernels of two-layer ReLU networks, analytic and empirical.

Network: f(x) = m^{−½} Σ_{r=1}^m a_r relu(w_rᵀx + b_r), w_r ~ N(0, I_d), b_r ~ N(0, 1),
a_r with E[a_r²] = 1 (e.g. ±1 or N(0, 1)). Its NTK is K(x, x') = ∇_θ f(x)·∇_θ f(x'),
the kernel of GF on L = ½‖f(X) − y‖² in the lazy regime: d/dt r = −K r.
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PyTree

from ._validation import as_positive_scalar


def _safe_sqrt(x: Array) -> Array:
    """√x for x ≥ 0, with gradient 0 (not NaN) at x = 0; negative rounding noise gives 0."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def _safe_norm(x: Array) -> Array:
    """‖x‖ over the last axis, with gradient 0 (not NaN) at x = 0."""
    return _safe_sqrt(jnp.sum(x * x, axis=-1))


def _unit(x: Array, nx: Array) -> Array:
    """x/‖x‖ over the last axis; zero rows stay zero."""
    return x / jnp.where(nx > 0, nx, 1.0)[..., None]


def _pi_minus_angle(r: Array, h: Array, flip: Array, zero: Array) -> Array:
    """ψ = π − θ, θ = ∠(a, b), from the short chord between the unit vectors â, b̂.

    With φ = θ/2, p = ‖â − b̂‖ = 2 sin φ and q = ‖â + b̂‖ = 2 cos φ, so θ = 2·atan2(p, q)
    and ψ = π − θ = 2·atan2(q, p). `r` is the shorter of the two, formed from the vectors:
    r = p, or r = q where `flip` (âᵀb̂ < 0); the longer one is √(h − r²) by the
    parallelogram law p² + q² = h = 2(‖â‖² + ‖b̂‖²), without cancellation since
    r² ≤ h/2. ψ (like θ) is then accurate to a few ulps of π for every angle; near
    θ = π its relative error, ~eps/ψ, is that of rounding â and b̂ (the conditioning).
    π − arccos(âᵀb̂) instead loses half the digits near θ = 0 and θ = π (an error ε
    in the cosine gives an error √(2ε) in the angle). Where `zero` (both vectors zero),
    ψ = π/2 (the convention cos θ = 0, which one zero vector gives by itself).
    """
    other = _safe_sqrt(h - r * r)
    p = jnp.where(zero, 1.0, jnp.where(flip, other, r))
    q = jnp.where(zero, 1.0, jnp.where(flip, r, other))
    return 2.0 * jnp.arctan2(q, p)


# J(ψ) = sin ψ − ψ cos ψ = ψ³ Σ_{k≥1} (−1)^{k+1} 2k/(2k+1)! ψ^{2(k−1)}: Taylor
# coefficients, highest first (Horner in ψ²). For ψ ≤ ½ the first omitted term (k = 9)
# is < 1e-20 of the sum (≈ ψ³/3).
_J_SERIES = tuple(
    (-1) ** (k + 1) * 2 * k / math.factorial(2 * k + 1) for k in range(8, 0, -1)
)


def _arc_cosine_1(psi: Array) -> Array:
    """J(ψ) = sin ψ − ψ cos ψ = sin θ + (π − θ)cos θ for ψ = π − θ ∈ [0, π].

    The angular factor of the order-1 arc-cosine kernel. Near θ = π (ψ → 0) the two
    terms cancel to ψ³/3; there (ψ ≤ ½) the Taylor series is summed instead, so J
    keeps full relative accuracy for every angle.
    """
    small = psi <= 0.5
    ps = jnp.where(small, psi, 0.0)
    ps2 = ps * ps
    series = jnp.zeros_like(ps)
    for c in _J_SERIES:
        series = series * ps2 + c
    direct = jnp.sin(psi) - psi * jnp.cos(psi)
    return jnp.where(small, series * ps2 * ps, direct)


def relu_gaussian_correlation(
    w: Float[ArrayLike, "*#batch d"], v: Float[ArrayLike, "*#batch d"]
) -> Float[Array, "*#batch"]:
    """E_{x~N(0, I)}[relu(wᵀx) relu(vᵀx)] = ‖w‖‖v‖(sin θ + (π − θ)cos θ)/(2π).

    θ = ∠(w, v) (Cho & Saul's arc-cosine kernel of order 1, halved), computed stably
    as θ = 2·atan2(‖ŵ − v̂‖, ‖ŵ + v̂‖) and π − θ = 2·atan2(‖ŵ + v̂‖, ‖ŵ − v̂‖), with the
    angular factor summed as a series near θ = π: accurate to a few ulps for every
    angle (of ‖w‖‖v‖ for nearly antiparallel w, v, where the value is ~(π − θ)³ and
    its relative condition ~1/(π − θ)); arccos of the cosine lost half the digits
    near θ = 0 and θ = π. Broadcasts over leading axes (numpy rules, also between
    different numbers of axes): for the Gram matrix between neuron sets use
    `w[:, None]`, `v[None]`. Zero vectors give 0. Pure jax
    (jit / vmap / grad; at exactly parallel w, v the angle's gradient is taken as 0,
    which is the gradient of the correlation there since its θ-derivative
    −‖w‖‖v‖(π − θ)sin θ/(2π) vanishes).

    **Arguments:**

    - `w`, `v`: weight vectors `(..., d)`, broadcastable.

    **Returns:**

    The correlation, shape `(...)` (the broadcast leading shape).
    """
    w, v = jnp.broadcast_arrays(jnp.asarray(w), jnp.asarray(v))
    nw = _safe_norm(w)
    nv = _safe_norm(v)
    wh, vh = _unit(w, nw), _unit(v, nv)
    flip = jnp.sum(wh * vh, axis=-1) < 0
    r = _safe_norm(wh - jnp.where(flip, -1.0, 1.0)[..., None] * vh)
    h = 2.0 * (jnp.sum(wh * wh, axis=-1) + jnp.sum(vh * vh, axis=-1))
    psi = _pi_minus_angle(r, h, flip, (nw == 0) & (nv == 0))
    return nw * nv * _arc_cosine_1(psi) / (2 * jnp.pi)


# Elements of the (rows, n2, d) difference blocks that relu_ntk forms at a time.
_BLOCK_ELEMENTS = 2**21


def _pairwise_short_chords(A: Array, B: Array, flip: Array) -> Array:
    """r_ij = ‖a_i − σ_ij b_j‖, σ_ij = −1 where `flip` `(n1, n2)` else +1.

    For rows of A `(n1, d)`, B `(n2, d)`; formed from the differences (the Gram
    matrix's rounding is what loses the short chord), in blocks of rows of A so that
    at most `_BLOCK_ELEMENTS` difference entries are held at once.
    """
    n2, d = B.shape

    def row(a_flip):
        a, f = a_flip
        return _safe_norm(a[None, :] - jnp.where(f, -1.0, 1.0)[:, None] * B)

    rows = max(1, min(A.shape[0], _BLOCK_ELEMENTS // max(1, n2 * d)))
    return jax.lax.map(row, (A, flip), batch_size=rows)


def relu_ntk(
    X1: Float[ArrayLike, "n1 d"],
    X2: Float[ArrayLike, "n2 d"] | None = None,
    *,
    bias: bool = False,
    output_layer: bool = False,
    bias_scale: float = 1.0,
) -> Float[Array, "n1 n2"]:
    """Infinite-width NTK of f(x) = m^{−½} Σ_r a_r relu(w_rᵀx̃), x̃ = x or (x, s).

    With x̃ = (x, s) if `bias` (s = `bias_scale`, b_r ~ N(0, 1), so bias gradients are
    included) and θ = ∠(x̃, x̃′):

    - hidden layer (w, b trained, a fixed, E[a²] = 1): K_w = x̃ᵀx̃′ (π − θ)/(2π)
      (Du et al. 2019: H∞ᵢⱼ = xᵢᵀxⱼ (π − arccos(xᵢᵀxⱼ))/(2π) for unit-norm x);
    - output layer (a trained, if `output_layer`): K_a = ‖x̃‖‖x̃′‖(sin θ + (π − θ)cos θ)/(2π),
      i.e. E[relu(wᵀx̃)relu(wᵀx̃′)] ([`relu_gaussian_correlation`][]).

    K = K_w (+ K_a); on the diagonal K(x, x) = ‖x̃‖²/2 (+ ‖x̃‖²/2). The empirical NTK of
    a width-m network deviates from K by O(m^{−½}) entrywise.

    The angles are formed from the unit vectors, θ = 2·atan2(‖x̂ − x̂′‖, ‖x̂ + x̂′‖) and
    π − θ = 2·atan2(‖x̂ + x̂′‖, ‖x̂ − x̂′‖), not as arccos of the cosine (which is off
    by ~√eps ≈ 1e-8 near θ = 0, i.e. on the diagonal and for nearly parallel inputs,
    and near θ = π): entries are accurate to a few ulps, relative where θ is not
    close to π, and of ‖x̃‖‖x̃′‖ near θ = π, where K is small and as ill-conditioned
    (relative condition ~1/(π − θ)). This needs the n1 × n2 × d differences of the
    shorter chord, formed in blocks of rows (16 MB at a time).

    **Arguments:**

    - `X1`: inputs `(n1, d)`; `X2`: inputs `(n2, d)` (default `X1`).
    - `bias`: include hidden biases (augment x̃ = (x, bias_scale)).
    - `output_layer`: include the contribution of training the outer weights a.
    - `bias_scale`: the constant s appended to x when `bias`, i.e. the network computes
      relu(w_rᵀx + s·b_r) with b_r ~ N(0, 1) (default s = 1).

    **Returns:**

    The kernel matrix `(n1, n2)`.
    """
    X1 = jnp.asarray(X1)
    X2 = X1 if X2 is None else jnp.asarray(X2)
    if X1.ndim != 2:
        raise ValueError(f"X1: expected shape (n1, d); got {X1.shape}")
    if X2.ndim != 2 or X2.shape[1] != X1.shape[1]:
        raise ValueError(f"X2: expected shape (n2, {X1.shape[1]}); got {X2.shape}")
    if bias:
        s = as_positive_scalar("bias_scale", bias_scale)
        X1 = jnp.concatenate([X1, jnp.full((X1.shape[0], 1), s, X1.dtype)], axis=1)
        X2 = jnp.concatenate([X2, jnp.full((X2.shape[0], 1), s, X2.dtype)], axis=1)
    dot = X1 @ X2.T
    n1, n2 = _safe_norm(X1), _safe_norm(X2)
    A, B = _unit(X1, n1), _unit(X2, n2)
    flip = dot < 0
    r = _pairwise_short_chords(A, B, flip)
    h = 2.0 * (jnp.sum(A * A, axis=1)[:, None] + jnp.sum(B * B, axis=1)[None, :])
    n1, n2 = n1[:, None], n2[None, :]
    psi = _pi_minus_angle(r, h, flip, (n1 == 0) & (n2 == 0))
    K = dot * psi / (2 * jnp.pi)
    if output_layer:
        K = K + n1 * n2 * _arc_cosine_1(psi) / (2 * jnp.pi)
    return K


def _flat_jacobian(apply_fn, params, X):
    out = apply_fn(params, X)
    jac = jax.jacrev(apply_fn)(params, X)
    leaves = jax.tree_util.tree_leaves(jac)
    rows = int(np.prod(out.shape))
    return jnp.concatenate([leaf.reshape(rows, -1) for leaf in leaves], axis=1)


def empirical_ntk(
    apply_fn: Callable[[PyTree, Array], Array],
    params: PyTree,
    X: Float[ArrayLike, "n d"],
    X2: Float[ArrayLike, "n2 d"] | None = None,
) -> Float[Array, "N N2"]:
    """Empirical NTK K = J(X) J(X2)ᵀ, J = ∂ vec f(X)/∂θ with θ all leaves of `params`.

    `apply_fn(params, X)` must return the batched outputs `(n,)` or `(n, m)`; outputs
    are flattened row-major (sample-major: index i·m + k), so K has shape `(n, n2)` or
    `(n·m, n2·m)`. Under GF on L = ½‖f(X) − y‖², d/dt vec r = −K vec r. Uses
    `jax.jacrev`; differentiate only the leaves you train (pass the trained sub-tree
    and close over the rest).

    **Arguments:**

    - `apply_fn`: `(params, X) → outputs`.
    - `params`: PyTree of arrays.
    - `X`: inputs; `X2`: second set of inputs (default `X`).

    **Returns:**

    The kernel matrix.
    """
    X = jnp.asarray(X)
    J1 = _flat_jacobian(apply_fn, params, X)
    J2 = J1 if X2 is None else _flat_jacobian(apply_fn, params, jnp.asarray(X2))
    return J1 @ J2.T


def _eigh_pinv_apply(K, y, rcond):
    evals, evecs = jnp.linalg.eigh(K)
    if rcond is None:
        rcond = K.shape[0] * jnp.finfo(K.dtype).eps
    cut = rcond * jnp.max(jnp.abs(evals))
    inv = jnp.where(jnp.abs(evals) > cut, 1.0 / jnp.where(jnp.abs(evals) > cut, evals, 1.0), 0.0)
    coef = evecs.T @ y
    coef = (inv[:, None] * coef) if y.ndim == 2 else inv * coef
    return evecs @ coef


def kernel_interpolator(
    K: Float[ArrayLike, "n n"],
    y: Float[ArrayLike, "n *m"],
    *,
    rcond: float | None = None,
) -> Float[Array, "n *m"]:
    """Coefficients c = K⁺y of the kernel (min-RKHS-norm) interpolator f(x) = k(x, X)c.

    This is the lazy-regime GF limit f∞ = f₀ + K(·, X)K⁻¹(y − f₀(X)) when applied to
    y − f₀(X). K symmetric PSD; solved by `eigh` with eigenvalues below
    `rcond`·λ_max (default n·eps) discarded.

    **Arguments:**

    - `K`: train Gram matrix `(n, n)`.
    - `y`: targets `(n,)` or `(n, m)`.
    - `rcond`: relative eigenvalue cutoff.

    **Returns:**

    c, same shape as `y`.
    """
    K = jnp.asarray(K)
    y = jnp.asarray(y)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K: expected a square matrix; got shape {K.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != K.shape[0]:
        raise ValueError(f"y: expected shape ({K.shape[0]},) or ({K.shape[0]}, m); got {y.shape}")
    return _eigh_pinv_apply(0.5 * (K + K.T), y, rcond)


def kernel_predict(
    K_test: Float[ArrayLike, "n_test n"], coef: Float[ArrayLike, "n *m"]
) -> Float[Array, "n_test *m"]:
    """Kernel predictions f(x) = Σ_j K(x, x_j) c_j, i.e. `K_test @ coef`.

    **Arguments:**

    - `K_test`: cross Gram matrix k(X_test, X) `(n_test, n)`.
    - `coef`: coefficients from [`kernel_interpolator`][].

    **Returns:**

    Predictions `(n_test,)` or `(n_test, m)`.
    """
    K_test, coef = jnp.asarray(K_test), jnp.asarray(coef)
    if K_test.ndim != 2 or K_test.shape[1] != coef.shape[0]:
        raise ValueError(
            f"K_test: expected shape (n_test, {coef.shape[0]}); got {K_test.shape}"
        )
    return K_test @ coef
