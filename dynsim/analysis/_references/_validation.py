"""Input checks shared by the reference solvers (numpy side, float64)."""

import jax
import jax.numpy as jnp
import numpy as np


def as_matrix(name: str, x) -> np.ndarray:
    """`x` as a finite float64 numpy matrix, else `ValueError` naming `name`."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: cannot be converted to a float array ({e})") from e
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-d array (n, d); got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: must be non-empty; got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains non-finite values")
    return a


def as_targets(name: str, y, n: int, *, allow_matrix: bool = True) -> np.ndarray:
    """`y` as finite float64 `(n,)` or `(n, m)`, else `ValueError` naming `name`."""
    try:
        a = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: cannot be converted to a float array ({e})") from e
    allowed = (1, 2) if allow_matrix else (1,)
    if a.ndim not in allowed or a.shape[0] != n:
        want = "(n,) or (n, m)" if allow_matrix else "(n,)"
        raise ValueError(f"{name}: expected shape {want} with n = {n}; got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains non-finite values")
    return a


def as_vector(name: str, v, d: int) -> np.ndarray:
    """`v` as finite float64 `(d,)` (a scalar is broadcast), else `ValueError`."""
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: cannot be converted to a float array ({e})") from e
    if a.ndim == 0:
        a = np.full((d,), float(a))
    if a.shape != (d,):
        raise ValueError(f"{name}: expected shape ({d},); got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains non-finite values")
    return a


def as_positive_scalar(name: str, x, *, allow_zero: bool = False) -> float:
    """`x` as a finite float > 0 (or ≥ 0), else `ValueError` naming `name`."""
    try:
        v = float(x)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: expected a scalar; got {x!r}") from e
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a finite scalar {bound}; got {x!r}")
    return v


def to_jax(x: np.ndarray) -> jax.Array:
    """numpy result → jax array (float64 when x64 is enabled)."""
    return jnp.asarray(x)
