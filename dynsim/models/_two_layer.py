"""Two-layer networks f(x) = s·Σ_j a_j σ(w_jᵀx + b_j) + c."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .._checks import check_count
from .._custom_types import Array, Inputs, Key, Params, Predictions
from ._activations import (
    Activation,
    activation_and_derivative,
    activation_degree,
    activation_fn,
    as_activation,
    check_activation_maps,
)
from ._base import AbstractModel, cast_like, default_dtype, gaussian_like, per_layer

SCALINGS = {"ntk": -0.5, "mean-field": -1.0, "standard": 0.0}


class TwoLayerNet(AbstractModel):
    r"""Two-layer network f(x) = s·Σ_{j=1}^m a_j σ(w_jᵀx + b_j) + c.

    Parameters: `{"w": (m, d), "a": (m,)}`, plus `"b": (m,)` when `bias=True` and
    `"c": ()` when `output_bias=True`.

    **Arguments:**

    - `in_dim`: input dimension d.  `width`: number of hidden neurons m.
    - `activation`: one of `relu, leaky_relu, tanh, softplus, sigmoid, erf, quadratic,
      linear` (`leaky_slope` for `leaky_relu`), or any elementwise callable σ
      (`jax.nn.gelu`), or `Activation(fn, homogeneous=True)` to declare a callable
      positively 1-homogeneous. A callable's σ′ in the hand-written pullback is JAX's
      derivative of it (`Activation.value_and_derivative`).
    - `bias`, `output_bias`: hidden biases b_j, output bias c.
    - `train_outer`: if False the outer weights a (and c) stay at their initial values
      (their gradient is stopped).
    - `scaling`: s = m^{-1/2} (`"ntk"`), m^{-1} (`"mean-field"`) or 1 (`"standard"`).

    For a k-homogeneous σ (relu, leaky relu, linear: k = 1; quadratic: k = 2; a callable
    declared `Activation(fn, homogeneous=True)`: k = 1) and a trainable outer layer,
    gradient flow conserves k·a_j² − ‖w_j‖² − b_j² per neuron; for any other σ
    `conserved` is empty.
    """

    in_dim_: int
    width_: int
    activation: str | Activation = "relu"
    bias: bool = True
    output_bias: bool = False
    train_outer: bool = True
    scaling: str = "ntk"
    leaky_slope: float = 0.01

    def __init__(
        self,
        in_dim: int,
        width: int,
        activation: str | Callable | Activation = "relu",
        *,
        bias: bool = True,
        output_bias: bool = False,
        train_outer: bool = True,
        scaling: str = "ntk",
        leaky_slope: float = 0.01,
    ):
        check_count("in_dim", in_dim)
        check_count("width", width)
        activation = as_activation(activation)
        if scaling not in SCALINGS:
            raise ValueError(f"scaling: unknown {scaling!r}; choose one of {tuple(SCALINGS)}")
        self.in_dim_ = int(in_dim)
        self.width_ = int(width)
        self.activation = activation
        self.bias = bool(bias)
        self.output_bias = bool(output_bias)
        self.train_outer = bool(train_outer)
        self.scaling = scaling
        self.leaky_slope = leaky_slope

    @property
    def in_dim(self) -> int:
        return self.in_dim_

    @property
    def width(self) -> int:
        return self.width_

    @property
    def out_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def layers(self) -> tuple[str, ...]:
        return ("inner", "outer")

    def check_data(self, X: Any, y: Any) -> None:
        """`AbstractModel.check_data`, and a callable activation must act elementwise on
        the (m, n) pre-activations (traced abstractly; a `ValueError` naming
        `activation`)."""
        super().check_data(X, y)
        check_activation_maps(
            self.activation, (self.width_, jnp.shape(X)[0]), jnp.result_type(X)
        )

    @property
    def scale(self) -> float:
        return float(self.width_) ** SCALINGS[self.scaling]

    def param_shapes(self, dtype: Any = None) -> dict[str, Any]:
        dtype = default_dtype(dtype)
        m, d = self.width_, self.in_dim_
        shapes = {"w": jax.ShapeDtypeStruct((m, d), dtype)}
        if self.bias:
            shapes["b"] = jax.ShapeDtypeStruct((m,), dtype)
        shapes["a"] = jax.ShapeDtypeStruct((m,), dtype)
        if self.output_bias:
            shapes["c"] = jax.ShapeDtypeStruct((), dtype)
        return shapes

    def gaussian(self, key: Key, std: Any, dtype: Any = None) -> Params:
        """w, b i.i.d. N(0, std_inner²); a, c i.i.d. N(0, std_outer²)."""
        s_in, s_out = per_layer(std, 2)
        shapes = self.param_shapes(dtype)
        stds = {"w": s_in, "b": s_in, "a": s_out, "c": s_out}
        return gaussian_like(key, shapes, {k: stds[k] for k in shapes})

    def hidden(self, params: Params, X: Inputs) -> Array:
        """Pre-activations z_ij = w_jᵀx_i + b_j, shape (n, m)."""
        return self._hidden_t(params, X).T

    def _hidden_t(self, params: Params, X: Inputs) -> Array:
        # Feature-major (m, n) = w @ Xᵀ: under `vmap` over seeds one plain matrix product
        # for a whole block of seeds, no transposed copy of w (see `AbstractLayeredNet.forward`).
        z = params["w"] @ X.T
        return z + params["b"][:, None] if self.bias else z

    def apply(self, params: Params, X: Inputs) -> Predictions:
        sigma = activation_fn(self.activation, self.leaky_slope)
        a = params["a"]
        c = params.get("c", 0.0)
        if not self.train_outer:
            a, c = jax.lax.stop_gradient(a), jax.lax.stop_gradient(c)
        return self.scale * (a @ sigma(self._hidden_t(params, X))) + c

    def apply_and_pullback(
        self, params: Params, X: Inputs
    ) -> tuple[Predictions, Callable[[Predictions], Params]]:
        r"""Predictions and their hand-written pullback (`AbstractModel.apply_and_pullback`).

        With Z = wXᵀ + b1ᵀ (m, n) and a cotangent g (n,) of the predictions:

            ∂L/∂a = s·σ(Z)g,   ∂L/∂c = 1ᵀg,   Δ = s·(a gᵀ) ⊙ σ′(Z),
            ∂L/∂w = ΔX,   ∂L/∂b = Δ1,

        and ∂L/∂a = ∂L/∂c = 0 when `train_outer=False` (a, c enter through
        `stop_gradient`, as in `apply`).
        """
        if self._apply_overridden(TwoLayerNet):
            return AbstractModel.apply_and_pullback(self, params, X)
        act = activation_and_derivative(self.activation, self.leaky_slope)
        a = params["a"]
        c = params.get("c", 0.0)
        if not self.train_outer:
            a, c = jax.lax.stop_gradient(a), jax.lax.stop_gradient(c)
        h, slope = act(self._hidden_t(params, X))
        s = self.scale
        pred = s * (a @ h) + c

        def pullback(g):
            delta = (s * a)[:, None] * g[None, :] * slope
            grads = {"w": delta @ X}
            if self.bias:
                grads["b"] = jnp.sum(delta, axis=1)
            grads["a"] = s * (h @ g) if self.train_outer else jnp.zeros_like(params["a"])
            if self.output_bias:
                grads["c"] = jnp.sum(g) if self.train_outer else jnp.zeros_like(params["c"])
            return cast_like(grads, params)

        return pred, pullback

    def conserved(self, params: Params) -> dict[str, Array]:
        k = activation_degree(self.activation)
        if k is None or not self.train_outer:
            return {}
        incoming = jnp.sum(params["w"] ** 2, axis=1)
        if self.bias:
            incoming = incoming + params["b"] ** 2
        return {"balance": k * params["a"] ** 2 - incoming}
