"""Discrete gradient descent (any optax optimizer), projected GD and minibatch SGD."""

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._checks import check_block_size, check_count, check_finite, check_positive, check_ts
from .._custom_types import Array, BatchedKey, BatchedParams, Key, Params, RealScalarLike
from .._problem import Problem, at_steady_state, is_diverged, tree_norm
from .._status import Status
from ._base import AbstractDynamics, blockwise, log_grid, pads_small_batches
from ._trajectories import Trajectories
from .batched import auto_slots


class GradientDescent(AbstractDynamics):
    r"""θ_{k+1} = Π(θ_k + update_k), update from an optax optimizer; time t_k = Σ_{j<k} η_j.

    With the default `optimizer=optax.sgd` this is plain gradient descent
    θ_{k+1} = θ_k − η_k∇L(θ_k), the forward-Euler discretization of gradient flow with
    step η_k, so GD after k steps is compared with GF at time t_k = Σ_{j<k} η_j
    (t_k = kη for a constant η). `Trajectories.ts`, `t_final` and `save_times()` are on
    that clock.

    **Arguments:**

    - `learning_rate`: η > 0 (may be a JAX array: results are differentiable in η), or
      a schedule: a callable step k -> η_k (an optax schedule, e.g.
      `optax.linear_schedule(...)`), handed to the optimizer as its learning rate (optax
      optimizers evaluate it at their update count, which is the step index k: a stopped
      seed takes no more updates). The schedule is evaluated on k = 0, …, K − 1 when the
      dynamics is built: every η_k must be a finite positive scalar. The clock is
      t_k = k·η₀ + Σ_{j<k} (η_j − η₀), the same sum written so that a constant schedule
      gives t_k = kη₀ exactly, bitwise the clock (and the run) of the float η₀. The
      clock evaluates the schedule on all K counts at once (`vmap`), the optimizer one
      count at a time: in the schedule's own precision the two may round differently
      (a float32 schedule, such as optax's from Python floats, by an ulp).
    - `steps`: number of steps K.
    - `optimizer`: a function `η -> optax.GradientTransformation` (default `optax.sgd`).
    - `save_steps`: step indices in [0, K] to save at (increasing); default `n_save`
      points, 0 and a geometric grid of steps ending at K (duplicates removed;
      `n_save=1` saves step K only). The run always takes K steps (unless a seed
      stops early), whatever the save grid.
    - `projection`: optional Π(θ) applied after every update (projected GD).
    - `batch_size`: minibatch SGD: each step uses b samples drawn without replacement
      (from the seed's key) and the gradient of the loss's unbiased minibatch estimate
      (`AbstractLoss.estimate`: (n/b)·Σ_B ℓ_i for `"sum"`, (1/b)·Σ_B ℓ_i for `"mean"`),
      so E[step] is the full-batch GD step; `None` is full-batch GD.
    - `label_noise`: δ ≥ 0, label-noise GD: step k uses the gradient of the loss at the
      perturbed targets y + δξ_k, ξ_k ~ N(0, I) of the targets' shape (the minibatch's,
      with `batch_size`), fresh at every step. For the summed squared loss the step is
      the GD step plus ηδJᵀξ_k (J the n×d Jacobian of the predictions), covariance
      η²δ²JᵀJ. Only for a per-sample regression loss (`AbstractLoss`) or a
      `losses.Regularized` of one (the base's targets are perturbed); other losses are a
      `ValueError` naming `label_noise` before compiling. The noise of step k comes from
      `fold_in(fold_in(key, LABEL_NOISE_STREAM), k)`, a stream apart from the minibatch
      draws (`fold_in(key, k)`, k < 2³¹ never equals `LABEL_NOISE_STREAM` = 2³² − 1),
      so the same key gives the same noise and adding label noise leaves the minibatches
      as they were. `None` (default), or δ = 0 given as a number: no noise is drawn
      (bitwise plain GD); a traced δ (under `jit`) always draws, and at δ = 0 is GD up
      to rounding (per-seed targets change XLA's kernels). The saved losses and
      gradient norms are the noise-free full-batch ones; `stop_loss` and
      `stop_grad_norm` read the step's (noisy) values, as for SGD.
    - `stop_loss`, `stop_grad_norm`: stop (status `CONVERGED`) when the loss or gradient
      norm of the step (the minibatch's, for SGD) falls below.
    - `divergence`: stop (status `DIVERGED`) when the loss is non-finite or max|θ_i|
      exceeds it.
    - `adjoint`: how the step loop is differentiated, with diffrax's vocabulary.
      `diffrax.RecursiveCheckpointAdjoint()` (default): reverse mode (`jax.grad`,
      `jax.jacrev`) with memory O(log K)·|θ| by recursive checkpointing (equinox's
      checkpointed while loop; a plain `lax.while_loop` when not differentiated, so no
      cost otherwise); forward mode is *not* supported. `diffrax.ForwardMode()`: a plain
      `lax.while_loop`, differentiable in forward mode only (`jax.jvp`, `jax.jacfwd`:
      cheaper for few inputs such as η alone). `diffrax.DirectAdjoint()`: both modes, at
      more memory and compute.
    - `block_size`: seeds stepped together. A batch larger than `block_size` runs in
      blocks of exactly that many seeds one after another (`map_blocks`, the last one
      padded), so a seed's result does not depend on `chunk_size` or on how many seeds
      run (XLA's kernels round differently for different batch shapes). A smaller
      batch is padded to a full block when `block_size` is a number, and is one block
      of its own size with `"auto"` (then bitwise equal to a larger run's only for
      chunks of at least one block), as for `GradientFlow`.
      `"auto"` (default): `dynsim.dynamics.batched.auto_slots` (by model size on CPU,
      `ACCELERATOR_BLOCK` seeds on GPU/TPU), as for `GradientFlow`.
      `None`: all seeds of a chunk at once (results then depend on the chunk's size at
      rounding level).
    """

    learning_rate: Any
    steps: int = eqx.field(static=True, default=1000)
    optimizer: Callable = eqx.field(static=True, default=optax.sgd)
    save_steps: Any = eqx.field(static=True, default=None, converter=lambda s: _as_tuple(s))
    n_save: int = eqx.field(static=True, default=65)
    projection: Callable | None = eqx.field(static=True, default=None)
    batch_size: int | None = eqx.field(static=True, default=None)
    label_noise: RealScalarLike | None = None
    stop_loss: RealScalarLike | None = None
    stop_grad_norm: RealScalarLike | None = None
    divergence: RealScalarLike = 1e8
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint()
    block_size: int | str | None = eqx.field(static=True, default="auto")

    def __check_init__(self):
        check_block_size(self.block_size)
        check_count("steps", self.steps)
        if callable(self.learning_rate):
            _check_schedule(self.learning_rate, self.steps)
        else:
            check_positive("learning_rate", self.learning_rate)
        if not isinstance(
            self.adjoint,
            (diffrax.RecursiveCheckpointAdjoint, diffrax.ForwardMode, diffrax.DirectAdjoint),
        ):
            raise ValueError(
                "adjoint: GradientDescent supports RecursiveCheckpointAdjoint, ForwardMode "
                f"and DirectAdjoint; got {self.adjoint!r}"
            )
        check_count("n_save", self.n_save)
        check_count("batch_size", self.batch_size, allow_none=True)
        if self.label_noise is not None:
            if isinstance(self.label_noise, (bool, str)) or np.ndim(self.label_noise) != 0:
                raise ValueError(
                    f"label_noise: must be a non-negative number or None; got {self.label_noise!r}"
                )
            check_finite("label_noise", self.label_noise, nonnegative=True)
        if not callable(self.optimizer):
            raise ValueError(f"optimizer: expected a function lr -> optax transform; got {self.optimizer!r}")
        if self.projection is not None and not callable(self.projection):
            raise ValueError(f"projection: expected a callable params -> params; got {self.projection!r}")
        check_positive("stop_loss", self.stop_loss, allow_none=True)
        check_positive("stop_grad_norm", self.stop_grad_norm, allow_none=True)
        check_positive("divergence", self.divergence)
        if self.save_steps is not None:
            s = check_ts(self.save_steps, "save_steps")
            if np.any(s != np.round(s)) or s[-1] > self.steps:
                raise ValueError(f"save_steps: must be integers in [0, steps={self.steps}]")

    def check_params(self, params_like) -> None:
        """The projection must map parameters to parameters of the same shapes."""
        if self.projection is None:
            return
        try:
            out = jax.eval_shape(self.projection, params_like)
        except Exception as e:  # noqa: BLE001 - report any failure of the user's projection
            raise ValueError(f"projection: calling it on the parameters failed: "
                             f"{type(e).__name__}: {e}") from e
        shapes = lambda t: jax.tree.map(lambda s: (s.shape, s.dtype), t)
        if jax.tree.structure(out) != jax.tree.structure(params_like) or shapes(out) != shapes(params_like):
            raise ValueError(
                f"projection: must return parameters of the same structure, shapes and "
                f"dtypes {shapes(params_like)}; got {shapes(out)}"
            )

    def step_grid(self) -> np.ndarray:
        if self.save_steps is not None:
            return np.asarray(self.save_steps, dtype=np.int64)
        grid = np.round(log_grid(self.steps, self.n_save, 1.0)).astype(np.int64)
        return np.unique(grid)

    def step_sizes(self, dtype) -> Array:
        """η_k for k = 0, …, K − 1 (K = `steps`) in `dtype`: the schedule's values, or
        the constant η repeated."""
        if callable(self.learning_rate):
            return _schedule_values(self.learning_rate, self.steps).astype(dtype)
        return jnp.full((self.steps,), self.learning_rate, dtype)

    def step_times(self, steps: Array, dtype) -> Array:
        """t_k = Σ_{j<k} η_j for the integer step indices `steps` (each in [0, K]), in
        `dtype`: k·η for a constant η, k·η₀ + Σ_{j<k} (η_j − η₀) for a schedule (see
        `learning_rate`)."""
        k = jnp.asarray(steps)
        if not callable(self.learning_rate):
            return k.astype(dtype) * jnp.asarray(self.learning_rate, dtype)
        etas = self.step_sizes(dtype)
        offsets = jnp.concatenate([jnp.zeros((1,), dtype), jnp.cumsum(etas - etas[0])])
        return k.astype(dtype) * etas[0] + offsets[k]

    def save_times(self):
        if not callable(self.learning_rate):
            return jnp.asarray(self.step_grid()) * self.learning_rate
        return self.step_times(jnp.asarray(self.step_grid()), jnp.result_type(float))

    def run_batch(
        self, problem: Problem, params0: BatchedParams, keys: BatchedKey
    ) -> Trajectories:
        """`run` for a batch of seeds, in blocks of `block_size` (`vmap` within a block)."""
        bs = auto_slots(params0) if self.block_size == "auto" else self.block_size
        return blockwise(super().run_batch, bs, problem, params0, keys,
                         pad_small=pads_small_batches(self.block_size))

    def run(self, problem: Problem, params0: Params, key: Key) -> Trajectories:
        dtype = jnp.result_type(*jax.tree.leaves(params0))
        if callable(self.learning_rate):
            opt = self.optimizer(self.learning_rate)
        else:
            opt = self.optimizer(jnp.asarray(self.learning_rate, dtype))
        n = problem.X.shape[0]
        b = self.batch_size

        noiseless = self.label_noise is None or _is_zero(self.label_noise)
        noise_key = None if noiseless else jax.random.fold_in(key, LABEL_NOISE_STREAM)

        def value_and_grad(params, k):
            idx = None
            if b is not None and b < n:
                idx = jax.random.choice(jax.random.fold_in(key, k), n, (b,), replace=False)
            if noiseless:
                return problem.value_and_grad(params, idx)
            y = problem.y if idx is None else problem.y[idx]
            xi = jax.random.normal(jax.random.fold_in(noise_key, k), y.shape, y.dtype)
            targets = y + jnp.asarray(self.label_noise, y.dtype) * xi
            return problem.value_and_grad(params, idx, targets)

        def body(carry):
            params, opt_state, k, status, target = carry
            value, grads = value_and_grad(params, k)
            bad = ~jnp.isfinite(value) | is_diverged(params, self.divergence)
            done = at_steady_state(
                value, lambda: tree_norm(grads), self.stop_loss, self.stop_grad_norm
            )
            status = jnp.where(bad, Status.DIVERGED, jnp.where(done, Status.CONVERGED, status))
            proceed = status == _RUNNING
            updates, new_state = opt.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            if self.projection is not None:
                new_params = self.projection(new_params)
            params = _tree_where(proceed, new_params, params)
            opt_state = _tree_where(proceed, new_state, opt_state)
            return params, opt_state, k + proceed.astype(k.dtype), status, target

        def cond(carry):
            _, _, k, status, target = carry
            return (k < target) & (status == _RUNNING)

        grid_np = self.step_grid()
        # Steps between consecutive save steps (and from the last one to K): a static
        # bound for the inner loop.
        max_gap = max(1, int(np.max(np.diff(grid_np, prepend=0, append=self.steps))))
        loop = _loop_kind(self.adjoint, max_gap)

        def advance(carry, target):
            params, opt_state, k, status = carry
            params, opt_state, k, status, _ = loop(
                cond, body, (params, opt_state, k, status, target)
            )
            return params, opt_state, k, status

        def interval(carry, target):
            carry = advance(carry, target)
            return carry, problem.summary(carry[0])

        grid = jnp.asarray(grid_np, dtype=jnp.int32)
        init = (params0, opt.init(params0), jnp.zeros((), jnp.int32), jnp.asarray(_RUNNING, jnp.int8))
        carry, saved = jax.lax.scan(interval, init, grid)
        if grid_np[-1] < self.steps:  # the steps after the last save step
            carry = advance(carry, jnp.asarray(self.steps, jnp.int32))
        params, _, k, status = carry
        diverged = is_diverged(params, self.divergence)
        status = jnp.where(status == _RUNNING, Status.REACHED_END, status)
        status = jnp.where(diverged, Status.DIVERGED, status).astype(jnp.int8)
        return Trajectories(
            params=params,
            saved=saved,
            ts=self.step_times(grid, dtype),
            status=status,
            num_steps=k,
            t_final=self.step_times(k, dtype),
        )


