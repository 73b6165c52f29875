"""Models given by the user: any `apply(params, X)` with a parameter PyTree."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_count
from .._custom_types import Array, Inputs, Key, Params, Predictions
from ._base import AbstractModel, per_layer


class MissingModelFeature(ValueError, NotImplementedError):
    """A model was not given a function some computation needs (`conserved`,
    `predictor`, `in_dim`, `width`). A `ValueError` naming the argument; also a
    `NotImplementedError`, what the built-in models raise for a predictor they lack, so
    code that handles those handles this too."""


def _struct(leaf: Any, argname: str) -> jax.ShapeDtypeStruct:
    """One leaf of a parameter example as a `ShapeDtypeStruct` (floating dtypes only)."""
    if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
        raise ValueError(
            f"{argname}: every leaf must be an array or a jax.ShapeDtypeStruct; got {leaf!r}"
        )
    if not jnp.issubdtype(leaf.dtype, jnp.floating):
        raise ValueError(
            f"{argname}: trained parameters must be real floating arrays; got a leaf of "
            f"dtype {leaf.dtype}"
        )
    return jax.ShapeDtypeStruct(tuple(leaf.shape), jnp.dtype(leaf.dtype))


class AbstractTreeModel(AbstractModel):
    """A model whose parameters are an arbitrary PyTree of floating arrays, fixed by a
    tree structure and one `ShapeDtypeStruct` per leaf (`Custom`, `Equinox`).

    Provides what the built-in families write by hand: `param_shapes` (the PyTree of
    structs, in the data's dtype), `layers` (the leaves' key paths, the order in which a
    per-layer `std` is read), i.i.d. Gaussian parameters, and `check_data`, which traces
    `apply` abstractly on the data (nothing compiles) and requires predictions of the
    targets' shape. `in_dim`, `out_shape` and `width` are optional (`None`): without
    them the data set the input and output shapes.
    """

    treedef: eqx.AbstractVar[Any]
    leaves: eqx.AbstractVar[tuple]
    in_dim_: eqx.AbstractVar[int | None]
    out_shape_: eqx.AbstractVar[tuple[int, ...] | None]
    width_: eqx.AbstractVar[int | None]

    @property
    def in_dim(self) -> int:
        if self.in_dim_ is None:
            raise MissingModelFeature(
                f"in_dim: {type(self).__name__} was given no in_dim; pass in_dim=d where "
                "the input dimension is needed (e.g. a teacher network generating data)"
            )
        return self.in_dim_

    @property
    def out_shape(self) -> tuple[int, ...]:
        if self.out_shape_ is not None:
            return self.out_shape_
        if self.in_dim_ is None:
            raise MissingModelFeature(
                f"out_shape: {type(self).__name__} was given neither out_shape nor in_dim; "
                "pass one of them where the output shape is needed"
            )
        X = jax.ShapeDtypeStruct((1, self.in_dim_), self.leaves[0].dtype)
        return tuple(jax.eval_shape(self.apply, self.param_shapes(), X).shape[1:])

    @property
    def width(self) -> int:
        if self.width_ is None:
            raise MissingModelFeature(
                f"width: {type(self).__name__} was given no width; width-scaled "
                "initializations (width_exponent) need Custom(..., width=m)"
            )
        return self.width_

    @property
    def layers(self) -> tuple[str, ...]:
        paths = jax.tree_util.tree_flatten_with_path(self.param_shapes())[0]
        return tuple(jax.tree_util.keystr(path) for path, _ in paths)

    def param_shapes(self, dtype: Any = None) -> Any:
        """The parameter PyTree of `ShapeDtypeStruct`s, every leaf in `dtype` if given
        (the data's dtype, as every init produces), else in the example's dtypes."""
        leaves = self.leaves
        if dtype is not None:
            leaves = tuple(jax.ShapeDtypeStruct(s.shape, jnp.dtype(dtype)) for s in leaves)
        return jax.tree.unflatten(self.treedef, leaves)

    def gaussian(self, key: Key, std: Any, dtype: Any = None) -> Params:
        """Every leaf i.i.d. N(0, std²); `std` a float or one per leaf (`layers`)."""
        structs = jax.tree.leaves(self.param_shapes(dtype))
        stds = per_layer(std, len(structs))
        keys = jax.random.split(key, len(structs))
        leaves = [
            s * jax.random.normal(k, sd.shape, sd.dtype)
            for k, sd, s in zip(keys, structs, stds)
        ]
        return jax.tree.unflatten(self.treedef, leaves)

    def check_data(self, X: Any, y: Any) -> None:
        """Raise `ValueError` if `apply` does not map X to predictions of y's shape.

        `apply(params, X)` is traced abstractly (`jax.eval_shape`) on one seed's
        parameters in X's dtype; a failure names `apply`, as does a prediction whose shape
        differs from the targets' (n, *out_shape) or that is not floating.
        """
        shape_x, shape_y = tuple(jnp.shape(X)), tuple(jnp.shape(y))
        if len(shape_x) != 2:
            raise ValueError(f"data: X must have shape (n, d); got {shape_x}")
        if self.in_dim_ is not None and shape_x[1] != self.in_dim_:
            raise ValueError(
                f"data: X must have shape (n, {self.in_dim_}) for {type(self).__name__} "
                f"with in_dim={self.in_dim_}; got {shape_x}"
            )
        dtype = jnp.result_type(X)
        params = self.param_shapes(dtype)
        try:
            pred = jax.eval_shape(self.apply, params, jax.ShapeDtypeStruct(shape_x, dtype))
        except ValueError as e:
            if str(e).split(":")[0] in ("apply", "make", "data"):
                raise
            raise ValueError(f"{self._apply_name}: {_failed(e, params, shape_x)}") from e
        except Exception as e:  # noqa: BLE001 - report any failure of the user's function
            raise ValueError(f"{self._apply_name}: {_failed(e, params, shape_x)}") from e
        if not isinstance(pred, jax.ShapeDtypeStruct):
            raise ValueError(
                f"{self._apply_name}: must return one array of predictions; got {pred!r}"
            )
        if pred.shape != shape_y:
            want = "" if self.out_shape_ is None else f", out_shape={self.out_shape_}"
            raise ValueError(
                f"{self._apply_name}: predictions for X {shape_x} have shape {pred.shape}; "
                f"the targets y have shape {shape_y}{want} (one prediction per sample, "
                "of the targets' shape)"
            )
        if self.out_shape_ is not None and pred.shape[1:] != self.out_shape_:
            raise ValueError(
                f"{self._apply_name}: predictions have shape {pred.shape[1:]} per sample; "
                f"out_shape={self.out_shape_}"
            )
        if not jnp.issubdtype(pred.dtype, jnp.floating):
            raise ValueError(
                f"{self._apply_name}: predictions must be real floating; got {pred.dtype}"
            )

    @property
    def _apply_name(self) -> str:
        return "apply"


def _failed(e: Exception, params: Any, shape_x: tuple) -> str:
    shapes = jax.tree.map(lambda s: s.shape, params)
    return (
        f"calling it on one seed's parameters {shapes} and X of shape {shape_x} failed: "
        f"{type(e).__name__}: {e}"
    )


def _optional_callable(name: str, fn: Any) -> None:
    if fn is not None and not callable(fn):
        raise ValueError(f"{name}: expected a callable or None; got {fn!r}")


def _optional_dims(in_dim: Any, out_shape: Any, width: Any) -> tuple:
    check_count("in_dim", in_dim, allow_none=True)
    check_count("width", width, allow_none=True)
    if out_shape is not None:
        if isinstance(out_shape, (str, bytes)) or not hasattr(out_shape, "__len__") or not all(
            isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in out_shape
        ):
            raise ValueError(
                f"out_shape: expected a tuple of positive integers (() for scalar "
                f"outputs); got {out_shape!r}"
            )
        out_shape = tuple(int(k) for k in out_shape)
    return (
        None if in_dim is None else int(in_dim),
        out_shape,
        None if width is None else int(width),
    )


def _missing(cls: str, name: str, needs: str) -> MissingModelFeature:
    return MissingModelFeature(
        f"{name}: {cls} was given no `{name}` function ({name}=None); {needs} need one: "
        f"pass {cls}(..., {name}=fn)"
    )


_CONSERVED_NEEDS = "save_conserved=True and dynsim.analysis.conserved_drift"
_PREDICTOR_NEEDS = (
    "SimulationResult.predictor() and the predictor measures (distance, cosine, "
    "support_recovery, sparsity, margins; the dist_min_l2, dist_min_l1 analyses)"
)


class Custom(AbstractTreeModel):
    r"""A model given by its function: f(θ; X) = `apply(params, X)`.

    **Arguments:**

    - `apply`: `apply(params, X) -> predictions` for one seed: X of shape (n, d),
      predictions of shape (n, *out_shape) (`(n,)` for scalar outputs), written with
      `jax.numpy` (it is traced, vmapped over seeds and differentiated by reverse mode).
    - `params_like`: the parameter PyTree, as an example (arrays, e.g. one seed's
      initial parameters) or as `jax.ShapeDtypeStruct`s: only its structure, shapes and
      dtypes are kept. Every leaf is trained and must be a real floating array.
    - `conserved`: optional `conserved(params) -> dict of arrays`, quantities gradient
      flow conserves. `None` (unknown): `save_conserved=True` and
      `analysis.conserved_drift` raise a `ValueError` naming `conserved`.
    - `predictor`: optional `predictor(params) -> array`, the end-to-end linear
      predictor of a model linear in its input. `None`: `SimulationResult.predictor()`
      and the predictor measures raise a `ValueError` naming `predictor`.
    - `in_dim`, `out_shape`, `width`: optional; without them the data give the input
      and output shapes, and width-scaled inits (`Gaussian(width_exponent=...)`) are
      refused.

    The gradient is JAX's reverse mode of `apply` (`AbstractModel.apply_and_pullback`).
    `apply` and the optional functions are static parts of the compiled program: pass
    the same function objects to reuse a compilation.

    **Raises:** `ValueError` naming the argument for a non-callable `apply`, a leaf of
    `params_like` that is not a floating array, and (at `simulate`, before anything
    compiles) an `apply` that fails on the data or whose predictions do not have the
    targets' shape.
    """

    fn: Callable = eqx.field(static=True)
    treedef: Any = eqx.field(static=True)
    leaves: tuple = eqx.field(static=True)
    conserved_fn: Callable | None = eqx.field(static=True, default=None)
    predictor_fn: Callable | None = eqx.field(static=True, default=None)
    in_dim_: int | None = eqx.field(static=True, default=None)
    out_shape_: tuple[int, ...] | None = eqx.field(static=True, default=None)
    width_: int | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        apply: Callable,
        params_like: Any,
        *,
        conserved: Callable | None = None,
        predictor: Callable | None = None,
        in_dim: int | None = None,
        out_shape: tuple[int, ...] | None = None,
        width: int | None = None,
    ):
        if not callable(apply):
            raise ValueError(f"apply: expected a callable apply(params, X); got {apply!r}")
        _optional_callable("conserved", conserved)
        _optional_callable("predictor", predictor)
        leaves, treedef = jax.tree.flatten(params_like)
        if not leaves:
            raise ValueError(
                f"params_like: expected a PyTree of arrays or ShapeDtypeStructs; got "
                f"{params_like!r} (no leaves)"
            )
        self.fn = apply
        self.treedef = treedef
        self.leaves = tuple(_struct(leaf, "params_like") for leaf in leaves)
        self.conserved_fn = conserved
        self.predictor_fn = predictor
        self.in_dim_, self.out_shape_, self.width_ = _optional_dims(in_dim, out_shape, width)

    def apply(self, params: Params, X: Inputs) -> Predictions:
        return self.fn(params, X)

    def conserved(self, params: Params) -> dict[str, Array]:
        if self.conserved_fn is None:
            raise _missing("Custom", "conserved", _CONSERVED_NEEDS)
        return self.conserved_fn(params)

    def predictor(self, params: Params) -> Array:
        if self.predictor_fn is None:
            raise _missing("Custom", "predictor", _PREDICTOR_NEEDS)
        return self.predictor_fn(params)
