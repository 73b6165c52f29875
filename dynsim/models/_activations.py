"""Elementwise activations by name, with their degree of positive homogeneity."""

import math
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


def activation_and_derivative(name: str, leaky_slope: float = 0.01) -> Callable:
    """z ↦ (σ(z), σ′(z)) for the activation `name`, elementwise, for hand-written pullbacks.

    σ′ is the derivative JAX's autodiff takes of `activation_fn(name)`, kink included:
    relu′(0) = 0 (`jax.nn.relu`), leaky relu′(0) = 1 (the `z >= 0` branch);
    tanh′ = 1 − tanh², softplus′ = sigmoid, sigmoid′ = s(1 − s), erf′ = (2/√π)e^{−z²},
    quadratic′ = 2z, linear′ = 1. Plain jnp, so JAX differentiates it again (relu′ and
    leaky relu′ have derivative 0, as autodiff's second derivative of σ).
    """
    if name == "relu":
        return lambda z: (jax.nn.relu(z), jnp.where(z > 0, 1.0, 0.0).astype(z.dtype))
    if name == "leaky_relu":
        return lambda z: (
            jnp.where(z >= 0, z, leaky_slope * z),
            jnp.where(z >= 0, 1.0, leaky_slope).astype(z.dtype),
        )
    if name == "tanh":

        def tanh(z):
            t = jnp.tanh(z)
            return t, 1 - t * t

        return tanh
    if name == "softplus":
        return lambda z: (jax.nn.softplus(z), jax.nn.sigmoid(z))
    if name == "sigmoid":

        def sigmoid(z):
            s = jax.nn.sigmoid(z)
            return s, s * (1 - s)

        return sigmoid
    if name == "erf":
        return lambda z: (jsp.erf(z), (2 / math.sqrt(math.pi)) * jnp.exp(-z * z))
    if name == "quadratic":
        return lambda z: (jnp.square(z), 2 * z)
    if name == "linear":
        return lambda z: (z, jnp.ones_like(z))
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
