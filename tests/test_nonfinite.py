"""A non-finite loss or gradient stops a seed at once as DIVERGED, for every dynamics,
and never disturbs the healthy seeds of its batch."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim
from dynsim.models import LinearNet

# L(θ) = −log θ + θ²/2 on one sample x = 1: gradient flow θ̇ = 1/θ − θ goes to θ = 1 from
# any θ₀ > 0, while from θ₀ < 0 the loss is NaN (log of a negative number) from the start.
DATA = dynsim.data.Dataset(jnp.ones((1, 1)), jnp.zeros(1))
LOSS = dynsim.losses.CustomLoss(lambda p, t: -jnp.log(p) + 0.5 * p**2)


def _init(key):
    sign = jnp.where(jax.random.uniform(key) < 0.5, -1.0, 1.0)
    return {"W": (sign * (0.5 + jax.random.uniform(jax.random.fold_in(key, 1))).reshape(1, 1),)}


DYNAMICS = {
    "gf-batched": lambda: dynsim.GradientFlow(t1=20.0, rtol=1e-9, atol=1e-11, max_steps=10_000),
    "gf-vmap": lambda: dynsim.GradientFlow(t1=20.0, rtol=1e-9, atol=1e-11, max_steps=10_000, batched=False),
    "gf-dopri5": lambda: dynsim.GradientFlow(t1=20.0, solver=diffrax.Dopri5(), max_steps=10_000),
    "gf-euler": lambda: dynsim.GradientFlow(t1=20.0, solver=diffrax.Euler(), dt0=0.01, max_steps=10_000),
    "gd": lambda: dynsim.GradientDescent(0.01, steps=2000),
    "sgd": lambda: dynsim.GradientDescent(0.01, steps=2000, batch_size=1),
}


@pytest.mark.parametrize("name", sorted(DYNAMICS))
def test_nonfinite_loss_is_diverged_at_once(name):
    res = dynsim.simulate(
        LinearNet(1), DATA, loss=LOSS, init=_init, dynamics=DYNAMICS[name](), seeds=8,
        key=jax.random.key(0),
    )
    theta0 = np.asarray(res.params0["W"][0])[:, 0, 0]
    bad = theta0 < 0
    assert bad.any() and (~bad).any()
    np.testing.assert_array_equal(res.status[bad], dynsim.Status.DIVERGED)
    # Stopped at once: at most one (rejected) step attempt, still at t = 0.
    assert np.all(res.num_steps[bad] <= 1), res.num_steps
    np.testing.assert_array_equal(res.t_final[bad], 0.0)
    assert not np.any(res.ok()[bad])
    # The healthy seeds reach θ = 1, untouched by their NaN neighbours.
    assert np.all(res.ok()[~bad])
    np.testing.assert_allclose(np.asarray(res.params["W"][0])[~bad, 0, 0], 1.0, rtol=1e-6)
    assert np.all(np.isfinite(res.loss[~bad]))
    assert res.status_counts()["diverged"] == bad.sum()


def test_ok_means_reached_end_or_converged():
    """`ok()` is REACHED_END or CONVERGED: a seed out of steps is not ok."""
    res = dynsim.simulate(
        LinearNet(1), DATA, loss=LOSS, init=lambda k: {"W": (jnp.full((1, 1), 0.5),)},
        dynamics=dynsim.GradientFlow(t1=20.0, max_steps=3), seeds=2, key=jax.random.key(0),
    )
    np.testing.assert_array_equal(res.status, dynsim.Status.MAX_STEPS)
    assert not np.any(res.ok())
