r"""Extreme eigenvalues of the empirical neural tangent kernel K = J Jᵀ."""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from .._custom_types import Array, Params, Scalar
from ._base import AbstractMetric, trained_flat


def ntk_matrix(problem: Any, params: Params) -> Array:
    r"""K = J Jᵀ, (N, N) with N = n·prod(out_shape): J = ∂f(θ; X)/∂θ, the Jacobian of
    the stacked predictions on the n training samples (rows sample-major) in the
    trained parameters (`trained_flat`). Reverse mode when N ≤ d, forward otherwise."""
    flat, rebuild = trained_flat(problem.model, params)
    f = lambda v: problem.model.apply(rebuild(v), problem.X).reshape(-1)
    n_out = jax.eval_shape(f, flat).shape[0]
    J = (jax.jacrev if n_out <= flat.shape[0] else jax.jacfwd)(f)(flat)
    return J @ J.T


@dataclasses.dataclass(frozen=True)
class NTKEig(AbstractMetric):
    """The smallest (`which="min"`) or largest eigenvalue of K = J Jᵀ."""

    which: str

    def __call__(self, params: Params, problem: Any) -> Scalar:
        eig = jnp.linalg.eigvalsh(ntk_matrix(problem, params))
        return eig[0] if self.which == "min" else eig[-1]


_NTK_DOC = r"""The metric {which} eigenvalue of the empirical NTK K = J Jᵀ at one seed's θ.

    J = ∂f(θ; X)/∂θ is the (N × d) Jacobian of the predictions on the n training
    samples (N = n·prod(out_shape), sample-major) in the trained parameters, so
    K_{{(i,a),(j,b)}} = ⟨∂f_a(x_i)/∂θ, ∂f_b(x_j)/∂θ⟩, without a 1/n: the linearized
    flow is ḟ = −K ∂L/∂f (for `reduction="mean"` that gradient carries the 1/n).
    Eigenvalues by `jnp.linalg.eigvalsh` of K (N small). {note}

    **Returns:** a metric `fn(params, problem) -> scalar`.
    """


def ntk_min_eig() -> NTKEig:
    return NTKEig("min")


def ntk_max_eig() -> NTKEig:
    return NTKEig("max")


ntk_min_eig.__doc__ = _NTK_DOC.format(
    which="λ_min(K), the smallest",
    note="With N > d, K has rank ≤ d and λ_min is 0 up to rounding (it may be a tiny "
    "negative number).",
)
ntk_max_eig.__doc__ = _NTK_DOC.format(which="λ_max(K), the largest", note="")
