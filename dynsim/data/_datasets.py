"""Data sets: a training split (X, y) and a held-out split, and generators for them.

Every generator is deterministic given its `key` and returns a `Dataset` whose test split
is drawn from the same distribution (`n_test` samples).
"""

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, Float, Key
from ..models._base import AbstractModel


class Dataset(eqx.Module):
    """Inputs `X` (n, d), targets `y` (n,) or (n, m), and an optional held-out split.

    `info` holds generator metadata (e.g. the ground-truth `beta` or teacher parameters).
    """

    X: Float[Array, "n d"]
    y: Float[Array, "n *m"]
    X_test: Float[Array, "n_test d"] | None = None
    y_test: Float[Array, "n_test *m"] | None = None
    info: dict | None = None

    def __check_init__(self):
        for name in ("X", "y", "X_test", "y_test"):
            _check_real_float(name, getattr(self, name))
        if jnp.ndim(self.X) != 2:
            raise ValueError(f"data: X must be a 2-D array (n, d); got shape {jnp.shape(self.X)}")
        if jnp.shape(self.X)[0] < 1:
            raise ValueError("data: X has no samples (n = 0)")
        if jnp.ndim(self.y) < 1 or jnp.shape(self.y)[0] != jnp.shape(self.X)[0]:
            raise ValueError(
                f"data: y must have leading dimension n={jnp.shape(self.X)[0]}; "
                f"got shape {jnp.shape(self.y)}"
            )
        if (self.X_test is None) != (self.y_test is None):
            raise ValueError("data: give both X_test and y_test, or neither")
        if self.X_test is not None:
            d, m = jnp.shape(self.X)[1], jnp.shape(self.y)[1:]
            if jnp.ndim(self.X_test) != 2 or jnp.shape(self.X_test)[1] != d:
                raise ValueError(
                    f"data: X_test must have shape (n_test, {d}); got {jnp.shape(self.X_test)}"
                )
            n_test = jnp.shape(self.X_test)[0]
            if jnp.shape(self.y_test) != (n_test, *m):
                raise ValueError(
                    f"data: y_test must have shape {(n_test, *m)} (one target per row of "
                    f"X_test, shaped like y's); got {jnp.shape(self.y_test)}"
                )

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def dim(self) -> int:
        return self.X.shape[1]


def _check_real_float(name: str, arr: Any) -> None:
    """Data must be real floating arrays of at least single precision: complex values
    have no gradient flow here, and half precision overflows in the loss (max 65504)."""
    if arr is None:
        return
    dtype = getattr(arr, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"data: {name} must be a real floating array (float32 or float64); got "
            f"{dtype if dtype is not None else type(arr).__name__}"
        )
    if jnp.finfo(dtype).bits < 32:
        raise ValueError(
            f"data: {name} is {dtype}; use float32 or float64 (half precision overflows "
            "in the loss and its gradient)"
        )


