"""Initialization schemes: `scheme(model, data, key) -> params` for one seed.

Continuous fields (scales, exponents, ratios) may be JAX arrays, so simulations are
differentiable with respect to them.
"""

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_finite, check_positive
from .._custom_types import Key, Params
from ..data._datasets import Dataset
from ..models._diagonal import DiagonalNet
from ..models._equinox import Equinox, is_trained
from ..models._linear import LinearNet


class AbstractInit(eqx.Module):
    """An initialization scheme. Called as `init(model, data, key)`."""

    @abc.abstractmethod
    def __call__(self, model, data: Dataset, key: Key) -> Params: ...


def _dtype(data: Dataset):
    return jnp.result_type(data.X)


class Gaussian(AbstractInit):
    r"""I.i.d. N(0, σ_l²) parameters with σ_l = `std`_l · width^{−`width_exponent`}.

    `std` is a float or one float per layer (`model.layers`). With `width_exponent=α`
    this is Min et al.'s init U, V ~ N(0, h^{−2α}) for `std=1`.
    """

    std: Any = 1.0
    width_exponent: Any = 0.0

    def __check_init__(self):
        check_finite("std", self.std, nonnegative=True)
        check_finite("width_exponent", self.width_exponent)

    def __call__(self, model, data, key):
        factor = model.width ** (-jnp.asarray(self.width_exponent)) if _nonzero(
            self.width_exponent
        ) else 1.0
        std = self.std
        if isinstance(std, (list, tuple)):
            std = type(std)(s * factor for s in std)
        else:
            std = std * factor
        return model.gaussian(key, std, _dtype(data))


def _nonzero(x) -> bool:
    return isinstance(x, jax.Array) or x != 0


class Constant(AbstractInit):
    r"""Constant init of diagonal networks: scale α with an optional shape.

    - `"uu-vv"`, `"depth"`: u₀ = v₀ = α·s (β₀ = 0).
    - `"uu-vv+w"`: u₀ = v₀ = α·s, w₀ = `dense_init` (default 0).
    - `"uv"`: u₀ = α·s, v₀ = α/s (Azulay et al.'s shape; β₀ = α²).

    `shape` s is a scalar or a (d,) vector of positive factors (default 1).
    """

    alpha: Any = 1.0
    shape: Any = None
    dense_init: Any = 0.0

    def __check_init__(self):
        check_finite("alpha", self.alpha)
        if self.shape is not None:
            check_positive("shape", self.shape)
        check_finite("dense_init", self.dense_init)

    def __call__(self, model, data, key):

        if not isinstance(model, DiagonalNet):
            raise ValueError(
                f"init: Constant applies to DiagonalNet; got {type(model).__name__}"
            )
        dtype = _dtype(data)
        if self.shape is not None and jnp.size(self.shape) not in (1, model.dim):
            raise ValueError(
                f"init: Constant's shape has {jnp.size(self.shape)} entries; "
                f"DiagonalNet({model.dim}) needs a scalar or {model.dim}"
            )
        s = jnp.ones(model.dim, dtype) if self.shape is None else jnp.broadcast_to(
            jnp.asarray(self.shape, dtype), (model.dim,)
        )
        a = jnp.asarray(self.alpha, dtype)
        if model.parametrization == "uv":
            return {"u": a * s, "v": a / s}
        params = {"u": a * s, "v": a * s}
        if model.parametrization == "uu-vv+w":
            params["w"] = jnp.broadcast_to(jnp.asarray(self.dense_init, dtype), (model.dim,))
        return params


def _linear_only(model, name):

    if not isinstance(model, LinearNet):
        raise ValueError(f"init: {name} applies to LinearNet; got {type(model).__name__}")


