r"""Stochastic gradient flows dθ = −∇L(θ) dt + Σ(θ)^{1/2} dW as diffrax SDEs, one
Brownian motion per seed."""

import math
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_block_size, check_count, check_finite, check_positive, check_ts
from .._custom_types import BatchedKey, BatchedParams, Key, Params, RealScalarLike
from .._problem import Problem, label_noise_base
from ..losses._objective import supports_minibatch
from ._base import AbstractDynamics, blockwise, log_grid, pads_small_batches
from ._brownian import StepBrownianPath
from ._flow_helpers import SolverTime, params_dtype
from ._flow_solve import solve_seed
from ._noise import NOISE_KINDS, diffusion, noise_shape
from ._trajectories import Trajectories
from .batched import auto_vmap_block

# Solvers for additive noise (isotropic): Itô and Stratonovich calculus coincide there,
# so any of these converges to the Itô SDE. Multiplicative noise (sgd, label) is Itô;
# of diffrax's solvers only Euler–Maruyama handles general (non-diagonal,
# non-commutative) Itô noise.
ADDITIVE_SOLVERS = (diffrax.Euler, diffrax.Heun, diffrax.SRA1, diffrax.ShARK, diffrax.SEA)
ITO_SOLVERS = (diffrax.Euler,)


class StochasticGradientFlow(AbstractDynamics):
    r"""dθ = −∇L(θ) dt + Σ(θ)^{1/2} dW (Itô), from t = 0 to `t1`, with fixed steps `dt0`.

    The noise (`dynsim.dynamics._noise` states the factors):

    - `"isotropic"`: Σ = 2τI, Langevin dynamics at temperature τ = `temperature`; for a
      confining L its stationary density is ∝ exp(−L/τ).
    - `"sgd"`: Σ = (η/b)·c·Cov_i[Gᵢ(θ)], the diffusion approximation of minibatch SGD
      with learning rate η = `learning_rate` and b = `batch_size` samples drawn without
      replacement (`GradientDescent(batch_size=b)`); Gᵢ is the gradient of sample i's
      one-sample estimate of L (so ∇L is their mean), Cov_i the covariance over the n
      samples, c = (n − b)/(n − 1) the finite-population correction (c = 1 − O(b/n):
      the usual (η/b)·Cov for b ≪ n; b = n gives no noise). The factor is the n
      centred per-sample gradients (rank ≤ n − 1), never a d×d matrix.
    - `"label"`: Σ = ηδ²KKᵀ, K = ∂_y∇_θL (for ½‖f − y‖², ∇_θL = Jᵀ(f − y) and
      K = −Jᵀ, so Σ = ηδ²JᵀJ, J the Jacobian of the predictions), the SDE of label-noise gradient descent with η = `learning_rate`
      and target noise δ = `label_noise` (`GradientDescent(label_noise=δ)`).

    Time is matched to the discrete methods: GD/SGD step k is time t = kη.

    **Arguments:**

    - `t1`: final time (a number: the step grid is static).
    - `dt0`: the step (a number; required). The steps are k·`dt0`, with the save times
      and `t1` added to the grid (`diffrax.StepTo`), so every saved state is a state of
      the scheme, not an interpolation.
    - `noise`: `"isotropic"`, `"sgd"` or `"label"` (above); each kind requires its own
      parameters below and refuses the others.
    - `temperature`: τ ≥ 0 of `"isotropic"` noise (Σ = 2τI).
    - `learning_rate`: η > 0 of `"sgd"` and `"label"` noise (the step the SDE models).
    - `batch_size`: b, 1 ≤ b ≤ n, of `"sgd"` noise (b = n: no noise).
    - `label_noise`: δ ≥ 0 of `"label"` noise (the targets' noise level).
    - `ts`: save times within [0, t1]; default `n_save` points as `GradientFlow`'s.
    - `n_save`: the number of default save times (0, then geometric up to t1).
    - `solver`: `diffrax.Euler()` (Euler–Maruyama, default; weak order 1, strong ½) for
      any noise; for additive (`"isotropic"`) noise also `Heun`, `SRA1`, `ShARK`, `SEA`
      (higher strong order; they get the space-time Lévy area they need).
    - `brownian`: each seed's Brownian motion, drawn from its dynamics key alone
      (`simulate`: from (key, i)), so it does not depend on the chunking or on the
      other seeds. `"steps"` (default): one normal draw per step
      (`dynsim.dynamics._brownian.StepBrownianPath`); the path depends on the step grid.
      `"tree"`: `diffrax.VirtualBrownianTree`, the same path for every `dt0` and solver
      (below), for convergence studies in `dt0`; it costs O(log(t1/tol)) draws per step
      (tens of times slower than `"steps"` for small models).
    - `brownian_tol`: the tree's resolution (`brownian="tree"` only; default
      min(t1/2¹⁶, dt0/16): one tree for every dt0 ≥ 16·t1/2¹⁶).
    - `stop_loss`: stop (`CONVERGED`) once L(θ) < `stop_loss`, as `GradientFlow`.
    - `stop_grad_norm`: stop (`CONVERGED`) once ‖∇L(θ)‖ < `stop_grad_norm`.
    - `divergence`: stop with `DIVERGED` once max|θ_i| exceeds it (or L is not finite).
    - `adjoint`: diffrax adjoint for differentiating through the solve (default
      `RecursiveCheckpointAdjoint()`).
    - `block_size`: seeds per `vmap` block of per-seed `diffeqsolve` (`"auto"`:
      `dynsim.dynamics.batched.auto_vmap_block`; results bitwise independent of the
      chunking, for every chunking when `block_size` is a number and for chunks of at
      least one block with `"auto"`, as `GradientFlow`'s).
    """

    t1: float = eqx.field(static=True)
    dt0: float = eqx.field(static=True)
    noise: str = eqx.field(static=True, default="isotropic")
    temperature: RealScalarLike | None = None
    learning_rate: RealScalarLike | None = None
    batch_size: int | None = eqx.field(static=True, default=None)
    label_noise: RealScalarLike | None = None
    ts: Any = eqx.field(static=True, default=None, converter=lambda ts: _as_times(ts))
    n_save: int = eqx.field(static=True, default=65)
    solver: diffrax.AbstractSolver = diffrax.Euler()
    brownian: str = eqx.field(static=True, default="steps")
    brownian_tol: float | None = eqx.field(static=True, default=None)
    stop_loss: RealScalarLike | None = None
    stop_grad_norm: RealScalarLike | None = None
    divergence: RealScalarLike = 1e8
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint()
    block_size: int | str | None = eqx.field(static=True, default="auto")

    def __check_init__(self):
        check_block_size(self.block_size)
        for name in ("t1", "dt0"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ValueError(f"{name}: must be a number (the step grid is static); got {value!r}")
            check_positive(name, value)
        if self.dt0 > self.t1:
            raise ValueError(f"dt0: must be at most t1={self.t1}; got {self.dt0}")
        if self.brownian not in ("steps", "tree"):
            raise ValueError(f"brownian: expected 'steps' or 'tree'; got {self.brownian!r}")
        if self.brownian_tol is not None and self.brownian != "tree":
            raise ValueError("brownian_tol: only used with brownian='tree'")
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"noise: expected one of {NOISE_KINDS}; got {self.noise!r}")
        needs = {"isotropic": ("temperature",), "sgd": ("learning_rate", "batch_size"),
                 "label": ("learning_rate", "label_noise")}[self.noise]
        for name in ("temperature", "learning_rate", "batch_size", "label_noise"):
            value = getattr(self, name)
            if name in needs and value is None:
                raise ValueError(f"{name}: noise={self.noise!r} needs it")
            if name not in needs and value is not None:
                raise ValueError(f"{name}: not used by noise={self.noise!r}; leave it None")
        for name in ("temperature", "label_noise"):
            if getattr(self, name) is not None:
                check_finite(name, getattr(self, name), nonnegative=True)
        check_positive("learning_rate", self.learning_rate, allow_none=True)
        check_count("batch_size", self.batch_size, allow_none=True)
        check_positive("brownian_tol", self.brownian_tol, allow_none=True)
        check_positive("stop_loss", self.stop_loss, allow_none=True)
        check_positive("stop_grad_norm", self.stop_grad_norm, allow_none=True)
        check_positive("divergence", self.divergence)
        check_count("n_save", self.n_save)
        allowed = ADDITIVE_SOLVERS if self.noise == "isotropic" else ITO_SOLVERS
        if type(self.solver) not in allowed:
            raise ValueError(
                f"solver: noise={self.noise!r} needs one of "
                f"{', '.join(s.__name__ for s in allowed)}; got {type(self.solver).__name__}"
            )
        if self.ts is not None:
            ts = check_ts(self.ts)
            if ts[-1] > self.t1 * (1 + 1e-12):
                raise ValueError(f"ts: save times must lie in [0, t1={self.t1}]; got max {ts[-1]}")

    def check_problem(self, loss: Any, data: Any) -> None:
        """Refuse noise kinds the loss or the data cannot support."""
        n = data.X.shape[0]
        if self.noise == "sgd":
            if self.batch_size > n:
                raise ValueError(f"batch_size: must be at most n={n} samples; got {self.batch_size}")
            if n < 2:
                raise ValueError("batch_size: noise='sgd' needs at least 2 samples")
            if not supports_minibatch(loss):
                raise ValueError(
                    f"noise: 'sgd' needs a loss that is a sum over samples; "
                    f"{type(loss).__name__} declares reduction=None"
                )
        if self.noise == "label" and label_noise_base(loss) is None:
            raise ValueError(
                f"noise: 'label' needs a per-sample regression loss (or Regularized of one) "
                f"whose targets it perturbs; got {type(loss).__name__}"
            )

    def save_times(self):
        return jnp.asarray(self._save_times())

    def _save_times(self) -> np.ndarray:
        if self.ts is not None:
            return np.asarray(self.ts, dtype=np.float64)
        return log_grid(float(self.t1), self.n_save, min(1e-2, self.t1 / 1e3))

    def step_times(self) -> np.ndarray:
        """The solver's grid: k·`dt0` for k = 0, 1, …, the save times and `t1`
        (a save time within 10⁻⁹·dt0 of a grid point replaces it)."""
        t1, dt0 = float(self.t1), float(self.dt0)
        k = np.arange(math.ceil(t1 / dt0 * (1 - 1e-12)) + 1)
        grid = np.minimum(k * dt0, t1)
        extra = self._save_times()
        near = np.abs(grid[:, None] - extra[None, :]).min(axis=1) < 1e-9 * dt0
        grid = np.unique(np.concatenate([grid[~near], extra, [0.0, t1]]))
        return grid

    def _brownian_tol(self) -> float:
        if self.brownian_tol is not None:
            return float(self.brownian_tol)
        return min(float(self.t1) / 2**16, float(self.dt0) / 16)

    def run_batch(
        self, problem: Problem, params0: BatchedParams, keys: BatchedKey
    ) -> Trajectories:
        """`run` for a batch of seeds, in `vmap` blocks of `block_size`."""
        bs = auto_vmap_block() if self.block_size == "auto" else self.block_size
        return blockwise(super().run_batch, bs, problem, params0, keys,
                         pad_small=pads_small_batches(self.block_size))

    def run(self, problem: Problem, params0: Params, key: Key) -> Trajectories:
        dtype = params_dtype(params0)
        ts = self.save_times().astype(dtype)
        grid = self.step_times()
        struct = noise_shape(self.noise, problem, params0)
        # Always with the space-time Lévy area: the tree's path (and the steps' W) is
        # then the same whichever solver runs on it.
        levy = diffrax.SpaceTimeLevyArea
        if self.brownian == "steps":
            brownian = StepBrownianPath(struct, levy, tuple(float(t) for t in grid), key)
        else:
            brownian = diffrax.VirtualBrownianTree(
                0.0, float(self.t1), tol=self._brownian_tol(), shape=struct, key=key,
                levy_area=levy,
            )

        def drift(t, params, args):
            return jax.tree.map(jnp.negative, problem.value_and_grad(params)[1])

        def noise(t, params, args):
            return diffusion(
                self.noise, problem, params, temperature=self.temperature,
                learning_rate=self.learning_rate, batch_size=self.batch_size,
                label_noise=self.label_noise, noise_struct=struct,
            )

        terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(noise, brownian))
        return solve_seed(
            problem, params0, terms=terms, solver=self.solver,
            controller=diffrax.StepTo(ts=jnp.asarray(grid, dtype)), dt0=None, t1=self.t1,
            ts=ts, time=SolverTime(False), divergence=self.divergence,
            stop_loss=self.stop_loss, stop_grad_norm=self.stop_grad_norm,
            max_steps=len(grid) - 1, adjoint=self.adjoint,
        )


def _as_times(ts):
    """Save times as a hashable tuple of floats (they are static: the step grid)."""
    if ts is None:
        return None
    try:
        return tuple(float(t) for t in np.asarray(ts, dtype=np.float64).ravel())
    except (TypeError, ValueError):
        return ts  # __check_init__ names the argument