def as_dataset(data: Any) -> Dataset:
    """A `Dataset` from a `Dataset` or a pair (X, y) of arrays."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) in (2, 4):
        names = ("X", "y") if len(data) == 2 else ("X", "y", "X_test", "y_test")
        arrays = []
        for name, a in zip(names, data, strict=True):
            try:
                kind = a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype
            except (TypeError, ValueError) as e:
                raise ValueError(f"data: {name} must hold real numbers: {e}") from None
            if jnp.issubdtype(kind, jnp.complexfloating) or (
                jnp.issubdtype(kind, jnp.floating) and jnp.finfo(kind).bits < 32
            ):
                _check_real_float(name, np.empty(0, kind))  # the Dataset's own message
            try:
                arrays.append(jnp.asarray(a, dtype=float))  # integers: the default float
            except (TypeError, ValueError) as e:
                raise ValueError(f"data: the arrays must hold real numbers: {e}") from None
        return Dataset(*arrays)
    raise ValueError(f"data: expected a Dataset or a pair (X, y); got {type(data).__name__}")


def _float() -> Any:
    return jnp.zeros(()).dtype


def _split(key: Key, n: int, n_test: int, sample) -> tuple[Array, Array]:
    X = sample(key, n + n_test)
    return X[:n], X[n:]


def regression(
    key: Key, n: int, d: int, *, n_test: int = 0, noise: float = 0.0, out_dim: int | None = None
) -> Dataset:
    """Linear regression y = Xβ* + ε, x ~ N(0, I_d), β* ~ N(0, I_d/d), ε ~ N(0, noise²).

    Over-parameterized when n < d. `out_dim=m` gives matrix targets Y = XB* + E (B* d×m).
    `info["beta"]` is β* (d,) or B* (d, m).
    """
    _check_sizes(n=n, d=d, n_test=n_test)
    kx, kb, ke = jax.random.split(key, 3)
    shape_b = (d,) if out_dim is None else (d, out_dim)
    beta = jax.random.normal(kb, shape_b, _float()) / np.sqrt(d)
    Xall = jax.random.normal(kx, (n + n_test, d), _float())
    yall = Xall @ beta + noise * jax.random.normal(ke, (n + n_test, *shape_b[1:]), _float())
    return Dataset(Xall[:n], yall[:n], Xall[n:], yall[n:], {"beta": beta, "noise": noise})


def sparse_regression(
    key: Key, n: int, d: int, k: int, *, n_test: int = 0, noise: float = 0.0
) -> Dataset:
    """Sparse regression y = Xβ* + ε with β* k-sparse: support uniform, entries ±1/√k.

    x ~ N(0, I_d); `info["beta"]`, `info["support"]` (sorted indices).
    """
    _check_sizes(n=n, d=d, n_test=n_test)
    if not 1 <= int(k) <= d:
        raise ValueError(f"k: sparsity must be in [1, d={d}]; got {k}")
    kx, ks, kv, ke = jax.random.split(key, 4)
    support = jnp.sort(jax.random.permutation(ks, d)[:k])
    signs = jnp.where(jax.random.bernoulli(kv, 0.5, (k,)), 1.0, -1.0).astype(_float())
    beta = jnp.zeros(d, _float()).at[support].set(signs / np.sqrt(k))
    Xall = jax.random.normal(kx, (n + n_test, d), _float())
    yall = Xall @ beta + noise * jax.random.normal(ke, (n + n_test,), _float())
    return Dataset(
        Xall[:n], yall[:n], Xall[n:], yall[n:], {"beta": beta, "support": support, "noise": noise}
    )


def teacher_student(
    key: Key,
    n: int,
    teacher,
    teacher_params=None,
    *,
    n_test: int = 0,
    noise: float = 0.0,
    teacher_std: float = 1.0,
) -> Dataset:
    """Inputs x ~ N(0, I_d), targets y = f_teacher(x) + ε from any dynsim model.

    `teacher_params` default: the teacher's Gaussian init with `teacher_std`.
    `info["teacher"]`, `info["teacher_params"]`.
    """

    if not isinstance(teacher, AbstractModel):
        raise ValueError(f"teacher: expected a dynsim model; got {type(teacher).__name__}")
    _check_sizes(n=n, d=teacher.in_dim, n_test=n_test)
    kx, kt, ke = jax.random.split(key, 3)
    if teacher_params is None:
        teacher_params = teacher.gaussian(kt, teacher_std)
    Xall = jax.random.normal(kx, (n + n_test, teacher.in_dim), _float())
    yall = teacher.apply(teacher_params, Xall)
    yall = yall + noise * jax.random.normal(ke, yall.shape, _float())
    return Dataset(
        Xall[:n], yall[:n], Xall[n:], yall[n:],
        {"teacher": teacher, "teacher_params": teacher_params, "noise": noise},
    )


def separable(key: Key, n: int, d: int, *, margin: float = 0.1, n_test: int = 0) -> Dataset:
    """Linearly separable binary classification with labels ±1 and margin ≥ `margin`.

    w* is a uniform unit vector; x ~ N(0, I_d), y = sign(w*ᵀx), then x ← x + margin·y·w*,
    so every point satisfies y w*ᵀx ≥ margin (w* need not be the max-margin direction).
    `info["w_star"]`.
    """
    _check_sizes(n=n, d=d, n_test=n_test)
    if not margin > 0:
        raise ValueError(f"margin: must be positive; got {margin}")
    kw, kx = jax.random.split(key)
    w = jax.random.normal(kw, (d,), _float())
    w = w / jnp.linalg.norm(w)
    Xall = jax.random.normal(kx, (n + n_test, d), _float())
    yall = jnp.where(Xall @ w >= 0, 1.0, -1.0).astype(_float())
    Xall = Xall + margin * yall[:, None] * w[None, :]
    return Dataset(Xall[:n], yall[:n], Xall[n:], yall[n:], {"w_star": w, "margin": margin})


def whitened(
    key: Key, n: int, d: int, singular_values: ArrayLike | Sequence[float], *, out_dim: int | None = None
) -> Dataset:
    """Whitened inputs with prescribed input–output correlation (Saxe et al., 2014).

    XᵀX = I_d exactly (sum convention, needs n ≥ d) and Σ_yx = YᵀX = U S Vᵀ with S the
    given singular values (r = len(S) ≤ min(m, d); m = out_dim or 1), U, V random
    orthonormal. Targets Y = X V S Uᵀ. `info`: `U` (m, r), `S` (r,), `V` (d, r).
    No test split (the setting is deterministic).
    """
    _check_sizes(n=n, d=d, n_test=0)
    if n < d:
        raise ValueError(f"n: whitened inputs need n >= d={d}; got {n}")
    m = out_dim or 1
    S = jnp.asarray(singular_values, _float())
    r = S.shape[0]
    if S.ndim != 1 or r > min(m, d) or r < 1:
        raise ValueError(
            f"singular_values: need 1..min(m={m}, d={d}) values; got {singular_values}"
        )
    kx, ku, kv = jax.random.split(key, 3)
    X, _ = jnp.linalg.qr(jax.random.normal(kx, (n, d), _float()))
    U, _ = jnp.linalg.qr(jax.random.normal(ku, (m, r), _float()))
    V, _ = jnp.linalg.qr(jax.random.normal(kv, (d, r), _float()))
    Y = X @ (V * S[None, :]) @ U.T
    y = Y[:, 0] if out_dim is None else Y
    return Dataset(X, y, None, None, {"U": U, "S": S, "V": V})


def pairwise_independent(
    key: Key, n: int, d: int, *, n_test: int = 0, target=None, min_angle: float = 1e-3
) -> Dataset:
    """Inputs on the unit sphere, pairwise linearly independent (Jentzen & Kröger, 2021).

    x ~ uniform on S^{d−1}; redrawn (deterministically from `key`) until every pair of
    training inputs satisfies |cos ∠(x_i, x_j)| ≤ cos(`min_angle`). Targets: `target(X)`
    if given, else y ~ N(0, 1) i.i.d. (test targets likewise; random targets have no
    test relation, so give `target` for a meaningful held-out risk).
    """
    _check_sizes(n=n, d=d, n_test=n_test)
    if d < 2:
        raise ValueError(f"d: pairwise linear independence needs d >= 2; got {d}")
    bound = float(np.cos(min_angle))
    for _ in range(100):
        kx, ky, key = jax.random.split(key, 3)
        Xall = jax.random.normal(kx, (n + n_test, d), _float())
        Xall = Xall / jnp.linalg.norm(Xall, axis=1, keepdims=True)
        G = np.abs(np.asarray(Xall[:n] @ Xall[:n].T)) - np.eye(n) * 2
        if G.max() <= bound:
            break
    else:
        raise ValueError(f"min_angle: could not draw {n} inputs in d={d} that far apart")
    yall = target(Xall) if target is not None else jax.random.normal(ky, (n + n_test,), _float())
    return Dataset(Xall[:n], yall[:n], Xall[n:], yall[n:], {"min_angle": min_angle})


def _check_sizes(*, n: int, d: int, n_test: int) -> None:
    if int(n) < 1:
        raise ValueError(f"n: number of samples must be >= 1; got {n}")
    if int(d) < 1:
        raise ValueError(f"d: dimension must be >= 1; got {d}")
    if int(n_test) < 0:
        raise ValueError(f"n_test: must be >= 0; got {n_test}")
