"""Linear networks f(x) = W_L ⋯ W_1 x (+ biases), of any depth."""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from .._checks import check_count
from .._custom_types import Array, Inputs, Key, Params, Predictions
from ._base import (
    AbstractLayeredNet,
    AbstractModel,
    _widths,
    cast_like,
    default_dtype,
    gaussian_like,
    per_layer,
)


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

    def apply_and_pullback(
        self, params: Params, X: Inputs
    ) -> tuple[Predictions, Callable[[Predictions], Params]]:
        """Predictions and their hand-written pullback (`AbstractModel.apply_and_pullback`).

        Through the end-to-end map (`_end_to_end_and_pullback`) when its multiply-adds,
        m(3Σ_l d_l d_{l−1} + 2n d_0), are at most backpropagation's through the hidden
        features, 3nΣ_l d_l d_{l−1} (`AbstractLayeredNet.forward_and_pullback`): for
        m ≤ n outputs. Both equal reverse mode's gradient up to rounding.
        """
        if self._apply_overridden(LinearNet):
            return AbstractModel.apply_and_pullback(self, params, X)
        d, n, m = self.dims, X.shape[0], self.dims[-1]
        layer_macs = sum(d[l + 1] * d[l] for l in range(self.depth))
        if m * (3 * layer_macs + 2 * n * d[0]) <= 3 * n * layer_macs:
            pred, pull = self._end_to_end_and_pullback(params, X)
        else:
            pred, pull_layers = self.forward_and_pullback(
                params["W"], X, biases=params["b"] if self.bias else None
            )

            def pull(g):
                gWs, gbs = pull_layers(g)
                return {"W": gWs, "b": gbs} if self.bias else {"W": gWs}

        return pred, lambda g: cast_like(pull(g), params)

    def _end_to_end_and_pullback(self, params: Params, X: Inputs) -> tuple[Predictions, Callable]:
        r"""f(X) = X W_eᵀ + 1b_eᵀ and its pullback, never forming the hidden features.

        With A_l = W_L ⋯ W_{l+1} (m, d_l) (A_L = I): W_e = A_0 and b_e = Σ_l A_l b_l. For a
        cotangent G (n, m) of the predictions, let Q_1 = GᵀX (m, d_0), g_b = Gᵀ1 and
        Q_{l+1} = Q_l W_lᵀ + g_b b_lᵀ (= Gᵀ a_lᵀ, a_l the features of layer l). Then

            ∂L/∂W_l = A_lᵀ Q_l,   ∂L/∂b_l = A_lᵀ g_b,

        since the backpropagated error of layer l is δ_l = A_lᵀGᵀ, of rank ≤ m: each
        weight gradient is a rank-m product, and the data enter only X W_eᵀ and GᵀX.
        """
        Ws = params["W"]
        bs = params["b"] if self.bias else None
        depth = self.depth
        A = [None] * depth  # A[l] = A_{l+1} in the docstring's 1-based indexing
        A[depth - 1] = None  # the identity
        prod = Ws[-1]
        for l in range(depth - 2, -1, -1):
            A[l] = prod
            prod = prod @ Ws[l]
        W_e = prod
        out = W_e @ X.T  # (m, n)
        if bs is not None:
            b_e = bs[-1]
            for l in range(depth - 1):
                b_e = b_e + A[l] @ bs[l]
            out = out + b_e[:, None]
        pred = out[0] if self.out_dim is None else out.T

        def pullback(g):
            gt = g[None, :] if self.out_dim is None else g.T  # Gᵀ, (m, n)
            Q = gt @ X
            g_b = jnp.sum(gt, axis=1) if bs is not None else None
            gWs, gbs = [], []
            for l in range(depth):
                if l > 0:
                    Q = Q @ Ws[l - 1].T
                    if bs is not None:
                        Q = Q + g_b[:, None] * bs[l - 1][None, :]
                gWs.append(Q if A[l] is None else A[l].T @ Q)
                if bs is not None:
                    gbs.append(g_b if A[l] is None else A[l].T @ g_b)
            if bs is None:
                return {"W": tuple(gWs)}
            return {"W": tuple(gWs), "b": tuple(gbs)}

        return pred, pullback

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
