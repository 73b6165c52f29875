"""The model interface: a parametrization f(θ; x), its parameters and its invariants."""

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Inputs, Key, Params, Predictions


class AbstractModel(eqx.Module):
    """A parametrized function f(θ; x) of a batch of inputs.

    A model holds only its *architecture* (static integers and strings); parameters θ
    are a separate PyTree (a dict of arrays), so one model serves thousands of seeds.

    **Adding a model** is one small final class implementing:

    - `in_dim: int` and `out_shape: tuple[int, ...]` (`()` for scalar outputs);
    - `param_shapes(dtype)`: dict of `jax.ShapeDtypeStruct`, the parameter layout;
    - `apply(params, X)`: predictions of shape `(n, *out_shape)` for inputs `(n, in_dim)`;
    - `gaussian(key, std, dtype)`: i.i.d. Gaussian parameters (`std` a float or one float
      per layer, in the order of `layers`);
    - optionally `conserved(params)`: a dict of quantities constant under gradient flow,
      `predictor(params)` for models linear in their input, and `width` (used by
      width-scaled initializations).
    """

    @property
    @abc.abstractmethod
    def in_dim(self) -> int: ...

    @property
    @abc.abstractmethod
    def out_shape(self) -> tuple[int, ...]: ...

    @abc.abstractmethod
    def param_shapes(self, dtype: Any = None) -> dict[str, Any]: ...

    @abc.abstractmethod
    def apply(self, params: Params, X: Inputs) -> Predictions: ...

    @abc.abstractmethod
    def gaussian(self, key: Key, std: Any, dtype: Any = None) -> Params: ...

    @property
    def width(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} has no notion of width")

    @property
    def layers(self) -> tuple[str, ...]:
        """Names of the layers, in the order per-layer `std` sequences are read."""
        return tuple(self.param_shapes().keys())

    def conserved(self, params: Params) -> dict[str, Array]:
        """Quantities that gradient flow conserves exactly (empty if none is known)."""
        return {}

    def predictor(self, params: Params) -> Array:
        raise NotImplementedError(
            f"{type(self).__name__} is not linear in its input; it has no predictor"
        )

    def check_data(self, X: Any, y: Any) -> None:
        """Raise `ValueError` naming `data` if (X, y) do not fit this model."""
        shape_x, shape_y = jnp.shape(X), jnp.shape(y)
        if len(shape_x) != 2 or shape_x[1] != self.in_dim:
            raise ValueError(
                f"data: X must have shape (n, {self.in_dim}) for {type(self).__name__}"
                f" with in_dim={self.in_dim}; got {shape_x}"
            )
        want = (shape_x[0], *self.out_shape)
        if tuple(shape_y) != want:
            raise ValueError(
                f"data: y must have shape {want} for {type(self).__name__} with "
                f"out_shape={self.out_shape}; got {tuple(shape_y)}"
            )


def default_dtype(dtype: Any = None) -> Any:
    """float64 when x64 is enabled, float32 otherwise (unless `dtype` is given)."""
    if dtype is not None:
        return jnp.dtype(dtype)
    return jnp.zeros(()).dtype


def per_layer(std: Any, n_layers: int, argname: str = "std") -> tuple:
    """Broadcast a float, or check a sequence, to one std per layer."""
    if isinstance(std, (list, tuple)):
        if len(std) != n_layers:
            raise ValueError(
                f"{argname}: expected one value per layer ({n_layers}); got {len(std)}"
            )
        return tuple(std)
    return (std,) * n_layers


def gaussian_like(key: Key, shapes: dict[str, Any], stds: dict[str, Any]) -> Params:
    """Independent N(0, std²) arrays with the given shapes; `stds` maps names to std."""
    names = list(shapes)
    keys = jax.random.split(key, len(names))
    out = {}
    for k, name in zip(keys, names):
        leaf = shapes[name]
        if isinstance(leaf, (tuple, list)):
            subkeys = jax.random.split(k, len(leaf))
            out[name] = type(leaf)(
                s * jax.random.normal(sk, sd.shape, sd.dtype)
                for sk, sd, s in zip(subkeys, leaf, stds[name])
            )
        else:
            out[name] = stds[name] * jax.random.normal(k, leaf.shape, leaf.dtype)
    return out


class AbstractLayeredNet(AbstractModel):
    """A stack of dense layers d_0 = `in_dim` → d_1 … d_{L−1} (`hidden`) → d_L = `out_dim`
    (1 for scalar outputs, `out_dim=None`), with weights W_l of shape (d_l, d_{l−1})."""

    in_dim_: eqx.AbstractVar[int]
    hidden: eqx.AbstractVar[tuple[int, ...]]
    out_dim: eqx.AbstractVar[int | None]

    @property
    def in_dim(self) -> int:
        return self.in_dim_

    @property
    def out_shape(self) -> tuple[int, ...]:
        return () if self.out_dim is None else (self.out_dim,)

    @property
    def dims(self) -> tuple[int, ...]:
        return (self.in_dim_, *self.hidden, self.out_dim or 1)

    @property
    def depth(self) -> int:
        return len(self.hidden) + 1

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(f"layer{l + 1}" for l in range(self.depth))

    def weight_shapes(self, dtype: Any = None) -> tuple:
        """(W_1, …, W_L) as `jax.ShapeDtypeStruct`s."""
        dtype = default_dtype(dtype)
        d = self.dims
        return tuple(jax.ShapeDtypeStruct((d[l + 1], d[l]), dtype) for l in range(self.depth))

    def forward(self, Ws, X: Inputs, *, biases=None, sigma=None) -> Predictions:
        """h_l = σ(W_l h_{l−1} + b_l) (no σ on the last layer), h_0 = x, for a batch X.

        Activations are kept feature-major, hᵀ of shape (d_l, n): each layer is W_l @ hᵀ,
        whose contracted axis is the minor axis of W_l, so under `vmap` over seeds the
        weights of a whole block of seeds enter one plain matrix product
        (S·d_l, d_{l−1}) @ (d_{l−1}, n), forward and backward, without a transposed copy
        of the weights (x @ Wᵀ makes XLA transpose every seed's W_l at every gradient
        evaluation: ~2× slower on CPU).
        """
        h = X.T
        for l, W in enumerate(Ws):
            h = W @ h
            if biases is not None:
                h = h + biases[l][:, None]
            if sigma is not None and l < len(Ws) - 1:
                h = sigma(h)
        return h[0] if self.out_dim is None else h.T


def _widths(hidden: Any) -> tuple:
    """Hidden widths as a tuple; a `ValueError` naming `hidden` if not a sequence."""
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__len__"):
        raise ValueError(f"hidden: expected a sequence of widths; got {hidden!r}")
    return tuple(hidden)
