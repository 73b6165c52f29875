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

    def check_params(self, params_like: Any) -> None:
        """Check the dynamics' own callables against one seed's parameters
        (`jax.ShapeDtypeStruct`s), before anything compiles; `ValueError` naming the
        field. The default has nothing to check."""

    def check_problem(self, loss: Any, data: Any) -> None:
        """Check the dynamics against the loss and the training data (a
        `dynsim.data.Dataset`) before anything compiles; `ValueError` naming the
        argument. The default has nothing to check."""

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


def blockwise(fn, block_size, problem, params0, keys, *, pad_small: bool = False):
    """`fn(problem, params0, keys)` applied to consecutive blocks of `block_size` seeds
    (`map_blocks`)."""
    return map_blocks(lambda p, k: fn(problem, p, k), block_size, params0, keys,
                      pad_small=pad_small)


def pads_small_batches(block_size: int | str | None) -> bool:
    """Whether a batch smaller than one block is padded to a full block: when the
    dynamics' `block_size` is a number (every batch then runs in blocks of exactly that
    shape), not for `"auto"` (a small batch runs as one block of its own size, cheaper)
    or `None` (all seeds at once)."""
    return block_size is not None and block_size != "auto"


def map_blocks(fn, block_size: int | None, *batched, pad_small: bool = False):
    """`fn(*batched)` computed on consecutive blocks of `block_size` seeds.

    The blocks run one after another inside one program (`lax.map`); a batch larger than
    one block (or, with `pad_small`, any batch) is padded with copies of its last seed to
    a multiple of `block_size`, and the padding is dropped. Every block thus has the
    same shape whatever the number of seeds, so a seed's result does not depend on how
    many seeds run with it or in which chunk (XLA's kernels, and their rounding, depend
    on the batch shape). Without `pad_small`, a batch of at most `block_size` seeds runs
    as one block of its own size (at least 2: a batch of one would lower to
    matrix-vector kernels whose rounding differs), which keeps small runs cheap.
    `None`: one block of all seeds.
    """
    n = jax.tree.leaves(batched)[0].shape[0]
    if block_size is None or (n <= block_size and not pad_small):
        block = max(n, 2)
    else:
        block = max(int(block_size), 2)
    n_blocks = -(-n // block)
    padded = pad_seeds(batched, n_blocks * block)
    split = lambda x: x.reshape((n_blocks, block) + x.shape[1:])
    out = jax.lax.map(lambda a: fn(*a), jax.tree.map(split, padded))
    return jax.tree.map(lambda x: x.reshape((n_blocks * block,) + x.shape[2:])[:n], out)


def pad_seeds(batched, n: int):
    """Leaves (S, ...) padded to (n, ...) with copies of the last seed (n ≥ S)."""

    def pad(x):
        extra = n - x.shape[0]
        return jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)]) if extra else x

    return jax.tree.map(pad, batched)
