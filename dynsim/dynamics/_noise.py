r"""Diffusions of the stochastic gradient flows: Σ(θ)^{1/2} as a linear map of the noise.

Each noise kind is a factor G(θ) with G(θ)G(θ)ᵀ = Σ(θ), applied to a Brownian increment
dW of its own shape (`noise_shape`); no d×d matrix is ever formed.

- **isotropic** (Langevin): Σ = 2τI, G = √(2τ)·I, W of the parameters' shape.
- **sgd** (the diffusion approximation of minibatch SGD, Li, Tai & E 2017): with
  Gᵢ(θ) the gradient of the one-sample estimate of L (sample i alone through
  `AbstractLoss.estimate` / `AbstractObjective.estimate`: n∇ℓᵢ for `"sum"`, ∇ℓᵢ for
  `"mean"`), so that ∇L = (1/n)Σᵢ Gᵢ, the minibatch gradient of b samples drawn
  without replacement (`GradientDescent(batch_size=b)`) has covariance
  c/b · C, C = (1/n)Σᵢ(Gᵢ − ḡ)(Gᵢ − ḡ)ᵀ, c = (n − b)/(n − 1) (the finite-population
  correction; c → 1 for b ≪ n). One step of SGD adds η times that noise to the GD
  step, so over time η its covariance is η²c/b·C and Σ = (ηc/b)·C. The factor is
  G(θ)w = √(ηc/(bn)) Σᵢ (Gᵢ − ḡ) wᵢ, w ∈ ℝⁿ: one noise per sample.
- **label** (label-noise GD, Blanc et al. 2020; HaoChen et al. 2021): gradient steps
  on targets y + δξ, ξ ~ N(0, I). The step's noise is −ηδ·K(θ)ξ with
  K(θ) = ∂_y∇_θL(θ; y) (exact for the squared loss, whose gradient is linear in y;
  the linearization in δ otherwise), so Σ = ηδ²KKᵀ (= ηδ²JᵀJ for ½‖f − y‖², J the
  Jacobian of the predictions). G(θ)w = √η·δ·K(θ)w, w of the targets' shape: a
  forward-mode derivative of the gradient in the targets.
"""

from typing import Any

import jax
import jax.numpy as jnp
import lineax as lx

from .._custom_types import Params
from .._problem import Problem, label_noise_base
from ..losses._objective import evaluate_and_grad
from ._flow_helpers import params_dtype

NOISE_KINDS = ("isotropic", "sgd", "label")


def noise_shape(kind: str, problem_like: Any, params_like: Params) -> Any:
    """The shape of the Brownian motion W of `kind` (a PyTree of `ShapeDtypeStruct`):
    the parameters' (isotropic), one per sample (sgd), the targets' (label)."""
    dtype = params_dtype(params_like)
    if kind == "isotropic":
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, dtype), params_like)
    if kind == "sgd":
        return jax.ShapeDtypeStruct((problem_like.X.shape[0],), dtype)
    return jax.ShapeDtypeStruct(problem_like.y.shape, dtype)


def per_sample_gradients(problem: Problem, params: Params) -> Params:
    """Gᵢ(θ) for every sample i: leaves (n, ...), the gradient of the one-sample
    estimate of L (`evaluate_and_grad` on sample i alone; module notes)."""
    n = problem.X.shape[0]

    def one(x, y):
        return evaluate_and_grad(problem.loss, problem.model, params, x[None], y[None], n)[1]

    return jax.vmap(one)(problem.X, problem.y)


def diffusion(
    kind: str, problem: Problem, params: Params, *, temperature, learning_rate, batch_size,
    label_noise, noise_struct,
) -> lx.AbstractLinearOperator:
    """G(θ) of `kind` as a linear operator from the noise (`noise_struct`) to the
    parameters (module notes)."""
    dtype = params_dtype(params)
    if kind == "isotropic":
        # A diagonal operator holds arrays only, so the additive-noise solvers (SRA1,
        # ShARK, SEA), which vmap the diffusion over times, can evaluate it.
        scale = jnp.sqrt(2 * jnp.asarray(temperature, dtype))
        return lx.DiagonalLinearOperator(jax.tree.map(lambda x: jnp.full_like(x, scale), params))
    if kind == "sgd":
        n, b = problem.X.shape[0], batch_size
        scale = jnp.sqrt(jnp.asarray(learning_rate, dtype) * (n - b) / ((n - 1) * b * n))
        grads = per_sample_gradients(problem, params)

        def sgd_noise(w):
            centred = w - jnp.mean(w)
            return jax.tree.map(lambda g: scale * jnp.tensordot(centred, g, axes=1), grads)

        return lx.FunctionLinearOperator(sgd_noise, noise_struct)
    base = label_noise_base(problem.loss)
    n = problem.X.shape[0]
    scale = jnp.sqrt(jnp.asarray(learning_rate, dtype)) * jnp.asarray(label_noise, dtype)

    def grad_in_targets(y):
        return evaluate_and_grad(base, problem.model, params, problem.X, y, n)[1]

    def label_noise_map(w):
        _, dg = jax.jvp(grad_in_targets, (problem.y,), (w,))
        return jax.tree.map(lambda g: scale * g, dg)

    return lx.FunctionLinearOperator(label_noise_map, noise_struct)
