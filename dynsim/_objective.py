r"""Studies as differentiable objectives: θ ↦ a scalar summary of an ensemble of runs.

`ensemble_objective` wraps `simulate` into a function of a parameter θ (a scalar or a
PyTree) that `jax.grad`, `jax.jacfwd`, `jax.vmap` and `jax.jit` go through: θ may enter
the initialization (`init_fn`), the data, the dynamics (e.g. the step size of
`GradientDescent`) or the loss. `calibrate` solves objective(θ) = target for a scalar θ
by safeguarded Newton with the exact derivative; `minimize` runs gradient-based
optimization of an objective.

**Which derivative is computed, and how.** The derivative is that of the *computed*
trajectory (discretize-then-differentiate): exact up to rounding for the discrete
dynamics, and within O(rtol) of the derivative of the exact flow for `GradientFlow`
(choose tight `rtol`, `atol` when derivatives matter). Step-size selection is not
differentiated (as in diffrax).

- Reverse mode (`jax.grad`, default in `calibrate`/`minimize`): `GradientFlow` with its
  default `adjoint=diffrax.RecursiveCheckpointAdjoint()` (the batched loop of
  `dynsim.dynamics.batched` or `diffeqsolve`) and `GradientDescent` with its default
  adjoint of the same name. The backward pass recomputes the forward pass from
  O(log max_steps) checkpoints (treeverse), so memory stays bounded as `max_steps` grows
  and the cost is one backward pass whatever the size of θ — the right choice for
  many parameters (a data matrix X, a shape vector) and one scalar output.
- Forward mode (`jax.jvp`, `jax.jacfwd`, `mode="forward"` in `calibrate`): needs
  `GradientFlow(adjoint=diffrax.ForwardMode())` (which solves per seed with `vmap` of
  `diffeqsolve`; the batched loop is reverse-mode only) or
  `GradientDescent(adjoint=diffrax.ForwardMode())`. One tangent costs about one extra
  forward solve and no memory for the trajectory: cheaper than reverse mode for one or
  a few inputs θ and many outputs (e.g. a Jacobian of β∞ ∈ ℝᵈ with respect to α).
  A checkpointed (reverse-mode) loop under `jax.jvp` fails with "can't apply
  forward-mode autodiff (jvp) to a custom_vjp function".

**Pitfalls.** θ reaches `simulate` through array fields (`init.Constant(alpha=θ)`,
`Dataset(X, y)`, `GradientDescent(learning_rate=θ)`, an `AbstractLoss` subclass with an
array field) or through a Python closure (a `CustomLoss` or `init.Custom` function):
under a transformation `simulate` always takes the plain `jit` path, which lifts
closed-over tracers (the closure is then re-traced per call). Non-smooth events
(`stop_loss`, `stop_grad_norm`, divergence) make the objective piecewise smooth in θ.
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._simulate import simulate
from .dynamics import AbstractDynamics


def ensemble_objective(
    fn: Callable,
    *,
    model: Any,
    data: Any,
    init_fn: Callable,
    dynamics: Any,
    seeds: int,
    key: Any,
    loss: Any = "squared",
    loss_fn: Callable | None = None,
    reduce: Callable = jnp.mean,
    chunk_size: int | None = None,
) -> Callable:
    r"""Turn a study into a differentiable function θ ↦ reduce(fn(simulate(...; θ))).

    **Arguments:**

    - `fn`: `fn(result) -> array`, a summary of the `SimulationResult` (typically one
      value per seed, e.g. `lambda r: r.loss[:, -1]` or the ℓ1 norm of β∞ per seed).
      Under a transformation its fields are `jax` arrays; otherwise numpy arrays (use
      `jnp` functions, which accept both).
    - `model`: the model (fixed).
    - `data`: a `Dataset` / pair (X, y), or a function `θ -> data` (e.g. to
      differentiate with respect to X).
    - `init_fn`: `θ -> init scheme`, e.g. `lambda a: dynsim.init.Constant(alpha=a)`.
      θ must end up in array fields of the scheme (see the module notes).
    - `dynamics`: a `GradientFlow` / `GradientDescent`, or a function `θ -> dynamics`
      (e.g. `lambda eta: GradientDescent(learning_rate=eta, steps=100)`). Its `adjoint`
      decides which autodiff mode works: the default (recursive checkpointing) for
      `jax.grad`, `diffrax.ForwardMode()` for `jax.jvp` / `jax.jacfwd`.
    - `seeds`, `key`: the ensemble, as in `simulate` (the same seeds for every θ: the
      objective is a deterministic, common-random-numbers function of θ).
    - `loss`: the training loss (fixed), or `loss_fn`: `θ -> loss` (an `AbstractLoss`
      whose parameters are array fields).
    - `reduce`: array -> scalar (default `jnp.mean`, the ensemble average).
    - `chunk_size`: as in `simulate`.

    **Returns:** `objective(θ) -> scalar` (a `jax` array). θ is converted with
    `jnp.asarray` leaf-wise, so Python floats do not trigger recompilation: repeated
    calls reuse `simulate`'s compiled chunk; `jax.jit(jax.grad(objective))` compiles
    once for all θ of the same shape.
    """
    if not callable(fn):
        raise ValueError(f"fn: expected a function of a SimulationResult; got {fn!r}")
    if not callable(init_fn):
        raise ValueError(f"init_fn: expected a function theta -> init scheme; got {init_fn!r}")
    dyn_factory = callable(dynamics) and not isinstance(dynamics, AbstractDynamics)
    if not dyn_factory and not isinstance(dynamics, AbstractDynamics):
        raise ValueError(
            "dynamics: expected GradientFlow / GradientDescent or a function theta -> "
            f"dynamics; got {dynamics!r}"
        )
    data_factory = callable(data) and not isinstance(data, eqx.Module)

    def objective(theta):
        theta = jax.tree.map(jnp.asarray, theta)
        result = simulate(
            model,
            data(theta) if data_factory else data,
            init=init_fn(theta),
            dynamics=dynamics(theta) if dyn_factory else dynamics,
            seeds=seeds,
            key=key,
            loss=loss if loss_fn is None else loss_fn(theta),
            chunk_size=chunk_size,
        )
        return jnp.asarray(reduce(fn(result)))

    return objective


class CalibrationResult(eqx.Module):
    """Result of `calibrate` / `minimize`.

    **Fields:** `theta` (the solution), `value` (objective(θ)), `grad` (its derivative
    / gradient at θ), `num_steps` (objective evaluations with derivative),
    `converged` (bool), `history` (a list of `(theta, value, grad)` per evaluation, as
    numpy values).
    """

    theta: Any
    value: Any
    grad: Any
    num_steps: int
    converged: bool
    history: list


def _value_and_derivative(objective, mode):
    if mode == "reverse":
        return jax.jit(jax.value_and_grad(objective))
    if mode == "forward":
        return jax.jit(lambda t: jax.jvp(objective, (t,), (jnp.ones_like(t),)))
    raise ValueError(f"mode: expected 'reverse' or 'forward'; got {mode!r}")


def calibrate(
    objective: Callable,
    target: float,
    theta0: float,
    *,
    bracket: tuple[float, float] | None = None,
    log: bool = False,
    rtol: float = 1e-10,
    atol: float = 0.0,
    max_steps: int = 50,
    max_log_step: float = 1.0,
    mode: str = "reverse",
) -> CalibrationResult:
    r"""Solve objective(θ) = target for a scalar θ by Newton's method with exact derivatives.

    Each iteration evaluates the objective and its exact derivative (`mode="reverse"`:
    `jax.value_and_grad`, works with the default checkpointed adjoints;
    `mode="forward"`: `jax.jvp`, needs `adjoint=diffrax.ForwardMode()` in the
    dynamics), compiled once with `jax.jit`. Newton steps are taken in u = θ, or in
    u = log θ with `log=True` (for positive scales such as α: keeps θ > 0 and makes
    power laws nearly linear). Safeguards: with a `bracket` (θ_lo, θ_hi) on which
    objective − target changes sign, the bracket is shrunk at every evaluation and a
    Newton step that leaves it (or a zero / non-finite derivative) is replaced by
    bisection (the objective is assumed monotone on the bracket; its direction is read
    from the first derivative); without one, steps are limited to `max_log_step` in u.

    **Arguments:**

    - `objective`: scalar function of a scalar (e.g. from `ensemble_objective`).
    - `target`: the value to reach.  `theta0`: starting point (inside `bracket`).
    - `rtol`, `atol`: stop when |objective(θ) − target| ≤ atol + rtol·|target|.
    - `max_steps`: maximum number of evaluations.

    **Returns:** a `CalibrationResult`.

    **Raises:** `ValueError` for a bad `bracket`, `theta0` or `mode`.
    """
    vd = _value_and_derivative(objective, mode)
    to_u = np.log if log else (lambda t: t)
    from_u = np.exp if log else (lambda u: u)
    if log and (theta0 <= 0 or (bracket is not None and min(bracket) <= 0)):
        raise ValueError("theta0, bracket: must be positive with log=True")
    lo = hi = None
    if bracket is not None:
        lo, hi = (float(to_u(b)) for b in sorted(bracket))
        if not lo <= float(to_u(theta0)) <= hi:
            raise ValueError(f"theta0: {theta0} is outside bracket {bracket}")
    increasing = None  # direction of the objective on the bracket, from the first derivative
    u = float(to_u(theta0))
    history = []
    tol = atol + rtol * abs(target)
    value = grad = np.nan
    for step in range(1, max_steps + 1):
        theta = float(from_u(u))
        v, g = vd(jnp.asarray(theta))
        value, grad = float(v), float(g)
        history.append((theta, value, grad))
        resid = value - target
        if abs(resid) <= tol:
            return CalibrationResult(theta, value, grad, step, True, history)
        dudt = theta if log else 1.0  # d objective/du = d objective/dθ · dθ/du
        newton = u - resid / (grad * dudt) if np.isfinite(grad) and grad != 0 else np.nan
        if lo is not None:
            if increasing is None:  # the objective is assumed monotone on the bracket
                increasing = bool(grad * dudt > 0)
            if (resid > 0) == increasing:
                hi = u
            else:
                lo = u
            if not (np.isfinite(newton) and lo < newton < hi):
                newton = 0.5 * (lo + hi)
        elif np.isfinite(newton):
            newton = u + float(np.clip(newton - u, -max_log_step, max_log_step))
        else:
            break
        if abs(newton - u) <= 1e-15 * max(1.0, abs(u)):
            break
        u = newton
    theta = float(from_u(u))
    return CalibrationResult(theta, value, grad, len(history), False, history)


def minimize(
    objective: Callable,
    theta0: Any,
    *,
    steps: int = 100,
    learning_rate: float = 0.1,
    optimizer: optax.GradientTransformation | None = None,
    log: bool = False,
    gtol: float = 0.0,
) -> CalibrationResult:
    r"""Minimize a differentiable objective of θ (a scalar or PyTree) by gradient steps.

    Uses `jax.value_and_grad` (reverse mode: the default checkpointed adjoints) compiled
    once, and an optax optimizer (default `optax.adam(learning_rate)`), in u = θ or
    u = log θ (`log=True`, θ > 0 leaf-wise). Stops after `steps` evaluations or once the
    gradient norm with respect to u is ≤ `gtol`. Returns the best θ seen.

    **Returns:** a `CalibrationResult` (`converged` means the `gtol` test was met).
    """
    vd = jax.jit(jax.value_and_grad(objective))
    tx = optax.adam(learning_rate) if optimizer is None else optimizer
    u = jax.tree.map(lambda t: jnp.log(jnp.asarray(t)) if log else jnp.asarray(t), theta0)
    from_u = (lambda u: jax.tree.map(jnp.exp, u)) if log else (lambda u: u)
    state = tx.init(u)
    history = []
    best = None
    for step in range(1, steps + 1):
        theta = from_u(u)
        value, g_theta = vd(theta)
        g_u = jax.tree.map(lambda g, t: g * t, g_theta, theta) if log else g_theta
        history.append((jax.device_get(theta), float(value), jax.device_get(g_theta)))
        if best is None or float(value) < best[1]:
            best = (theta, float(value), g_theta)
        gnorm = float(optax.global_norm(g_u))
        if gnorm <= gtol:
            return CalibrationResult(theta, float(value), g_theta, step, True, history)
        updates, state = tx.update(g_u, state, u)
        u = optax.apply_updates(u, updates)
    theta, value, g = best
    return CalibrationResult(theta, value, g, len(history), False, history)