_RUNNING = -1

LABEL_NOISE_STREAM = 2**32 - 1
"""`fold_in` tag of the label-noise keys: above every step index (the minibatch keys)."""


def _is_zero(value) -> bool:
    """A concrete (not traced) value equal to 0."""
    return not isinstance(value, jax.core.Tracer) and bool(np.all(np.asarray(value) == 0))


def _schedule_values(schedule: Callable, steps: int) -> Array:
    """The schedule at k = 0, …, steps − 1 (int32 counts, as optax's optimizers pass)."""
    return jax.vmap(schedule)(jnp.arange(steps, dtype=jnp.int32))


def _check_schedule(schedule: Callable, steps: int) -> None:
    """A learning-rate schedule must give a finite positive scalar η_k at every step
    k < `steps`; checked on its values when they are concrete (a schedule of traced
    values passes through)."""
    try:
        etas = _schedule_values(schedule, steps)
    except Exception as e:  # noqa: BLE001 - report any failure of the user's schedule
        raise ValueError(
            f"learning_rate: calling the schedule on the steps 0..{steps - 1} failed: "
            f"{type(e).__name__}: {e}"
        ) from e
    if isinstance(etas, jax.core.Tracer):
        return
    arr = np.asarray(etas)
    if arr.shape != (steps,) or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(
            f"learning_rate: the schedule must return a real scalar per step; got shape "
            f"{arr.shape[1:]} and dtype {arr.dtype}"
        )
    bad = ~(np.isfinite(arr) & (arr > 0))
    if np.any(bad):
        k = int(np.argmax(bad))
        raise ValueError(
            f"learning_rate: the schedule gives η_k = {arr[k]} at step k = {k}; every "
            f"step size for k < steps = {steps} must be finite and positive"
        )


def _loop_kind(adjoint, max_steps):
    """The while loop that differentiates as `adjoint` asks (see the `adjoint` field)."""
    if isinstance(adjoint, diffrax.ForwardMode):
        return jax.lax.while_loop
    if isinstance(adjoint, diffrax.DirectAdjoint):
        kind, kwargs = "bounded", {}
    else:
        kind, kwargs = "checkpointed", {"checkpoints": adjoint.checkpoints}

    def loop(cond, body, init):
        return eqxi.while_loop(cond, body, init, max_steps=max_steps, kind=kind, **kwargs)

    return loop


def _as_tuple(steps):
    """Save steps as a hashable tuple of ints (they are static)."""
    if steps is None:
        return None
    return tuple(int(k) if float(k) == int(k) else float(k) for k in np.asarray(steps).ravel())


def _tree_where(pred, a, b):
    return jax.tree.map(lambda x, y: jnp.where(pred, x, y), a, b)