class Balanced(AbstractInit):
    r"""Balanced init of a linear network, with optional controlled imbalance.

    Draws an end-to-end matrix A with i.i.d. N(0, `std`²) entries, A = UΣVᵀ, and sets
    W_L = U Σ^{1/L} R_{L−1}ᵀ, W_l = R_l Σ^{1/L} R_{l−1}ᵀ, W_1 = R_1 Σ^{1/L} Vᵀ with
    orthonormal R_l (Arora et al. 2018), so W_{l+1}ᵀW_{l+1} = W_lW_lᵀ exactly.
    `ratio` c ≠ 1 then scales W_1 ← cW_1, W_L ← W_L/c: the end-to-end map is unchanged
    and the imbalance becomes W_1W_1ᵀ − W_2ᵀW_2 = (c² − c^{−2})·(balanced Gram).
    Needs every hidden width ≥ rank r = min(d, m). Biases start at zero.
    """

    std: Any = 1.0
    ratio: Any = 1.0

    def __check_init__(self):
        check_finite("std", self.std, nonnegative=True)
        check_positive("ratio", self.ratio)

    def __call__(self, model, data, key):
        _linear_only(model, "Balanced")
        dtype = _dtype(data)
        dims = model.dims
        L = model.depth
        r = min(dims[0], dims[-1])
        if any(h < r for h in dims[1:-1]):
            raise ValueError(
                f"init: Balanced needs hidden widths >= min(in, out) = {r}; got {dims[1:-1]}"
            )
        keys = jax.random.split(key, L)
        A = self.std * jax.random.normal(keys[0], (dims[-1], dims[0]), dtype)
        U, S, Vt = jnp.linalg.svd(A, full_matrices=False)  # U (m, r), Vt (r, d)
        root = S ** (1.0 / L)
        # R_l: (d_l, r) with orthonormal columns, for hidden layers l = 1..L-1
        Rs = [jnp.linalg.qr(jax.random.normal(keys[l], (dims[l], r), dtype))[0] for l in range(1, L)]
        Ws = []
        for l in range(L):
            left = U if l == L - 1 else Rs[l]
            right = Vt if l == 0 else Rs[l - 1].T
            Ws.append((left * root[None, :]) @ right)
        c = jnp.asarray(self.ratio, dtype)
        Ws[0] = c * Ws[0]
        Ws[-1] = Ws[-1] / c
        params = {"W": tuple(Ws)}
        if model.bias:
            params["b"] = tuple(jnp.zeros(dims[l + 1], dtype) for l in range(L))
        return params


class Spectral(AbstractInit):
    r"""Saxe et al.'s decoupled init of a two-layer linear net W_2W_1 on whitened data.

    With Σ_yx = YᵀX = U S Vᵀ (rank r, from the data), sets W_1 = R diag(a₀) Vᵀ and
    W_2 = U diag(b₀) Rᵀ with R (h × r) orthonormal columns; each mode then evolves
    independently: τȧ = b(s − ab), τḃ = a(s − ab). `a0`, `b0` scalars or (r,) vectors;
    `b0=None` means balanced (b₀ = a₀).
    """

    a0: Any = 1e-3
    b0: Any = None

    def __check_init__(self):
        check_finite("a0", self.a0)
        if self.b0 is not None:
            check_finite("b0", self.b0)

    def __call__(self, model, data, key):
        _linear_only(model, "Spectral")
        if model.depth != 2 or model.bias:
            raise ValueError("init: Spectral needs a two-layer LinearNet without biases")
        dtype = _dtype(data)
        Y = data.y if data.y.ndim == 2 else data.y[:, None]
        U, S, Vt = jnp.linalg.svd(Y.T @ data.X, full_matrices=False)
        r = min(U.shape[1], model.hidden[0])
        U, Vt = U[:, :r], Vt[:r]
        a = jnp.broadcast_to(jnp.asarray(self.a0, dtype), (r,))
        b = a if self.b0 is None else jnp.broadcast_to(jnp.asarray(self.b0, dtype), (r,))
        R = jnp.linalg.qr(jax.random.normal(key, (model.hidden[0], r), dtype))[0]
        return {"W": ((R * a[None, :]) @ Vt, (U * b[None, :]) @ R.T)}


