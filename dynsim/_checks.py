"""Validation of user arguments: a `ValueError` that names the argument, raised before
anything is traced or compiled. Values are checked when they are concrete (Python or
NumPy numbers, JAX arrays that are not tracers); traced values pass through."""

import numbers
from typing import Any

import jax
import numpy as np

MAX_COUNT = 2**31 - 2
"""Largest step count or budget: the loops count steps in int32."""


def concrete_value(name: str, value: Any) -> np.ndarray | None:
    """`value` as a NumPy array if it is concrete, None if traced; a `ValueError`
    naming `name` if it is not a real number (a string, a complex or a boolean)."""
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise ValueError(f"{name}: must be a real number; got {value!r}")
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - anything that is not array-like
        raise ValueError(f"{name}: must be a real number; got {value!r}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"{name}: must be a real number; got {value!r}")
    return arr


def check_positive(name: str, value: Any, *, allow_none: bool = False) -> None:
    """`ValueError` naming `name` unless value > 0 and finite (every entry, if an array)."""
    if value is None:
        if allow_none:
            return
        raise ValueError(f"{name}: must be a positive number; got None")
    arr = concrete_value(name, value)
    if arr is not None and not np.all(np.isfinite(arr) & (arr > 0)):
        raise ValueError(f"{name}: must be a positive finite number; got {value}")


def check_finite(name: str, value: Any, *, nonnegative: bool = False) -> None:
    """`ValueError` naming `name` unless every entry is finite (and ≥ 0 if asked)."""
    if isinstance(value, (list, tuple)):
        for v in value:
            check_finite(name, v, nonnegative=nonnegative)
        return
    arr = concrete_value(name, value)
    if arr is None:
        return
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: must be finite; got {value}")
    if nonnegative and np.any(arr < 0):
        raise ValueError(f"{name}: must be non-negative; got {value}")


def check_count(name: str, value: Any, *, allow_none: bool = False) -> None:
    """`ValueError` naming `name` unless value is an integer in [1, `MAX_COUNT`]."""
    if value is None and allow_none:
        return
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(f"{name}: must be a positive integer; got {value!r}")
    if not 1 <= int(value) <= MAX_COUNT:
        raise ValueError(f"{name}: must be an integer in [1, 2**31 - 2]; got {value}")


def check_block_size(value: Any) -> None:
    """A dynamics' `block_size`: a positive integer, `"auto"` or `None`."""
    if value is None or (isinstance(value, str) and value == "auto"):
        return
    if isinstance(value, str):
        raise ValueError(f"block_size: must be a positive integer, 'auto' or None; got {value!r}")
    check_count("block_size", value)


def check_ts(ts: Any, name: str = "ts") -> np.ndarray:
    """Save times: a non-empty, finite, non-negative, strictly increasing 1-D sequence."""
    try:
        arr = np.asarray(ts, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a 1-D sequence of numbers; got {ts!r}") from None
    if arr.ndim != 1 or arr.size < 1:
        raise ValueError(f"{name}: must be a non-empty 1-D sequence of times; got shape {arr.shape}")
    if np.any(~np.isfinite(arr)) or np.any(arr < 0) or np.any(np.diff(arr) <= 0):
        raise ValueError(f"{name}: times must be finite, >= 0 and strictly increasing")
    return arr
