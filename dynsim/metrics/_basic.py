"""Norms of the parameters: ‖θ‖₂ and ‖θ − θ_ref‖₂."""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import concrete_value
from .._custom_types import Params, Scalar
from .._problem import tree_norm
from ._base import AbstractMetric


@dataclasses.dataclass(frozen=True)
class ParamNorm(AbstractMetric):
    """‖θ‖₂ = (Σ over all leaves and entries θ_i²)^{1/2}."""

    def __call__(self, params: Params, problem: Any) -> Scalar:
        return tree_norm(params)


@dataclasses.dataclass(frozen=True, eq=False)
class DistanceTo(AbstractMetric):
    """‖θ − θ_ref‖₂ over all leaves (θ_ref cast to the parameters' dtype)."""

    reference: Any

    def check_params(self, params_like):
        shapes = lambda t: jax.tree.map(lambda x: tuple(np.shape(x)), t)
        if jax.tree.structure(self.reference) != jax.tree.structure(params_like) or (
            shapes(self.reference) != shapes(params_like)
        ):
            raise ValueError(
                f"reference: must have the parameters' structure and shapes "
                f"{shapes(params_like)}; got {shapes(self.reference)}"
            )

    def __call__(self, params: Params, problem: Any) -> Scalar:
        self.check_params(params)
        diff = jax.tree.map(lambda p, r: p - jnp.asarray(r, p.dtype), params, self.reference)
        return tree_norm(diff)


def param_norm() -> ParamNorm:
    """The metric ‖θ‖₂: the Euclidean norm of all parameters together (every leaf)."""
    return ParamNorm()


def distance_to(reference: Params) -> DistanceTo:
    """The metric ‖θ − θ_ref‖₂ over all leaves, e.g. the distance travelled from a fixed
    θ₀ or to a known solution.

    **Arguments:** `reference`: one seed's parameters θ_ref (a PyTree of finite real
    arrays of the parameters' structure and shapes; checked against them before
    anything compiles).

    **Raises:** `ValueError` naming `reference` if it has no leaves, a leaf that is
    not a finite real array, or (in `simulate`) another structure or shape than the
    parameters.
    """
    leaves = jax.tree.leaves(reference)
    if not leaves:
        raise ValueError(f"reference: expected a PyTree of arrays like the parameters; got {reference!r}")
    for x in leaves:
        arr = concrete_value("reference", x)
        if arr is not None and not np.all(np.isfinite(arr)):
            raise ValueError("reference: must be finite")
    return DistanceTo(reference)
