"""Elementwise activations by name, with their degree of positive homogeneity."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp

ACTIVATIONS = (
    "relu",
    "leaky_relu",
    "tanh",
    "softplus",
    "sigmoid",
    "erf",
    "quadratic",
    "linear",
)


def activation_fn(name: str, leaky_slope: float = 0.01) -> Callable:
    """The activation σ called `name` (one of `ACTIVATIONS`)."""
    if name == "relu":
        return jax.nn.relu
    if name == "leaky_relu":
        return lambda z: jnp.where(z >= 0, z, leaky_slope * z)
    if name == "tanh":
        return jnp.tanh
    if name == "softplus":
        return jax.nn.softplus
    if name == "sigmoid":
        return jax.nn.sigmoid
    if name == "erf":
        return jsp.erf
    if name == "quadratic":
        return jnp.square
    if name == "linear":
        return lambda z: z
    raise ValueError(f"activation: unknown activation {name!r}; choose one of {ACTIVATIONS}")


def activation_degree(name: str) -> int | None:
    """k with σ(cz) = cᵏσ(z) for c > 0 (so σ′(z)z = kσ(z)), or None.

    The activation's degree; the model's is `homogeneity_degree` (`_homogeneity.py`).
    """
    return {"relu": 1, "leaky_relu": 1, "linear": 1, "quadratic": 2}.get(name)


def check_activation(name: str) -> None:
    if name not in ACTIVATIONS:
        raise ValueError(
            f"activation: unknown activation {name!r}; choose one of {ACTIVATIONS}"
        )
