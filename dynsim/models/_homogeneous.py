"""Deep positively homogeneous networks without biases."""

from collections.abc import Callable, Sequence
from typing import Any

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
from ._base import AbstractLayeredNet, AbstractModel, _widths, cast_like, gaussian_like, per_layer


class HomogeneousNet(AbstractLayeredNet):
    r"""f(x) = W_L σ(W_{L−1} ⋯ σ(W_1 x)) with σ = relu or leaky relu, no biases.

    σ may also be any elementwise callable declared positively 1-homogeneous,
    `Activation(fn, homogeneous=True)` (σ(cz) = cσ(z) for c > 0); an undeclared callable
    is refused, since the degree and the conserved quantities below rest on it.

    f is positively homogeneous of degree L in θ: f(cθ; x) = c^L f(θ; x), the setting of
    exponential/logistic-loss margin theory (Lyu & Li 2020, Poggio et al. 2020).
    Parameters: `{"W": (W_1, …, W_L)}`, W_l of shape (d_l, d_{l−1}).

    Conserved under gradient flow, per hidden neuron j of layer l:
    ‖W_l[j, :]‖² − ‖W_{l+1}[:, j]‖² (incoming minus outgoing), hence also the layer
    balance ‖W_l‖_F² − ‖W_{l+1}‖_F².
    """

    in_dim_: int
    hidden: tuple[int, ...]
    out_dim: int | None = None
    activation: str | Activation = "relu"
    leaky_slope: float = 0.01

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int | None = None,
        *,
        activation: str | Callable | Activation = "relu",
        leaky_slope: float = 0.01,
    ):
        check_count("in_dim", in_dim)
        if len(_widths(hidden)) < 1:
            raise ValueError(f"hidden: need at least one width; got {hidden}")
        for h in _widths(hidden):
            check_count("hidden", h)
        check_count("out_dim", out_dim, allow_none=True)
        activation = as_activation(activation)
        if isinstance(activation, str):
            ok = activation in ("relu", "leaky_relu")
        else:
            ok = activation_degree(activation) == 1
        if not ok:
            raise ValueError(
                "activation: HomogeneousNet needs 'relu', 'leaky_relu' or a callable declared "
                f"positively 1-homogeneous, Activation(fn, homogeneous=True); got {activation!r}"
            )
        self.in_dim_ = int(in_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.out_dim = None if out_dim is None else int(out_dim)
        self.activation = activation
        self.leaky_slope = leaky_slope

    @property
    def degree(self) -> int:
        """Degree L of homogeneity in the parameters."""
        return self.depth

    @property
    def width(self) -> int:
        return min(self.hidden)

    def param_shapes(self, dtype: Any = None) -> dict[str, Any]:
        return {"W": self.weight_shapes(dtype)}

    def check_data(self, X: Any, y: Any) -> None:
        """`AbstractModel.check_data`, and a callable activation must act elementwise on
        each hidden layer's (d_l, n) pre-activations (a `ValueError` naming `activation`)."""
        super().check_data(X, y)
        for h in sorted(set(self.hidden)):
            check_activation_maps(self.activation, (h, jnp.shape(X)[0]), jnp.result_type(X))

    def gaussian(self, key: Key, std: Any, dtype: Any = None) -> Params:
        return gaussian_like(key, self.param_shapes(dtype), {"W": per_layer(std, self.depth)})

    def apply(self, params: Params, X: Inputs) -> Predictions:
        sigma = activation_fn(self.activation, self.leaky_slope)
        return self.forward(params["W"], X, sigma=sigma)

    def apply_and_pullback(
        self, params: Params, X: Inputs
    ) -> tuple[Predictions, Callable[[Predictions], Params]]:
        """Predictions and their hand-written pullback: backpropagation through the
        layers (`AbstractLayeredNet.forward_and_pullback`), σ′ = 1{z > 0} (relu) or
        1{z ≥ 0} + slope·1{z < 0} (leaky relu), as autodiff takes it."""
        if self._apply_overridden(HomogeneousNet):
            return AbstractModel.apply_and_pullback(self, params, X)
        act = activation_and_derivative(self.activation, self.leaky_slope)
        pred, pull = self.forward_and_pullback(params["W"], X, act=act)
        return pred, lambda g: cast_like({"W": pull(g)[0]}, params)

    def conserved(self, params: Params) -> dict[str, Array]:
        Ws = params["W"]
        return {
            f"neuron_balance{l + 1}": jnp.sum(Ws[l] ** 2, axis=1) - jnp.sum(Ws[l + 1] ** 2, axis=0)
            for l in range(self.depth - 1)
        }
