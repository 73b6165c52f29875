"""Elementwise activations, by name or as a callable, with their degree of positive
homogeneity (declared for callables, never inferred)."""

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
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


class Activation(eqx.Module):
    r"""An elementwise activation σ given as a callable, with its declared homogeneity.

    **Arguments:**

    - `fn`: σ, a JAX-traceable function applied elementwise (`jax.nn.gelu`, `jnp.sin`,
      a lambda); it must map an array to an array of the same shape and dtype.
    - `homogeneous`: declare σ positively 1-homogeneous, σ(cz) = cσ(z) for c > 0
      (equivalently σ′(z)z = σ(z)), as relu and leaky relu are. Only then do the models
      report the conserved quantities and the degree of homogeneity that follow from it
      (`TwoLayerNet.conserved`, `homogeneity_degree`) and accept σ in `HomogeneousNet`.
      dynsim does not check the declaration: a wrong one gives wrong invariants.

    σ′ for the hand-written pullbacks is JAX's forward-mode derivative of `fn` with a unit
    tangent (`value_and_derivative`), which for an elementwise σ is
    `jax.vmap(jax.grad(fn))` and uses the derivative rules `fn` defines (a
    `jax.custom_jvp` included: `jax.nn.relu′(0) = 0`).

    A plain callable passed as a model's `activation` is `Activation(fn)`
    (`homogeneous=False`).
    """

    fn: Callable = eqx.field(static=True)
    homogeneous: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if not callable(self.fn) or isinstance(self.fn, Activation):
            raise ValueError(
                f"activation: Activation needs a callable z -> sigma(z); got {self.fn!r}"
            )
        if not isinstance(self.homogeneous, bool):
            raise ValueError(
                f"homogeneous: expected True or False; got {self.homogeneous!r}"
            )

    def __call__(self, z):
        return self.fn(z)

    def value_and_derivative(self, z):
        """(σ(z), σ′(z)) elementwise, in one forward-mode pass."""
        return jax.jvp(self.fn, (z,), (jnp.ones_like(z),))


def as_activation(activation: Any) -> "str | Activation":
    """A model's `activation` argument normalized: a name of `ACTIVATIONS` (kept as the
    string), an `Activation`, or a callable (wrapped as `Activation(fn)`, not declared
    homogeneous). Anything else is a `ValueError` naming `activation`."""
    if isinstance(activation, str):
        check_activation(activation)
        return activation
    if isinstance(activation, Activation):
        return activation
    if callable(activation):
        return Activation(activation)
    raise ValueError(
        f"activation: expected one of {ACTIVATIONS}, a callable or a "
        f"dynsim.models.Activation; got {activation!r}"
    )


def check_activation_maps(activation: Any, shape: tuple, dtype: Any) -> None:
    """A callable activation must map an array of `shape` and `dtype` to one of the same
    shape and dtype (traced abstractly with `jax.eval_shape`; nothing compiles)."""
    if isinstance(activation, str):
        return
    arg = jax.ShapeDtypeStruct(shape, dtype)
    try:
        out = jax.eval_shape(activation.value_and_derivative, arg)
    except Exception as e:  # noqa: BLE001 - report any failure of the user's function
        raise ValueError(
            f"activation: calling {activation.fn!r} on an array of shape {shape} "
            f"({jnp.dtype(dtype)}) failed: {type(e).__name__}: {e}"
        ) from e
    for o in out:
        if not isinstance(o, jax.ShapeDtypeStruct) or (o.shape, o.dtype) != (shape, arg.dtype):
            got = (o.shape, o.dtype) if isinstance(o, jax.ShapeDtypeStruct) else o
            raise ValueError(
                f"activation: {activation.fn!r} must act elementwise, mapping shape {shape} "
                f"and dtype {arg.dtype} to the same; got {got}"
            )


def activation_fn(name: "str | Activation", leaky_slope: float = 0.01) -> Callable:
    """The activation σ called `name` (one of `ACTIVATIONS`), or an `Activation`'s fn."""
    if isinstance(name, Activation):
        return name.fn
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


def activation_and_derivative(name: "str | Activation", leaky_slope: float = 0.01) -> Callable:
    """z ↦ (σ(z), σ′(z)) for the activation `name`, elementwise, for hand-written pullbacks.

    An `Activation` gives its `value_and_derivative` (forward mode of its fn).

    σ′ is the derivative JAX's autodiff takes of `activation_fn(name)`, kink included:
    relu′(0) = 0 (`jax.nn.relu`), leaky relu′(0) = 1 (the `z >= 0` branch);
    tanh′ = 1 − tanh², softplus′ = sigmoid, sigmoid′ = s(1 − s), erf′ = (2/√π)e^{−z²},
    quadratic′ = 2z, linear′ = 1. Plain jnp, so JAX differentiates it again (relu′ and
    leaky relu′ have derivative 0, as autodiff's second derivative of σ).
    """
    if isinstance(name, Activation):
        return name.value_and_derivative
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


def activation_degree(name: "str | Activation") -> int | None:
    """k with σ(cz) = cᵏσ(z) for c > 0 (so σ′(z)z = kσ(z)), or None.

    The activation's degree; the model's is `homogeneity_degree` (`_homogeneity.py`).
    An `Activation` has degree 1 when declared `homogeneous`, else None.
    """
    if isinstance(name, Activation):
        return 1 if name.homogeneous else None
    return {"relu": 1, "leaky_relu": 1, "linear": 1, "quadratic": 2}.get(name)


def check_activation(name: str) -> None:
    if name not in ACTIVATIONS:
        raise ValueError(
            f"activation: unknown activation {name!r}; choose one of {ACTIVATIONS}"
        )
