"""The result of `dynsim.simulate`: final parameters and saved summaries for every seed."""

import dataclasses
from typing import Any

import equinox as eqx
import jax
import numpy as np

from ._custom_types import AnyArray, Array, Float, HostBatchedParams, Int
from ._status import STATUS_NAMES, Status, is_ok
from .dynamics import Trajectories


class SimulationResult(eqx.Module):
    """Everything `simulate` computed, with a leading seed axis of length S.

    **Fields:**

    - `params`, `params0`: final and initial parameters (PyTrees, leaves (S, ...)).
    - `ts`: save times (T,) (for gradient descent, step × learning rate).
    - `loss`, `grad_norm`: (S, T) training loss and ‖∇L‖₂ at the save times.
    - `metrics`: dict of user metrics, each (S, T, ...).
    - `conserved`: dict of conserved quantities (S, T, ...) if asked (`save_conserved`),
      else `None`.
    - `path`: parameters at the save times (S, T, ...) if asked (`save_params`), else `None`.
    - `status`: (S,) `int8` codes of `dynsim.Status`; `num_steps` (S,), `t_final` (S,).
    - `seed_ids`: (S,) the seed indices i (seed i uses `jax.random.fold_in(key, i)`).
    - `wall_time`, `compile_time`: seconds (NaN when run under a JAX transformation).
    - `model`, `data`, `loss_fn`, `dynamics`: the configuration, for the analysis layer.
    """

    params: HostBatchedParams
    params0: HostBatchedParams
    ts: Float[AnyArray, " T"]
    loss: Float[AnyArray, "S T"]
    grad_norm: Float[AnyArray, "S T"]
    metrics: dict
    conserved: dict | None
    path: Any
    status: Int[AnyArray, " S"]
    num_steps: Int[AnyArray, " S"]
    t_final: Float[AnyArray, " S"]
    seed_ids: Int[AnyArray, " S"]
    wall_time: float
    compile_time: float
    model: Any
    data: Any
    loss_fn: Any
    dynamics: Any

    @classmethod
    def from_trajectories(
        cls,
        trajectories: Trajectories,
        *,
        model: Any,
        data: Any,
        loss_fn: Any,
        dynamics: Any,
        seed_start: int = 0,
        wall_time: float = float("nan"),
        compile_time: float = float("nan"),
    ) -> "SimulationResult":
        """The result of S consecutive seeds `seed_start`, …, `seed_start + S − 1`
        from their `Trajectories` (leading seed axis S, with `params0` attached, as
        `simulate` computes them) and the configuration that produced them.

        The save times are the first seed's (every seed has the same); the summaries
        `saved` become `loss`, `grad_norm`, `metrics` (`{}` if none), `conserved` and
        `path` (`None` unless saved). `wall_time`, `compile_time`: seconds, NaN if not
        timed.
        """
        saved = trajectories.saved
        n_seeds = int(np.shape(trajectories.status)[0])
        return cls(
            params=trajectories.params,
            params0=trajectories.params0,
            ts=trajectories.ts[0],
            loss=saved["loss"],
            grad_norm=saved["grad_norm"],
            metrics=saved.get("metrics", {}),
            conserved=saved.get("conserved"),
            path=saved.get("params"),
            status=trajectories.status,
            num_steps=trajectories.num_steps,
            t_final=trajectories.t_final,
            seed_ids=np.arange(seed_start, seed_start + n_seeds),
            wall_time=wall_time,
            compile_time=compile_time,
            model=model,
            data=data,
            loss_fn=loss_fn,
            dynamics=dynamics,
        )

    @property
    def num_seeds(self) -> int:
        return int(np.shape(self.status)[0])

    def status_counts(self) -> dict[str, int]:
        """Number of seeds per status name."""
        codes = np.asarray(self.status)
        return {STATUS_NAMES[s.value]: int(np.sum(codes == s.value)) for s in Status}

    def ok(self) -> np.ndarray:
        """(S,) mask of trajectories that reached the end or converged
        (`dynsim._status.is_ok`; a non-finite loss or gradient is `DIVERGED`)."""
        return is_ok(self.status)

    def predictor(self) -> Array:
        """End-to-end predictor of every seed, (S, ...) (models linear in their input)."""
        return jax.vmap(self.model.predictor)(self.params)

    def select(self, index) -> "SimulationResult":
        """The sub-result for seeds `index` (a slice, mask or integer array)."""
        take = lambda x: x[index]
        per_seed = dict(
            params=jax.tree.map(take, self.params),
            params0=jax.tree.map(take, self.params0),
            loss=take(self.loss),
            grad_norm=take(self.grad_norm),
            metrics=jax.tree.map(take, self.metrics),
            conserved=None if self.conserved is None else jax.tree.map(take, self.conserved),
            path=None if self.path is None else jax.tree.map(take, self.path),
            status=take(self.status),
            num_steps=take(self.num_steps),
            t_final=take(self.t_final),
            seed_ids=take(self.seed_ids),
        )
        return dataclasses.replace(self, **per_seed)

    def to_xarray(self):
        """An `xarray.Dataset` with coordinates `seed` and `time`.

        Variables: `loss`, `grad_norm` (seed, time); `status`, `num_steps`, `t_final`
        (seed); `metric_<name>`, `conserved_<name>` (seed, time, ...); final and initial
        parameters as `param_<path>` and `param0_<path>` (seed, ...). Attributes:
        `wall_time`, `compile_time`, `model`, `dynamics`, `loss_fn`, status names.
        """
        import xarray as xr

        seed = np.asarray(self.seed_ids)
        coords = {"seed": seed, "time": np.asarray(self.ts)}
        data_vars = {
            "loss": (("seed", "time"), np.asarray(self.loss)),
            "grad_norm": (("seed", "time"), np.asarray(self.grad_norm)),
            "status": (("seed",), np.asarray(self.status)),
            "num_steps": (("seed",), np.asarray(self.num_steps)),
            "t_final": (("seed",), np.asarray(self.t_final)),
        }

        def add(prefix, tree, lead):
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
                name = prefix + "_".join(_key_name(p) for p in path)
                arr = np.asarray(leaf)
                dims = lead + tuple(f"{name}_dim{i}" for i in range(arr.ndim - len(lead)))
                data_vars[name] = (dims, arr)

        add("metric_", self.metrics, ("seed", "time"))
        if self.conserved is not None:
            add("conserved_", self.conserved, ("seed", "time"))
        add("param_", self.params, ("seed",))
        add("param0_", self.params0, ("seed",))
        if self.path is not None:
            add("path_", self.path, ("seed", "time"))
        attrs = {
            "wall_time": float(self.wall_time),
            "compile_time": float(self.compile_time),
            "model": repr(self.model),
            "dynamics": repr(self.dynamics),
            "loss_fn": repr(self.loss_fn),
            "status_codes": ", ".join(f"{k}={v}" for k, v in STATUS_NAMES.items()),
        }
        return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _key_name(p) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(p, attr):
            return str(getattr(p, attr))
    return str(p)
