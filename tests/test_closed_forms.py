"""Gradient flow against closed-form trajectories (Saxe et al. 2014), float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

import dynsim
from dynsim.models import LinearNet

RTOL = 1e-12  # solver tolerance: the 1e-8 target leaves 4 digits for error accumulation


def _scalar_two_layer(a0, b0, s, t1):
    """f(x) = b·a·x on the single sample (x, y) = (1, s): L = ½(ab − s)²."""
    data = dynsim.data.Dataset(jnp.ones((1, 1)), jnp.asarray([s]))
    init = dynsim.init.Custom(lambda key: {"W": (jnp.full((1, 1), a0), jnp.full((1, 1), b0))})
    ts = np.linspace(0.0, t1, 41)
    flow = dynsim.GradientFlow(t1=t1, ts=ts, rtol=RTOL, atol=1e-14, max_steps=100_000)
    res = dynsim.simulate(
        LinearNet(1, [1]), data, init=init, dynamics=flow, seeds=1, key=jax.random.key(0),
        metrics={"u": lambda p: p["W"][1][0, 0] * p["W"][0][0, 0]},
    )
    return ts, np.asarray(res.metrics["u"][0])


def test_balanced_saxe_closed_form():
    s, u0 = 3.0, 1e-3
    ts, u = _scalar_two_layer(np.sqrt(u0), np.sqrt(u0), s, t1=4.0)
    e = np.exp(2 * s * ts)
    exact = s * e / (e - 1 + s / u0)
    np.testing.assert_allclose(u, exact, rtol=1e-8, atol=0)


@pytest.mark.parametrize("a0,b0", [(0.5, 0.01), (0.02, 0.7)])
def test_unbalanced_saxe_closed_form(a0, b0):
    """τu̇ = √(c² + 4u²)(s − u), c = a² − b²: u(t) from t = F(u) − F(u₀)."""
    s = 2.0
    ts, u = _scalar_two_layer(a0, b0, s, t1=3.0)
    c = a0**2 - b0**2
    A = np.sqrt(c**2 + 4 * s**2)
    F = lambda v: np.log((c**2 + 4 * s * v + A * np.sqrt(c**2 + 4 * v**2)) / (s - v)) / A
    u_init = a0 * b0
    exact = np.array(
        [u_init] + [brentq(lambda v: F(v) - F(u_init) - t, u_init, s * (1 - 1e-15), xtol=1e-300, rtol=1e-15)
                    for t in ts[1:]]
    )
    np.testing.assert_allclose(u, exact, rtol=1e-8, atol=0)


def test_whitened_modes_decouple():
    """Spectral init on whitened data: every mode follows the balanced closed form."""
    S = np.array([3.0, 1.5, 0.5])
    data = dynsim.data.whitened(jax.random.key(1), 12, 5, S, out_dim=4)
    u0 = 1e-2
    ts = np.linspace(0, 6.0, 13)
    U, V = np.asarray(data.info["U"]), np.asarray(data.info["V"])
    flow = dynsim.GradientFlow(t1=6.0, ts=ts, rtol=RTOL, atol=1e-14)
    res = dynsim.simulate(
        LinearNet(5, [6], 4), data, init=dynsim.init.Spectral(a0=np.sqrt(u0)), dynamics=flow,
        seeds=2, key=jax.random.key(2),
        metrics={"modes": lambda p: U.T @ (p["W"][1] @ p["W"][0]) @ V},
    )
    modes = np.asarray(res.metrics["modes"])  # (seeds, T, r, r)
    e = np.exp(2 * S[None, :] * ts[:, None])
    exact = S * e / (e - 1 + S / u0)
    for k in range(2):
        np.testing.assert_allclose(np.diagonal(modes[k], axis1=1, axis2=2), exact, rtol=1e-8)
        off = modes[k] - np.einsum("ti,ij->tij", np.diagonal(modes[k], axis1=1, axis2=2), np.eye(3))
        assert np.max(np.abs(off)) < 1e-9 * S[0]
