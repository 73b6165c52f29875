"""The interface of the built-in metrics, and flat coordinates of the trained parameters."""

import abc
from collections.abc import Callable
from typing import Any

import jax
from jax.flatten_util import ravel_pytree

from .._custom_types import Array, Params
from ..losses._regularized import trained


class AbstractMetric(abc.ABC):
    """A metric `fn(params, problem)` of one seed, with an optional check of one seed's
    parameters (`jax.ShapeDtypeStruct`s) before anything compiles: `check_params`
    raises a `ValueError` naming the metric's own argument (`validate_simulation`
    calls it, then traces the metric abstractly)."""

    @abc.abstractmethod
    def __call__(self, params: Params, problem: Any) -> Any: ...

    def check_params(self, params_like: Any) -> None:
        """Nothing to check by default."""
        return None


def trained_flat(model: Any, params: Params) -> tuple[Array, Callable[[Array], Params]]:
    """(v, rebuild): the trained leaves of `params` as one vector v ∈ ℝᵈ (`ravel_pytree`
    order), and `rebuild(v)`, the parameters with those leaves replaced by v's and the
    untrained ones (`losses._regularized.trained`: a `TwoLayerNet(train_outer=False)`'s
    outer weights) as they are."""
    leaves, treedef = jax.tree.flatten(params)
    mask = trained(model, params)
    flat, unravel = ravel_pytree([x for x, t in zip(leaves, mask) if t])

    def rebuild(v):
        it = iter(unravel(v))
        return jax.tree.unflatten(treedef, [next(it) if t else x for x, t in zip(leaves, mask)])

    return flat, rebuild
