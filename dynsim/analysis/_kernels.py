"""Neural tangent kernels of two-layer ReLU networks, analytic and empirical.

Network: f(x) = m^{−½} Σ_{r=1}^m a_r relu(w_rᵀx + b_r), w_r ~ N(0, I_d), b_r ~ N(0, 1),
a_r with E[a_r²] = 1 (e.g. ±1 or N(0, 1)). Its NTK is K(x, x') = ∇_θ f(x)·∇_θ f(x'),
the kernel of GF on L = ½‖f(X) − y‖² in the lazy regime: d/dt r = −K r.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PyTree

from ._validation import as_positive_scalar


def _angle_terms(nx, ny, dot):
    """cos θ (clipped) and sin θ from norms and inner products; 0-norm rows give cos θ = 0."""
    denom = nx * ny
    safe = jnp.where(denom > 0, denom, 1.0)
    cos = jnp.clip(jnp.where(denom > 0, dot / safe, 0.0), -1.0, 1.0)
    theta = jnp.arccos(cos)
    return cos, theta


def relu_gaussian_correlation(
    w: Float[ArrayLike, "*batch d"], v: Float[ArrayLike, "*batch d"]
) -> Float[Array, "*batch"]:
    """E_{x~N(0, I)}[relu(wᵀx) relu(vᵀx)] = ‖w‖‖v‖(sin θ + (π − θ)cos θ)/(2π).

    θ = ∠(w, v) (Cho & Saul's arc-cosine kernel of order 1, halved). Broadcasts over
    leading axes: for the Gram matrix between neuron sets use `w[:, None]`, `v[None]`.
    Zero vectors give 0. Pure jax (jit / vmap / grad; the gradient is not defined at
    exactly parallel w, v).

    **Arguments:**

    - `w`, `v`: weight vectors `(..., d)`, broadcastable.

    **Returns:**

    The correlation, shape `(...)`.
    """
    w, v = jnp.asarray(w), jnp.asarray(v)
    nw = jnp.linalg.norm(w, axis=-1)
    nv = jnp.linalg.norm(v, axis=-1)
    cos, theta = _angle_terms(nw, nv, jnp.sum(w * v, axis=-1))
    sin = jnp.sin(theta)
    return nw * nv * (sin + (jnp.pi - theta) * cos) / (2 * jnp.pi)


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

    K = K_w (+ K_a). The empirical NTK of a width-m network deviates from K by
    O(m^{−½}) entrywise.

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
    n1 = jnp.linalg.norm(X1, axis=1)[:, None]
    n2 = jnp.linalg.norm(X2, axis=1)[None, :]
    cos, theta = _angle_terms(n1, n2, dot)
    K = dot * (jnp.pi - theta) / (2 * jnp.pi)
    if output_layer:
        K = K + n1 * n2 * (jnp.sin(theta) + (jnp.pi - theta) * cos) / (2 * jnp.pi)
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
