"""Linear networks f(x) = W_L ⋯ W_1 x (+ biases), of any depth."""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from .._checks import check_count
from .._custom_types import Array, Inputs, Key, Params, Predictions
from ._base import AbstractLayeredNet, _widths, default_dtype, gaussian_like, per_layer


class LinearNet(AbstractLayeredNet):
    r"""Deep linear network f(x) = W_L(⋯(W_2(W_1x + b_1) + b_2)⋯) + b_L.

    Parameters: `{"W": (W_1, …, W_L)}` with W_l of shape (d_l, d_{l-1}), d_0 = `in_dim`,
    d_L = `out_dim` (1 when `out_dim=None`, the scalar-output case), plus
    `"b": (b_1, …, b_L)` when `bias=True`.

    The shallow network of Min et al. (2021), f(X) = XUVᵀ, is `LinearNet(d, [h], m)` with
    W_1 = Uᵀ and W_2 = V.

    **Arguments:**

    - `in_dim`: input dimension d.
    - `hidden`: hidden widths (d_1, …, d_{L-1}); `()` gives a plain linear model.
    - `out_dim`: output dimension m, or `None` for scalar outputs of shape `(n,)`.
    - `bias`: whether each layer has a bias.
    """

    in_dim_: int
    hidden: tuple[int, ...]
    out_dim: int | None = None
    bias: bool = False

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int] = (),
        out_dim: int | None = None,
        *,
        bias: bool = False,
    ):
        check_count("in_dim", in_dim)
        for h in _widths(hidden):
            check_count("hidden", h)
        check_count("out_dim", out_dim, allow_none=True)
        self.in_dim_ = int(in_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.out_dim = None if out_dim is None else int(out_dim)
        self.bias = bool(bias)

    @property
    def width(self) -> int:
        if not self.hidden:
            raise NotImplementedError("LinearNet without hidden layers has no width")
        return min(self.hidden)

    def param_shapes(self, dtype: Any = None) -> dict[str, Any]:
        shapes = {"W": self.weight_shapes(dtype)}
        if self.bias:
            dtype = default_dtype(dtype)
            shapes["b"] = tuple(jax.ShapeDtypeStruct((w.shape[0],), dtype) for w in shapes["W"])
        return shapes

    def gaussian(self, key: Key, std: Any, dtype: Any = None) -> Params:
        """W_l, b_l i.i.d. N(0, std_l²)."""
        stds = per_layer(std, self.depth)
        shapes = self.param_shapes(dtype)
        return gaussian_like(key, shapes, {name: stds for name in shapes})

    def apply(self, params: Params, X: Inputs) -> Predictions:
        return self.forward(params["W"], X, biases=params["b"] if self.bias else None)

    def end_to_end(self, params: Params) -> tuple[Array, Array | None]:
        """(W_e, b_e) with f(x) = W_e x + b_e; W_e of shape (m, d), b_e (m,) or None."""
        W_e = params["W"][0]
        for W in params["W"][1:]:
            W_e = W @ W_e
        if not self.bias:
            return W_e, None
        b_e = jnp.zeros(self.dims[1], W_e.dtype)
        for l, W in enumerate(params["W"]):
            b_e = (W @ b_e if l > 0 else b_e) + params["b"][l]
        return W_e, b_e

    def predictor(self, params: Params) -> Array:
        """The end-to-end linear map: β of shape (d,) for scalar outputs, W_e (m, d) else.

        With biases the map acts on x̃ = (x, 1): shapes (d+1,) and (m, d+1).
        """
        W_e, b_e = self.end_to_end(params)
        if b_e is not None:
            W_e = jnp.concatenate([W_e, b_e[:, None]], axis=1)
        return W_e[0] if self.out_dim is None else W_e

    def conserved(self, params: Params) -> dict[str, Array]:
        """D_l = W̃_l W̃_lᵀ − W_{l+1}ᵀW_{l+1} for l = 1…L−1, W̃_l = [W_l b_l].

        Gradient flow keeps every D_l constant; gradient descent with step η changes it by
        exactly η²(G̃_lG̃_lᵀ − G_{l+1}ᵀG_{l+1}) per step (G the gradients).
        """
        out = {}
        Ws = params["W"]
        for l in range(self.depth - 1):
            Wt = Ws[l]
            if self.bias:
                Wt = jnp.concatenate([Wt, params["b"][l][:, None]], axis=1)
            out[f"imbalance{l + 1}"] = Wt @ Wt.T - Ws[l + 1].T @ Ws[l + 1]
        return out
