"""Shared test helpers."""

import jax
import numpy as np


def rel_err(a, b) -> float:
    """max |a − b| / max |b| over all leaves (0 when both vanish)."""
    num = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    den = max(float(np.max(np.abs(np.asarray(y)))) for y in jax.tree.leaves(b))
    return num / den if den > 0 else num


def trees_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def datasets_identical(a, b) -> None:
    """Assert two xarray Datasets hold bitwise the same variables, dtypes and coords."""
    assert set(a.data_vars) == set(b.data_vars)
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)
        assert a[v].dtype == b[v].dtype
    for c in a.coords:
        np.testing.assert_array_equal(a[c].values, b[c].values)
