"""Ensemble summaries over seeds: mean, spread, quantiles and a bootstrap CI, as xarray."""

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

_MAX_GATHER = 20_000_000  # elements gathered at once by the vectorized bootstrap


def summarize(
    values: Any,
    *,
    dim: str = "seed",
    quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95),
    bootstrap: int = 1000,
    ci: float = 0.95,
    mask: Any = None,
    seed: int | np.random.Generator = 0,
):
    """Summarize a per-seed measure over the seed axis.

    **Arguments:**

    - `values`: a numpy/jax array whose axis 0 is the seed axis, or an
      `xarray.DataArray` with dimension `dim`; other axes are kept (e.g. time).
    - `dim`: the name of the seed dimension.
    - `quantiles`: levels of the empirical quantiles (linear interpolation).
    - `bootstrap`: number B of bootstrap resamples for the CI of the mean (0: no CI).
    - `ci`: confidence level of the percentile bootstrap interval.
    - `mask`: optional (S,) booleans, seeds to include (e.g. `result.ok()`).
    - `seed`: integer seed or `numpy.random.Generator` of the bootstrap.

    Non-finite entries (NaN, ±inf: diverged or undefined seeds) and masked-out seeds are
    excluded entry by entry; `count` and `excluded` report how many. The bootstrap
    resamples, for every entry, `count` values with replacement from that entry's valid
    values (vectorized in numpy: one (B, S) uniform draw shared across entries), and the
    CI is the [(1 − ci)/2, (1 + ci)/2] percentile interval of the resampled means.

    **Returns:** an `xarray.Dataset` with variables `mean`, `std` (ddof = 1), `sem`,
    `quantiles` (extra dimension `quantile`), `ci_low`, `ci_high`, `count`, `excluded`,
    over the remaining dimensions of `values`.
    """
    import xarray as xr  # deferred: `import dynsim` does not load xarray and pandas

    if isinstance(values, xr.DataArray):
        if dim not in values.dims:
            raise ValueError(f"dim: {dim!r} is not a dimension of values {values.dims}")
        da = values.transpose(dim, ...)
    else:
        arr = np.asarray(values, dtype=float)
        if arr.ndim == 0:
            raise ValueError("values: need at least one (seed) axis")
        da = xr.DataArray(arr, dims=(dim, *[f"dim_{i}" for i in range(1, arr.ndim)]))
    if not 0 < ci < 1:
        raise ValueError(f"ci: expected a level in (0, 1); got {ci!r}")
    qs = np.asarray(quantiles, dtype=float)
    if np.any((qs < 0) | (qs > 1)):
        raise ValueError(f"quantiles: levels must lie in [0, 1]; got {quantiles!r}")
    x = np.asarray(da.values, dtype=float)
    S = x.shape[0]
    rest_dims, rest_shape = da.dims[1:], x.shape[1:]
    x = x.reshape(S, -1)
    valid = np.isfinite(x)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != (S,):
            raise ValueError(f"mask: expected shape ({S},); got {m.shape}")
        valid &= m[:, None]
    count = valid.sum(axis=0)
    xv = np.where(valid, x, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        mean = np.nanmean(xv, axis=0)
        std = np.nanstd(xv, axis=0, ddof=1)
        std = np.where(count >= 2, std, np.nan)
        sem = std / np.sqrt(count)
        quant = np.nanquantile(xv, qs, axis=0) if S else np.full((qs.size, x.shape[1]), np.nan)
    lo = np.full(x.shape[1], np.nan)
    hi = np.full(x.shape[1], np.nan)
    if bootstrap and S:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        lo, hi = _bootstrap_ci(x, valid, count, int(bootstrap), ci, rng)

    def shaped(a):
        return a.reshape(rest_shape)

    coords = {k: v for k, v in da.coords.items() if dim not in v.dims}
    data = {
        "mean": (rest_dims, shaped(mean)),
        "std": (rest_dims, shaped(std)),
        "sem": (rest_dims, shaped(sem)),
        "quantiles": (("quantile", *rest_dims), quant.reshape(qs.size, *rest_shape)),
        "ci_low": (rest_dims, shaped(lo)),
        "ci_high": (rest_dims, shaped(hi)),
        "count": (rest_dims, shaped(count)),
        "excluded": (rest_dims, shaped(S - count)),
    }
    coords["quantile"] = qs
    attrs = {"ci": ci, "bootstrap": int(bootstrap), "seeds": S}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _bootstrap_ci(x, valid, count, B, ci, rng):
    S, C = x.shape
    # Valid values first in every column (stable), so resampling index < count picks
    # uniformly among the valid values of that column.
    order = np.argsort(~valid, axis=0, kind="stable")
    xs = np.take_along_axis(np.where(valid, x, 0.0), order, axis=0)
    u = rng.random((B, S))
    lo = np.full(C, np.nan)
    hi = np.full(C, np.nan)
    pos_ok = np.arange(S)[None, :, None]
    step = max(1, _MAX_GATHER // max(1, B * S))
    alpha = (1 - ci) / 2
    for c0 in range(0, C, step):
        cols = slice(c0, min(C, c0 + step))
        cnt = count[cols]
        idx = np.floor(u[:, :, None] * cnt[None, None, :]).astype(np.int64)  # (B, S, c)
        idx = np.minimum(idx, np.maximum(cnt - 1, 0)[None, None, :])
        draws = np.take_along_axis(xs[:, cols][None], idx, axis=1)
        draws = np.where(pos_ok < cnt[None, None, :], draws, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = draws.sum(axis=1) / cnt[None, :]
        q = np.quantile(means, [alpha, 1 - alpha], axis=0)
        good = cnt >= 2
        lo[cols] = np.where(good, q[0], np.nan)
        hi[cols] = np.where(good, q[1], np.nan)
    return lo, hi


class _quiet:
    """Silence numpy's all-NaN-slice warnings inside `summarize`."""

    def __enter__(self):
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
