"""The model interface: a parametrization f(θ; x), its parameters and its invariants."""

import abc
from collections.abc import Callable
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
      width-scaled initializations);
    - optionally `apply_and_pullback(params, X)`: the predictions and a hand-written
      vector–Jacobian product (the built-in families have one; the default is autodiff).
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

    def apply_and_pullback(
        self, params: Params, X: Inputs
    ) -> tuple[Predictions, Callable[[Predictions], Params]]:
        """(f(θ; X), v ↦ vᵀ ∂f(θ; X)/∂θ): the predictions and their pullback, which maps a
        cotangent of the predictions (shape `(n, *out_shape)`, e.g. dL/df) to a
        params-shaped gradient. `Problem.value_and_grad` computes ∇L(θ) = pullback(∂L/∂f).

        This default is JAX's reverse mode (`jax.vjp` of `apply`); the built-in families
        override it with hand-written pullbacks whose contractions suit a batch of seeds.
        """
        pred, vjp = jax.vjp(lambda p: self.apply(p, X), params)
        return pred, lambda g: vjp(g)[0]

    def _apply_overridden(self, cls: type) -> bool:
        """A subclass of the built-in `cls` with its own `apply`: the hand-written
        pullback of `cls` would not be its derivative, so it gets autodiff's."""
        return type(self).apply is not cls.apply

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

    def forward_and_pullback(
        self, Ws, X: Inputs, *, biases=None, act=None
    ) -> tuple[Predictions, Callable]:
        r"""`forward` and its hand-written pullback (backpropagation), for one seed.

        Forward, feature-major: a_0 = Xᵀ (d_0, n), z_l = W_l a_{l−1} + b_l 1ᵀ,
        a_l = σ(z_l) for l < L and a_L = z_L; `act(z) = (σ(z), σ′(z))` (None: linear).
        Backward from the cotangent G of the predictions, δ_L = Gᵀ (d_L, n):

            ∂L/∂W_l = δ_l a_{l−1}ᵀ,   ∂L/∂b_l = δ_l 1,   δ_{l−1} = σ′(z_{l−1}) ⊙ (W_lᵀ δ_l).

        Every product contracts the samples or a width; the first layer's gradient is
        δ_1 X, so under `vmap` over seeds it is one matrix product (S·d_1, n) @ (n, d_0)
        with the shared data. Returns (predictions, G ↦ (∂L/∂W_l)_l, (∂L/∂b_l)_l).
        """
        depth = len(Ws)
        h, inputs, slopes = X.T, [], []
        for l, W in enumerate(Ws):
            inputs.append(h)
            h = W @ h
            if biases is not None:
                h = h + biases[l][:, None]
            if act is not None and l < depth - 1:
                h, slope = act(h)
                slopes.append(slope)
        pred = h[0] if self.out_dim is None else h.T

        def pullback(g):
            delta = g[None, :] if self.out_dim is None else g.T
            gWs, gbs = [None] * depth, [None] * depth
            for l in reversed(range(depth)):
                gWs[l] = delta @ X if l == 0 else delta @ inputs[l].T
                gbs[l] = jnp.sum(delta, axis=1)
                if l > 0:
                    delta = Ws[l].T @ delta
                    if act is not None:
                        delta = delta * slopes[l - 1]
            return tuple(gWs), tuple(gbs)

        return pred, pullback


def cast_like(grads: Params, params: Params) -> Params:
    """Each gradient leaf in its parameter's dtype (as reverse mode returns it)."""
    return jax.tree.map(lambda g, p: g.astype(p.dtype), grads, params)


def _widths(hidden: Any) -> tuple:
    """Hidden widths as a tuple; a `ValueError` naming `hidden` if not a sequence."""
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__len__"):
        raise ValueError(f"hidden: expected a sequence of widths; got {hidden!r}")
    return tuple(hidden)