class RowSpace(AbstractInit):
    r"""Gaussian init of a shallow linear net with U₂(0) = 0 (Min et al.'s invariant set).

    For f(X) = XUVᵀ (W_1 = Uᵀ), the first layer is projected onto row(X): U ← P_row U, so
    U₂ = Φ₂ᵀU = 0 and gradient flow converges to exactly X⁺y. Other layers as `Gaussian`.
    """

    std: Any = 1.0
    width_exponent: Any = 0.0

    def __check_init__(self):
        check_finite("std", self.std, nonnegative=True)
        check_finite("width_exponent", self.width_exponent)

    def __call__(self, model, data, key):
        _linear_only(model, "RowSpace")
        params = Gaussian(self.std, self.width_exponent)(model, data, key)
        X = data.X
        _, s, Vt = jnp.linalg.svd(X, full_matrices=False)
        rank_tol = s[0] * max(X.shape) * jnp.finfo(X.dtype).eps
        V = Vt.T * (s > rank_tol)[None, :]
        W1 = params["W"][0] @ V @ V.T
        return {**params, "W": (W1, *params["W"][1:])}


class Orthogonal(AbstractInit):
    """Orthogonal init (`jax.nn.initializers.orthogonal`) of every weight matrix.

    Matrices get `gain`·(semi-)orthogonal values; vectors and scalars (biases, outer
    weights of `TwoLayerNet`, diagonal parameters) get N(0, `gain`²/fan) entries. Any
    parameter PyTree (`model.param_shapes`) works, leaf by leaf; leaves of more than two
    axes are treated as vectors are, fan = their first axis.
    """

    gain: Any = 1.0

    def __check_init__(self):
        check_finite("gain", self.gain)

    def __call__(self, model, data, key):
        dtype = _dtype(data)
        shapes = model.param_shapes(dtype)
        leaves, treedef = jax.tree.flatten(shapes)
        keys = jax.random.split(key, len(leaves))
        ortho = jax.nn.initializers.orthogonal(scale=1.0)
        out = []
        for k, leaf in zip(keys, leaves):
            if len(leaf.shape) == 2:
                out.append(self.gain * ortho(k, leaf.shape, dtype))
            else:
                fan = max(1, leaf.shape[0] if leaf.shape else 1)
                out.append(self.gain / jnp.sqrt(fan) * jax.random.normal(k, leaf.shape, dtype))
        return jax.tree.unflatten(treedef, out)


class Module(AbstractInit):
    r"""An equinox network's own initialization: seed s gets the trained leaves of
    `model.make(key_s)` (`dynsim.models.Equinox`), cast to the data's dtype.

    So seed s starts where `eqx.partition(make(key_s), is_inexact)[0]` would, with the
    initializers the network's layers define (`eqx.nn.Linear`'s uniform fan-in bounds for
    `eqx.nn.MLP`).
    """

    def __call__(self, model, data, key):
        if not isinstance(model, Equinox):
            raise ValueError(
                f"init: Module initializes dynsim.models.Equinox networks; got "
                f"{type(model).__name__}"
            )
        dtype = _dtype(data)
        params = eqx.filter(model.make(key), is_trained)
        return jax.tree.map(lambda x: x.astype(dtype), params)


class Custom(AbstractInit):
    """Wraps a user callable `fn(key) -> params` (or `fn(model, data, key) -> params`)."""

    fn: Callable = eqx.field(static=True)
    with_context: bool = eqx.field(default=False, static=True)

    def __call__(self, model, data, key):
        return self.fn(model, data, key) if self.with_context else self.fn(key)


def get_init(init) -> AbstractInit:
    """An `AbstractInit` from a scheme or a user callable `key -> params`."""
    if isinstance(init, AbstractInit):
        return init
    if callable(init):
        return Custom(init)
    raise ValueError(f"init: expected an AbstractInit or a callable key -> params; got {init!r}")
