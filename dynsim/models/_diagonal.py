"""Diagonal linear networks for sparse regression: f(x) = ⟨β(θ), x⟩."""

from collections.abc import Callable
from typing import Any

import jax

from .._checks import check_count
from .._custom_types import Array, Inputs, Key, Params, Predictions
from ._base import AbstractModel, cast_like, default_dtype, gaussian_like, per_layer

PARAMETRIZATIONS = ("uu-vv", "uv", "depth", "uu-vv+w")


class DiagonalNet(AbstractModel):
    r"""Diagonal linear network f(x) = ⟨β, x⟩ with β a coordinatewise function of θ.

    Parametrizations (all products and powers elementwise):

    - `"uu-vv"`: β = u⊙u − v⊙v (Woodworth et al., 2020); conserved: u⊙v.
    - `"uv"`: β = u⊙v (Azulay et al., 2021); conserved: u⊙u − v⊙v.
    - `"depth"`: β = u^D − v^D with D = `depth` ≥ 2; conserved (D ≥ 3, u, v > 0):
      u^{2−D} + v^{2−D}; for D = 2 this is `"uu-vv"`.
    - `"uu-vv+w"`: β = u⊙u − v⊙v + λw, λ = `dense_scale` (sparse plus dense);
      conserved: u⊙v.

    Parameters: `{"u": (d,), "v": (d,)}` plus `"w": (d,)` for `"uu-vv+w"`.
    Outputs are scalar.
    """

    dim: int
    parametrization: str = "uu-vv"
    depth: int = 2
    dense_scale: float = 1.0

    def __init__(
        self,
        dim: int,
        parametrization: str = "uu-vv",
        *,
        depth: int = 2,
        dense_scale: float = 1.0,
    ):
        check_count("dim", dim)
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(
                f"parametrization: unknown {parametrization!r}; choose one of "
                f"{PARAMETRIZATIONS}"
            )
        if int(depth) < 2:
            raise ValueError(f"depth: must be an integer >= 2; got {depth}")
        self.dim = int(dim)
        self.parametrization = parametrization
        self.depth = int(depth)
        self.dense_scale = dense_scale

    @property
    def in_dim(self) -> int:
        return self.dim

    @property
    def out_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def width(self) -> int:
        return self.dim

    def param_shapes(self, dtype: Any = None) -> dict[str, Any]:
        dtype = default_dtype(dtype)
        names = ("u", "v", "w") if self.parametrization == "uu-vv+w" else ("u", "v")
        return {n: jax.ShapeDtypeStruct((self.dim,), dtype) for n in names}

    def gaussian(self, key: Key, std: Any, dtype: Any = None) -> Params:
        shapes = self.param_shapes(dtype)
        stds = per_layer(std, len(shapes))
        return gaussian_like(key, shapes, dict(zip(shapes, stds)))

    def predictor(self, params: Params) -> Array:
        """β(θ), shape (d,)."""
        u, v = params["u"], params["v"]
        p = self.parametrization
        if p == "uv":
            return u * v
        if p == "depth":
            return u**self.depth - v**self.depth
        beta = u * u - v * v
        if p == "uu-vv+w":
            beta = beta + self.dense_scale * params["w"]
        return beta

    def apply(self, params: Params, X: Inputs) -> Predictions:
        return X @ self.predictor(params)

    def apply_and_pullback(
        self, params: Params, X: Inputs
    ) -> tuple[Predictions, Callable[[Predictions], Params]]:
        r"""f(X) = Xβ and its hand-written pullback (`AbstractModel.apply_and_pullback`).

        For a cotangent g (n,) of the predictions, ∂L/∂β = Xᵀg, then coordinatewise:
        `"uu-vv"`: ∂L/∂u = 2u⊙Xᵀg, ∂L/∂v = −2v⊙Xᵀg; `"uv"`: ∂L/∂u = v⊙Xᵀg,
        ∂L/∂v = u⊙Xᵀg; `"depth"`: ∂L/∂u = D u^{D−1}⊙Xᵀg, ∂L/∂v = −D v^{D−1}⊙Xᵀg;
        `"uu-vv+w"`: as `"uu-vv"` plus ∂L/∂w = λXᵀg.
        """
        if self._apply_overridden(DiagonalNet):
            return AbstractModel.apply_and_pullback(self, params, X)
        u, v = params["u"], params["v"]
        p = self.parametrization

        def pullback(g):
            g_beta = g @ X
            if p == "uv":
                grads = {"u": v * g_beta, "v": u * g_beta}
            elif p == "depth":
                D = self.depth
                grads = {"u": D * u ** (D - 1) * g_beta, "v": -D * v ** (D - 1) * g_beta}
            else:
                grads = {"u": 2 * u * g_beta, "v": -2 * v * g_beta}
                if p == "uu-vv+w":
                    grads["w"] = self.dense_scale * g_beta
            return cast_like(grads, params)

        return self.apply(params, X), pullback

    def conserved(self, params: Params) -> dict[str, Array]:
        u, v = params["u"], params["v"]
        p = self.parametrization
        if p == "uv":
            return {"u2-v2": u * u - v * v}
        if p == "depth" and self.depth > 2:
            e = 2 - self.depth
            return {"u^(2-D)+v^(2-D)": u**e + v**e}
        return {"uv": u * v}
