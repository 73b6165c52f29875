"""Equinox networks as dynsim models: `make(key) -> eqx.Module`."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Inputs, Params, Predictions
from ._custom import (
    _CONSERVED_NEEDS,
    _PREDICTOR_NEEDS,
    AbstractTreeModel,
    _missing,
    _optional_callable,
    _optional_dims,
    _struct,
)


def is_trained(x: Any) -> bool:
    """An inexact (floating or complex) array, or the abstract value of one."""
    return isinstance(x, (jax.Array, jax.ShapeDtypeStruct)) and jnp.issubdtype(
        x.dtype, jnp.inexact
    )


def _is_array_like(x: Any) -> bool:
    return isinstance(x, (jax.Array, jax.ShapeDtypeStruct))


class Equinox(AbstractTreeModel):
    r"""An equinox network f(θ; x) = `make(key)(x)`, one sample at a time, vmapped over
    the samples: `apply(params, X) = jax.vmap(eqx.combine(params, static))(X)`.

    **Arguments:**

    - `make`: `make(key) -> eqx.Module`, e.g.
      `lambda key: eqx.nn.MLP(d, "scalar", 64, 2, key=key)`; the module maps one input
      of shape (d,) to one prediction of shape `out_shape` (`()` for scalar outputs).
    - `conserved`, `predictor`, `in_dim`, `out_shape`, `width`: as for `Custom`
      (`conserved(params)`, `predictor(params)` receive the parameters defined below).

    **Parameters** θ: the module's inexact array leaves, as `eqx.partition(module,
    is_inexact)` gives them (a module of the same type with `None` at every other
    leaf); `eqx.combine(params, model.static)` is the network. The rest (`static`:
    activation functions, sizes, any integer arrays) is held once, taken from the
    module's structure (`eqx.filter_eval_shape(make, key)`, nothing runs) or, when it
    holds non-floating arrays, from `make(jax.random.key(0))`: it is the same for every
    seed and not trained.

    Initialize with `dynsim.init.Module()` (each seed is `make(seed_key)`, the network's
    own initialization) or any generic scheme (`Gaussian`, `Orthogonal`, `Custom`).
    The gradient is JAX's reverse mode.

    **Raises:** `ValueError` naming `make` when it is not callable, fails, or returns
    something that is not an `eqx.Module` with floating array leaves; at `simulate`
    (before anything compiles) when the module fails on the data or its predictions do
    not have the targets' shape.
    """

    make: Callable = eqx.field(static=True)
    static: Any
    treedef: Any = eqx.field(static=True)
    leaves: tuple = eqx.field(static=True)
    conserved_fn: Callable | None = eqx.field(static=True, default=None)
    predictor_fn: Callable | None = eqx.field(static=True, default=None)
    in_dim_: int | None = eqx.field(static=True, default=None)
    out_shape_: tuple[int, ...] | None = eqx.field(static=True, default=None)
    width_: int | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        make: Callable,
        *,
        conserved: Callable | None = None,
        predictor: Callable | None = None,
        in_dim: int | None = None,
        out_shape: tuple[int, ...] | None = None,
        width: int | None = None,
    ):
        if not callable(make):
            raise ValueError(f"make: expected a callable make(key) -> eqx.Module; got {make!r}")
        _optional_callable("conserved", conserved)
        _optional_callable("predictor", predictor)
        try:
            shape = eqx.filter_eval_shape(make, jax.random.key(0))
        except Exception as e:  # noqa: BLE001 - report any failure of the user's function
            raise ValueError(f"make: calling make(key) failed: {type(e).__name__}: {e}") from e
        if not isinstance(shape, eqx.Module):
            raise ValueError(
                f"make: must return an eqx.Module (a network); got {type(shape).__name__}"
            )
        params, static = eqx.partition(shape, is_trained)
        leaves, treedef = jax.tree.flatten(params)
        if not leaves:
            raise ValueError(
                f"make: {type(shape).__name__} has no floating array leaves to train"
            )
        if any(_is_array_like(x) for x in jax.tree.leaves(static)):
            # integer or boolean arrays (or keys) in the module: hold concrete values
            static = eqx.partition(make(jax.random.key(0)), is_trained)[1]
        self.make = make
        self.static = static
        self.treedef = treedef
        self.leaves = tuple(_struct(leaf, "make") for leaf in leaves)
        self.conserved_fn = conserved
        self.predictor_fn = predictor
        self.in_dim_, self.out_shape_, self.width_ = _optional_dims(in_dim, out_shape, width)

    def network(self, params: Params) -> eqx.Module:
        """The equinox module with parameters `params` (one seed)."""
        return eqx.combine(params, self.static)

    def apply(self, params: Params, X: Inputs) -> Predictions:
        return jax.vmap(self.network(params))(X)

    @property
    def _apply_name(self) -> str:
        return "make"

    def conserved(self, params: Params) -> dict[str, Array]:
        if self.conserved_fn is None:
            raise _missing("Equinox", "conserved", _CONSERVED_NEEDS)
        return self.conserved_fn(params)

    def predictor(self, params: Params) -> Array:
        if self.predictor_fn is None:
            raise _missing("Equinox", "predictor", _PREDICTOR_NEEDS)
        return self.predictor_fn(params)
