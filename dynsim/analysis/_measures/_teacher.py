"""Teacher–student measures: neuron alignment and the spectrum of the Jacobian.

Zhou, Ge & Jin (COLT 2021): once the loss is small every student neuron converges to some
teacher neuron. A neuron of `TwoLayerNet` is w̃_j = (w_j, b_j) (b_j only with
`bias=True`); alignment is measured by cosines of w̃.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from ...models import TwoLayerNet
from .._references._kernels import _flat_jacobian


class NeuronAlignment(NamedTuple):
    """Result of [`neuron_alignment`][] (S seeds, m student and k teacher neurons).

    - `cosine`: (S, m, k) cos(w̃_student_j, w̃_teacher_l).
    - `best`: (S, m) index of each student neuron's best-matching teacher neuron.
    - `angle`: (S, m) the angle (radians) to it.
    - `teacher_angle`: (S, k) each teacher neuron's angle to its closest student neuron.
    - `recovered`: (S,) fraction of teacher neurons with some student neuron within δ.
    """

    cosine: Float[Array, "S m k"]
    best: Int[Array, "S m"]
    angle: Float[Array, "S m"]
    teacher_angle: Float[Array, "S k"]
    recovered: Float[Array, " S"]


def _neurons(params, bias: bool) -> Array:
    w = jnp.asarray(params["w"])
    if bias and "b" in params:
        w = jnp.concatenate([w, jnp.asarray(params["b"])[..., None]], axis=-1)
    return w


def neuron_alignment(
    result, teacher_params=None, *, delta: float = 0.1, params=None
) -> NeuronAlignment:
    """Match each student neuron of a `TwoLayerNet` to its closest teacher neuron.

    **Arguments:**

    - `result`: a `SimulationResult` of a `TwoLayerNet` student.
    - `teacher_params`: the teacher's parameters `{"w": (k, d)[, "b": (k,)]}` (a
      `TwoLayerNet` teacher); default `result.data.info["teacher_params"]` (set by
      `dynsim.data.teacher_student`).
    - `delta`: recovery angle δ (radians).
    - `params`: student parameters with leaves (S, ...) (default the final ones).

    Both sides use w̃ = (w, b) when the student has biases (a teacher without biases
    counts as b = 0). Teacher neurons are compared up to positive scaling only (a ReLU
    neuron's direction matters, its sign does too).

    **Returns:** a [`NeuronAlignment`][].
    """

    model = result.model
    if not isinstance(model, TwoLayerNet):
        raise ValueError(f"result: neuron_alignment needs a TwoLayerNet student; got {model!r}")
    if teacher_params is None:
        info = getattr(result.data, "info", None) or {}
        if "teacher_params" not in info:
            raise ValueError("teacher_params: not given and not in result.data.info")
        teacher_params = info["teacher_params"]
    params = result.params if params is None else params
    student = _neurons(params, model.bias)  # (S, m, d[+1])
    teacher = jnp.asarray(teacher_params["w"])
    if model.bias:
        tb = jnp.asarray(teacher_params.get("b", jnp.zeros(teacher.shape[0])))
        teacher = jnp.concatenate([teacher, tb[:, None]], axis=1)
    if teacher.shape[-1] != student.shape[-1]:
        raise ValueError(
            f"teacher_params: neurons of size {teacher.shape[-1]} do not match the student's "
            f"{student.shape[-1]}"
        )
    s = student / jnp.linalg.norm(student, axis=-1, keepdims=True)
    t = teacher / jnp.linalg.norm(teacher, axis=-1, keepdims=True)
    cos = jnp.clip(jnp.einsum("smd,kd->smk", s, t), -1.0, 1.0)
    best = jnp.argmax(cos, axis=2)
    angle = jnp.arccos(jnp.max(cos, axis=2))
    teacher_angle = jnp.arccos(jnp.max(cos, axis=1))
    recovered = jnp.mean(teacher_angle <= delta, axis=1)
    return NeuronAlignment(cos, best, angle, teacher_angle, recovered)


class JacobianSpectrum(NamedTuple):
    """Result of [`jacobian_spectrum`][]: `rank`, `sigma_min` and `sigma_max` (batch shape).

    σ_min is the smallest of the min(N, P) singular values of J (N outputs, P parameters);
    for N ≤ P it is √λ_min(JJᵀ), the quantity in L(t) ≤ e^{−2σ_min²t}L(0).
    """

    rank: Int[Array, "*batch"]
    sigma_min: Float[Array, "*batch"]
    sigma_max: Float[Array, "*batch"]


def jacobian_spectrum(
    model, params, X: ArrayLike, *, batch_ndim: int | None = None, rtol: float | None = None
) -> JacobianSpectrum:
    """Rank and extreme singular values of J = ∂ vec f(X)/∂θ (all parameter leaves).

    `params` may carry leading batch axes — seeds (S, ...) such as `result.params`, or
    seeds and times (S, T, ...) such as `result.path`; `batch_ndim` says how many
    (default: inferred by comparing with `model.param_shapes()`). The rank counts singular
    values above `rtol`·σ_max (default max(N, P)·eps).

    **Returns:** a [`JacobianSpectrum`][] with the batch shape.
    """
    X = jnp.asarray(X)
    if batch_ndim is None:
        ref = jax.tree.leaves(model.param_shapes())[0]
        batch_ndim = jnp.ndim(jax.tree.leaves(params)[0]) - len(ref.shape)

    def one(p):
        J = _flat_jacobian(model.apply, p, X)
        sv = jnp.linalg.svd(J, compute_uv=False)
        tol = (max(J.shape) * jnp.finfo(J.dtype).eps if rtol is None else rtol) * sv[0]
        return jnp.sum(sv > tol), sv[-1], sv[0]

    fn = one
    for _ in range(int(batch_ndim)):
        fn = jax.vmap(fn)
    rank, smin, smax = jax.jit(fn)(params)
    return JacobianSpectrum(rank, smin, smax)
