"""Learning-rate schedules in `GradientDescent`: step k uses η_k, and the clock is
t_k = Σ_{j<k} η_j (float64, conftest).

A constant schedule must reproduce the float's run bitwise (the same updates −η·g, and
the clock k·η₀ + 0). A linear schedule's save times and `t_final` are compared with
sums computed here in NumPy: the library's sum k·η₀ + cumsum(η_j − η₀) and NumPy's
cumsum(η_j) are the same exact sum rounded differently, each term and partial sum with
a relative error ≤ 2⁻⁵³, so over K = 60 terms of size ≤ 0.1 the two differ by at most
~K·ε·t_K ≈ 6e-14 relative; `rtol=1e-13` sits just above that bound, and a clock off by
one step (t_{k±1}) or on kη₀ would be off by ≥ 1e-3 relative.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynsim
from dynsim.models import DiagonalNet

N, D, K = 6, 4, 60
ETA0, ETA1 = 0.03, 0.01
CLOCK_RTOL = 1e-13


@pytest.fixture(scope="module")
def data():
    return dynsim.data.regression(jax.random.key(0), N, D)


def _run(data, dynamics, seeds=3):
    return dynsim.simulate(
        DiagonalNet(D), data, init=dynsim.init.Gaussian(0.3), dynamics=dynamics,
        seeds=seeds, key=jax.random.key(2),
    )


def _linear():
    """A linear schedule from ETA0 to ETA1 over K/2 steps, then ETA1, in float64.
    (`optax.linear_schedule` computes its fraction k/(K/2) in float32 from int32
    counts; the clock then sums those float32-rounded values, as the optimizer applies
    them: `test_optax_linear_schedule_clock` compares with its own values.)"""
    return lambda k: ETA0 + (ETA1 - ETA0) * jnp.minimum(k, K // 2).astype(jnp.float64) / (K // 2)


def _linear_np(k):
    """The same schedule written out: η_k from ETA0 to ETA1 over K/2 steps, then ETA1."""
    return ETA0 + (ETA1 - ETA0) * np.minimum(k, K // 2) / (K // 2)


def test_constant_schedule_is_the_float_bitwise(data):
    save = (0, 1, 7, 30, K)
    ref = _run(data, dynsim.GradientDescent(ETA0, steps=K, save_steps=save))
    got = _run(data, dynsim.GradientDescent(optax.constant_schedule(ETA0), steps=K, save_steps=save))
    for a, b in ((ref.loss, got.loss), (ref.grad_norm, got.grad_norm), (ref.ts, got.ts),
                 (ref.t_final, got.t_final), (ref.num_steps, got.num_steps),
                 (ref.status, got.status)):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
    np.testing.assert_array_equal(ref.status, dynsim.Status.REACHED_END)
    for k in ref.params:
        np.testing.assert_array_equal(got.params[k], ref.params[k])
    np.testing.assert_array_equal(
        np.asarray(dynsim.GradientDescent(optax.constant_schedule(ETA0), steps=K,
                                          save_steps=save).save_times()),
        np.asarray(dynsim.GradientDescent(ETA0, steps=K, save_steps=save).save_times()),
    )


def test_linear_schedule_clock_is_the_sum_of_step_sizes(data):
    save = (0, 1, 5, 29, 30, 31, K)
    gd = dynsim.GradientDescent(_linear(), steps=K, save_steps=save)
    t_np = np.concatenate([[0.0], np.cumsum(_linear_np(np.arange(K)))])  # t_0, …, t_K
    np.testing.assert_allclose(np.asarray(gd.save_times()), t_np[list(save)], rtol=CLOCK_RTOL)
    res = _run(data, gd)
    np.testing.assert_array_equal(res.num_steps, K)
    np.testing.assert_allclose(res.ts, t_np[list(save)], rtol=CLOCK_RTOL)
    np.testing.assert_allclose(res.t_final, t_np[K], rtol=CLOCK_RTOL)


def test_optax_linear_schedule_clock(data):
    """`optax.linear_schedule` as given: the clock is the NumPy sum of the schedule's
    values, each evaluated on its own (a scalar count at a time, as the optimizer does).

    This schedule computes in float32; the clock evaluates it on all K counts at once
    (vectorized), which XLA may round differently from a scalar evaluation, by 1 ulp of
    float32 (observed; 2⁻²³ ≈ 1.2e-7 relative at most per value). The sums of positive
    values then agree to that relative error: `rtol=2.5e-7` (two such ulps), while a
    clock off by one step would be off by ≥ 1e-2 relative."""
    schedule = optax.linear_schedule(ETA0, ETA1, K // 2)
    save = (0, 3, 30, K)
    etas = np.asarray([float(schedule(jnp.asarray(k, jnp.int32))) for k in range(K)])
    t_np = np.concatenate([[0.0], np.cumsum(etas)])
    res = _run(data, dynsim.GradientDescent(schedule, steps=K, save_steps=save), seeds=2)
    np.testing.assert_allclose(res.ts, t_np[list(save)], rtol=2.5e-7)
    np.testing.assert_allclose(res.t_final, t_np[K], rtol=2.5e-7)


def test_schedule_steps_are_the_schedules_step_sizes(data):
    """Each step is θ_{k+1} = θ_k − η_k∇L(θ_k) with the schedule's η_k: a replay with
    `Problem`'s gradient and the written-out η_k matches. Not bitwise: optax's
    η_k = η₀ + (η₁ − η₀)·k/(K/2) and the NumPy formula may round differently in the last
    bit, a relative 1e-16 per step that 8 well-conditioned steps keep below 1e-14 (1e-13
    leaves margin; η_{k±1} instead would be off by ≥ 1e-3)."""
    from dynsim._problem import Problem

    gd = dynsim.GradientDescent(_linear(), steps=8, save_steps=tuple(range(9)))
    res = _run(data, gd, seeds=2)
    problem = Problem(DiagonalNet(D), dynsim.losses.SquaredLoss(), data.X, data.y)
    params = jax.tree.map(lambda x: jnp.asarray(x[0]), res.params0)
    for k in range(8):
        value, grads = problem.value_and_grad(params)
        np.testing.assert_allclose(res.loss[0, k], value, rtol=1e-14)
        eta = float(_linear_np(k))
        params = jax.tree.map(lambda p, g: p - eta * g, params, grads)
    for k in params:
        np.testing.assert_allclose(res.params[k][0], params[k], rtol=1e-13)


@pytest.mark.parametrize(
    "schedule, k_bad",
    [
        (lambda k: jnp.where(k == 7, 0.0, 0.1), 7),
        (lambda k: jnp.where(k >= 12, -0.01, 0.1), 12),
        (lambda k: jnp.where(k == K - 1, jnp.inf, 0.1), K - 1),
        (lambda k: jnp.where(k == 3, jnp.nan, 0.1), 3),
    ],
    ids=["zero", "negative", "inf", "nan"],
)
def test_bad_schedule_names_learning_rate(schedule, k_bad, without_runtime_typecheck):
    with pytest.raises(ValueError, match=rf"^learning_rate:.*step k = {k_bad}\b"):
        dynsim.GradientDescent(schedule, steps=K)


def test_schedule_bad_only_after_the_last_step_is_accepted():
    gd = dynsim.GradientDescent(lambda k: jnp.where(k >= K, -1.0, 0.1), steps=K)
    assert gd.steps == K


@pytest.mark.parametrize(
    "schedule",
    [lambda k: jnp.full((2,), 0.1), lambda k: {"eta": 0.1}[k]],
    ids=["vector", "failing"],
)
def test_malformed_schedule_names_learning_rate(schedule, without_runtime_typecheck):
    with pytest.raises(ValueError, match="^learning_rate:"):
        dynsim.GradientDescent(schedule, steps=K)
