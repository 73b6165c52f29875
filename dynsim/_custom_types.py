"""Type aliases shared across dynsim (jaxtyping, shapes in the names).

Conventions: `n` samples, `d` input dimension, `m` output dimension, `S` seeds,
`T` save times.
"""

from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, PyTree, UInt32
from jaxtyping import Key as JaxKey

Params: TypeAlias = PyTree[Float[Array, "..."]]
"""Parameters of one model instance: a PyTree (dict) of floating arrays."""

BatchedParams: TypeAlias = PyTree[Float[Array, "S ..."]]
"""Parameters with a leading seed axis."""

AnyArray: TypeAlias = Array | np.ndarray
"""A device (JAX) or host (NumPy) array: a `SimulationResult` holds NumPy arrays."""

HostBatchedParams: TypeAlias = PyTree[Float[AnyArray, "S ..."]]
"""Parameters with a leading seed axis, on the device or the host."""

RealScalarLike: TypeAlias = bool | int | float | np.integer | np.floating | Array | np.ndarray
"""A real number given as a Python or NumPy scalar or a 0-d (possibly traced) array."""

Inputs: TypeAlias = Float[Array, "n d"]
Targets: TypeAlias = Float[Array, "n *m"]
Predictions: TypeAlias = Float[Array, "n *m"]
Scalar: TypeAlias = Float[Array, ""]
Times: TypeAlias = Float[Array, " T"]
Key: TypeAlias = PRNGKeyArray
BatchedKey: TypeAlias = JaxKey[Array, " S"] | UInt32[Array, "S 2"]
"""One PRNG key per seed (typed keys, or legacy uint32 keys)."""
Metric: TypeAlias = Callable[[Params], Any]

__all__ = [
    "AnyArray",
    "Array",
    "ArrayLike",
    "BatchedKey",
    "BatchedParams",
    "Float",
    "HostBatchedParams",
    "Inputs",
    "Int",
    "Key",
    "Metric",
    "Params",
    "Predictions",
    "PyTree",
    "RealScalarLike",
    "Scalar",
    "Targets",
    "Times",
]
