"""Type aliases shared across dynsim (jaxtyping, shapes in the names).

Conventions: `n` samples, `d` input dimension, `m` output dimension, `S` seeds,
`T` save times.
"""

from typing import Any, Callable, TypeAlias

from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, PyTree

Params: TypeAlias = PyTree[Float[Array, "..."]]
"""Parameters of one model instance: a PyTree (dict) of floating arrays."""

BatchedParams: TypeAlias = PyTree[Float[Array, "S ..."]]
"""Parameters with a leading seed axis."""

Inputs: TypeAlias = Float[Array, "n d"]
Targets: TypeAlias = Float[Array, "n *m"]
Predictions: TypeAlias = Float[Array, "n *m"]
Scalar: TypeAlias = Float[Array, ""]
Times: TypeAlias = Float[Array, " T"]
Key: TypeAlias = PRNGKeyArray
Metric: TypeAlias = Callable[[Params], Any]

__all__ = [
    "Array",
    "ArrayLike",
    "BatchedParams",
    "Float",
    "Inputs",
    "Int",
    "Key",
    "Metric",
    "Params",
    "Predictions",
    "PyTree",
    "Scalar",
    "Targets",
    "Times",
]
