"""`Trajectories`: what a dynamics returns for one seed or a batch of seeds."""

import dataclasses
from typing import Any

import equinox as eqx
from jaxtyping import Float, Int, Int8, PyTree

from .._custom_types import AnyArray


class Trajectories(eqx.Module):
    r"""The solution of a dynamics θ(t) on a save grid, for one seed or a batch.

    `AbstractDynamics.run` gives one seed's (no seed axis); `run_batch` and
    `dynsim.simulate`'s chunks give a leading seed axis `S` on every array, written
    `*S` below (empty for one seed). Like diffrax's `Solution`, it holds the final state,
    the saved values and how the solve ended.

    **Fields:**

    - `params`: the final parameters θ(`t_final`), a PyTree of leaves (*S, ...).
    - `saved`: the summaries at the save times, a dict of PyTrees with leaves
      (*S, T, ...): `"loss"` L(θ(t_k)), `"grad_norm"` ‖∇L(θ(t_k))‖₂, and where asked
      `"metrics"` (dict by name), `"conserved"`, `"params"` (`Problem.summary`).
      After a trajectory stopped (converged, diverged, out of steps) its state is
      frozen: save times t_k > `t_final` hold the summary of the final state.
    - `ts`: the save times t_k, (*S, T) (for gradient descent, step × learning rate).
    - `status`: `int8` codes of `dynsim.Status`, (*S,).
    - `num_steps`: solver steps taken (attempts, for adaptive solvers) or descent
      steps, (*S,).
    - `t_final`: the time the trajectory stopped at, (*S,).
    - `params0`: the initial parameters θ(0), leaves (*S, ...), or `None`. The dynamics
      return `None` (their caller holds θ(0)); `dynsim.simulate` attaches them to each
      chunk it hands to its `callback` and to `SimulationResult.from_trajectories`.

    Fields can also be read by name: `trajectories["status"]` is `trajectories.status`.
    """

    params: PyTree[Float[AnyArray, "..."]]
    saved: dict[str, Any]
    ts: Float[AnyArray, "*S T"]
    status: Int8[AnyArray, "*S"]
    num_steps: Int[AnyArray, "*S"]
    t_final: Float[AnyArray, "*S"]
    params0: PyTree[Float[AnyArray, "..."]] | None = None

    def __getitem__(self, name: str) -> Any:
        if name not in _FIELDS:
            raise KeyError(name)
        return getattr(self, name)


_FIELDS = frozenset(f.name for f in dataclasses.fields(Trajectories))
