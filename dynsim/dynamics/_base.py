"""The interface every dynamics implements, and the helpers they share: save grids and
blockwise batching."""

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import BatchedKey, BatchedParams, Key, Params
from .._problem import Problem
from ._trajectories import Trajectories


class AbstractDynamics(eqx.Module):
    """Evolves one seed's parameters and saves summaries on a time grid.

    `run(problem, params0, key)` returns one seed's `Trajectories`: the final
    parameters, the summaries at the save times `save_times()`, the status, the step
    count and the stop time. After a trajectory stops (converged, diverged, out of
    steps) its state is frozen: saved values at later times repeat the stopped state.
    """

    @abc.abstractmethod
    def save_times(self) -> Any: ...

    @abc.abstractmethod
    def run(self, problem: Problem, params0: Params, key: Key) -> Trajectories: ...

    def run_batch(
        self, problem: Problem, params0: BatchedParams, keys: BatchedKey
    ) -> Trajectories:
        """`run` for a batch of seeds (leading axis on `params0` and `keys`).

        The default vmaps `run`; a dynamics may override it with an explicitly batched
        implementation that gives the same per-seed results.
        """
        return jax.vmap(lambda p, k: self.run(problem, p, k))(params0, keys)


def log_grid(t1: float | int, n: int, first: float | int) -> np.ndarray:
    """n save times that end at t1: [t1] for n = 1, [0, t1] for n = 2, else
    [0, first, …, t1], geometric after 0 (`first` < t1)."""
    if n < 1:
        raise ValueError(f"n_save: must be a positive integer; got {n}")
    if n == 1:
        return np.asarray([float(t1)])
    if n == 2:
        return np.asarray([0.0, float(t1)])
    return np.concatenate([[0.0], np.geomspace(first, t1, n - 1)])


def blockwise(fn, block_size, problem, params0, keys):
    """`fn(problem, params0, keys)` applied to consecutive blocks of `block_size` seeds.

    The blocks run one after another inside one program (`lax.map`); the batch is padded
    with copies of its last seed to a multiple of `block_size` and the padding is dropped.

    No block has a single seed (a batch of one is padded to two, `block_size=1` acts as
    2): XLA lowers a batch of one to different matrix kernels (matrix-vector products)
    whose rounding differs, which would make a seed's result depend on whether it ran
    alone (`chunk_size=1`, `seeds=1`) or with others.
    """
    n = jax.tree.leaves(params0)[0].shape[0]
    if block_size is None or n <= block_size:
        block_size, n_blocks = max(n, 2), 1
    else:
        block_size = max(int(block_size), 2)
        n_blocks = -(-n // block_size)
    pad = n_blocks * block_size - n

    def split(x):
        if pad:
            x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)])
        return x.reshape((n_blocks, block_size) + x.shape[1:])

    out = jax.lax.map(
        lambda a: fn(problem, a[0], a[1]), (jax.tree.map(split, params0), split(keys))
    )
    return jax.tree.map(lambda x: x.reshape((n_blocks * block_size,) + x.shape[2:])[:n], out)
