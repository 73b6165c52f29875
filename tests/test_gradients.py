r"""Derivatives through `simulate`: jax.grad / jacfwd / vmap vs finite differences.

Finite differences (FD) are 4th-order central, f' ≈ [f(x−2h) − 8f(x−h) + 8f(x+h) −
f(x+2h)]/(12h): truncation error h⁴|f⁽⁵⁾|/30, rounding/solver noise ≈ 1.5·ε_f/h, with
ε_f the error of one evaluation. The gradient flows are solved with rtol = 1e-12,
atol = 1e-14, so ε_f ≲ 1e-12·|f| (the adaptive step sequence changes with x, so the
solver error is noise, not a smooth function of x). With h = 1e-3·|x| (relative), the
truncation error is ~(1e-3)⁴ ≈ 1e-12 relative (f⁽⁵⁾ ~ f/x⁵ for these power-law-like
dependences) and the noise ~1.5e-12/1e-3 ≈ 1.5e-9 relative: both ≪ the 1e-5 tolerance.
The derivative computed by JAX is that of the discrete solution; it differs from the
derivative of the exact flow by O(rtol) as well. Measured errors are ~1e-9..1e-7
(printed with `pytest -s`).
"""


import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim
from dynsim import data as dd
from dynsim import init, losses, models
from dynsim.analysis import min_l1_interpolator

RTOL = 1e-5  # required relative agreement with FD
TIGHT = dict(rtol=1e-12, atol=1e-14)


def fd4(f, x, h):
    """4th-order central difference of f at x (f may return an array)."""
    fs = [np.asarray(f(x + k * h)) for k in (-2, -1, 1, 2)]
    return (fs[0] - 8 * fs[1] + 8 * fs[2] - fs[3]) / (12 * h)


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def check(name, grad, fd, tol=RTOL):
    err = rel_err(grad, fd)
    print(f"{name}: relative error {err:.2e}")
    assert err < tol, (name, err, grad, fd)


@pytest.fixture(scope="module")
def sparse():
    ds = dd.sparse_regression(jax.random.key(3), n=4, d=8, k=2)
    return dd.Dataset(ds.X, ds.y), models.DiagonalNet(8)


def _beta(model, result):
    return jax.vmap(model.predictor)(result.params)


class WeightedSquared(losses.AbstractLoss):
    """½·c·(f(x) − y)² per sample: a loss with an array parameter c."""

    weight: jax.Array
    reduction: str = "sum"
    classification = False

    def per_sample(self, pred, target):
        return 0.5 * self.weight * (pred - target) ** 2


def test_grad_gradient_flow_wrt_init_data_and_loss(sparse):
    """Batched GF, checkpointed adjoint: d/dα, d/ds (shape), d/dX, d/dc (loss weight) of
    the loss at t = 0.5 (mid-flight; at t1 it has converged to ~1e-13 and its
    derivatives are at finite-difference noise), ‖β∞‖₁ and ‖β∞ − β_ℓ1‖₂, all from one
    reverse-mode Jacobian."""
    data, model = sparse
    beta_l1 = min_l1_interpolator(data.X, data.y)
    dyn = dynsim.GradientFlow(t1=10.0, ts=(0.0, 0.5, 10.0), **TIGHT)

    def f(theta):
        r = dynsim.simulate(
            model,
            dd.Dataset(theta["X"], data.y),
            init=init.Constant(theta["alpha"], shape=theta["shape"]),
            dynamics=dyn,
            seeds=1,
            key=jax.random.key(0),
            loss=WeightedSquared(theta["c"]),
        )
        beta = _beta(model, r)[0]
        return jnp.stack(
            [r.loss[0, 1], jnp.sum(jnp.abs(beta)), jnp.linalg.norm(beta - beta_l1)]
        )

    theta0 = {
        "alpha": jnp.asarray(0.3),
        "shape": 1.0 + 0.2 * jnp.sin(jnp.arange(8.0)),
        "X": data.X,
        "c": jnp.asarray(1.5),
    }
    jac = jax.jacrev(f)(theta0)
    k1, k2 = jax.random.split(jax.random.key(7))
    directions = {  # check each block along one direction (a random one for arrays)
        "alpha": jnp.asarray(1.0),
        "shape": jax.random.normal(k1, (8,)),
        "X": jax.random.normal(k2, data.X.shape),
        "c": jnp.asarray(1.0),
    }
    outputs = ["loss at t=0.5", "l1 norm", "distance to min-l1"]
    for name, v in directions.items():
        # relative step 1e-3 of the parameter's scale (|α| = 0.3, |c| = 1.5, O(1) else)
        h = 1e-3 * (float(theta0[name]) if theta0[name].ndim == 0 else 1.0)
        fd = fd4(lambda e: f({**theta0, name: theta0[name] + e * v}), 0.0, h)
        exact = jnp.tensordot(jac[name], v, axes=v.ndim)
        if name == "c":
            # Weighting the squared loss rescales time per sample but leaves the limit
            # β∞ = argmin Q_α s.t. Xβ = y unchanged (mirror-descent characterisation):
            # ‖β(t)‖₁ and the distance to β_ℓ1 barely depend on c once converged, so
            # only the loss is compared with FD (the others are FD-noise level, ~1e-9).
            assert np.all(np.abs(exact[1:]) < 1e-5 * np.abs(f(theta0)[1:]))
            check("d(loss at t=0.5)/dc", exact[0], fd[0])
            continue
        assert np.all(np.abs(fd) > 1e-8)  # not trivially zero
        for i, out in enumerate(outputs):
            check(f"d({out})/d{name}", exact[i], fd[i])


def test_grad_custom_loss_closure(sparse):
    """A CustomLoss closing over a traced weight c: simulate sees no tracer among its
    array inputs, so it must detect the transformation itself and use the plain jit path.
    L_c = c·L, so GF under L_c is GF under L at time c·t: d L_c(T)/dc is checked by FD."""
    data, model = sparse
    dyn = dynsim.GradientFlow(t1=1.0, n_save=2, rtol=1e-12, atol=1e-14)

    def f(c):
        loss = losses.CustomLoss(lambda p, t: 0.5 * c * (p - t) ** 2)
        r = dynsim.simulate(model, data, init=init.Constant(0.3), dynamics=dyn, seeds=1,
                            key=jax.random.key(0), loss=loss)
        return r.loss[0, -1]

    c0 = 1.5
    check("d(final loss)/dc via closure", jax.grad(f)(c0), fd4(f, c0, 1e-3 * c0))


def test_grad_learning_rate_gradient_descent(sparse):
    """d/dη of the loss after K GD steps: reverse (checkpointed) and forward mode."""
    data, model = sparse

    def f(eta, adjoint=None):
        adjoint = diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint
        dyn = dynsim.GradientDescent(eta, steps=300, n_save=4, adjoint=adjoint)
        r = dynsim.simulate(
            model, data, init=init.Constant(0.3), dynamics=dyn, seeds=2, key=jax.random.key(0)
        )
        return jnp.mean(r.loss[:, -1])

    eta = 0.02
    # GD is exact arithmetic: noise is rounding only (~1e-16/1e-5), so h may be small.
    fd = fd4(lambda e: f(jnp.asarray(e)), eta, 1e-3 * eta)
    check("GD d(loss)/d(eta), reverse", jax.grad(f)(jnp.asarray(eta)), fd)
    fwd = jax.jacfwd(lambda e: f(e, diffrax.ForwardMode()))(jnp.asarray(eta))
    check("GD d(loss)/d(eta), forward", fwd, fd)


def test_jacfwd_forward_mode(sparse):
    """jacfwd of β∞ ∈ ℝᵈ w.r.t. α with GradientFlow(adjoint=ForwardMode())."""
    data, model = sparse
    dyn = dynsim.GradientFlow(t1=10.0, n_save=2, adjoint=diffrax.ForwardMode(), **TIGHT)

    def f(alpha):
        r = dynsim.simulate(
            model, data, init=init.Constant(alpha), dynamics=dyn, seeds=1, key=jax.random.key(0)
        )
        return _beta(model, r)[0]

    a0 = 0.3
    jac = jax.jacfwd(f)(jnp.asarray(a0))
    assert jac.shape == (8,)
    check("jacfwd d(beta_inf)/d(alpha)", jac, fd4(lambda a: f(jnp.asarray(a)), a0, 1e-3 * a0))
    # The default (checkpointed) adjoint cannot be pushed forward.
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jacfwd(lambda a: f_default(model, data, a))(jnp.asarray(a0))


def f_default(model, data, alpha):
    dyn = dynsim.GradientFlow(t1=1.0, n_save=2)
    r = dynsim.simulate(model, data, init=init.Constant(alpha), dynamics=dyn, seeds=1,
                        key=jax.random.key(0))
    return r.loss[0, -1]


def test_width_exponent_vmap_grad_equals_stacked(sparse):
    """d/d(width_exponent) of the mean loss at t = 1 over 2 seeds of Gaussian init:
    vmap(grad) over several exponents = stacked grads, and matches FD. (grad of the
    vmapped sum is the same program as vmap(grad) up to the order of the two
    transformations; tests/test_batched_loop.py covers reverse mode under vmap.)"""
    data, model = sparse
    dyn = dynsim.GradientFlow(t1=1.0, n_save=2, **TIGHT)

    def f(s):
        r = dynsim.simulate(
            model, data, init=init.Gaussian(1.0, width_exponent=s), dynamics=dyn, seeds=2,
            key=jax.random.key(1),
        )
        return jnp.mean(r.loss[:, -1])

    exponents = jnp.asarray([0.25, 0.5, 0.75])
    vg = jax.vmap(jax.grad(f))(exponents)
    grad = jax.jit(jax.grad(f))
    stacked = jnp.stack([grad(e) for e in exponents])
    # Per-seed step control under vmap: the same discrete solutions, so agreement is
    # at rounding level.
    np.testing.assert_allclose(vg, stacked, rtol=1e-10)
    s0 = 0.5
    check("d(loss)/d(width_exponent)", stacked[1], fd4(lambda s: f(jnp.asarray(s)), s0, 1e-3 * s0))


def _temp_bytes(data, model, max_steps, checkpoints=None):
    adjoint = diffrax.RecursiveCheckpointAdjoint(checkpoints=checkpoints)
    dyn = dynsim.GradientFlow(t1=10.0, n_save=2, max_steps=max_steps, adjoint=adjoint)

    def f(alpha):
        r = dynsim.simulate(
            model, data, init=init.Constant(alpha), dynamics=dyn, seeds=1, key=jax.random.key(0)
        )
        return r.loss[0, -1]

    # Compiled only, never run: the temporary buffers include the checkpoint storage.
    mem = jax.jit(jax.grad(f)).lower(jnp.asarray(0.3)).compile().memory_analysis()
    return None if mem is None else mem.temp_size_in_bytes


def test_backward_memory_bounded_in_max_steps(sparse):
    """Reverse-mode memory with RecursiveCheckpointAdjoint, as max_steps grows 100×.

    With `checkpoints=None` (default) equinox's checkpointed loop stores
    c ≈ √(2·max_steps) checkpoints (online treeverse, Stumm & Walther 2010): memory grows
    like √max_steps (10× for 100× the steps), not linearly; the recomputation overhead
    stays O(1) passes. A fixed `checkpoints=c` keeps memory constant whatever
    `max_steps` (recomputation then grows ~logarithmically with c ≪ steps).
    Measured on CPU (float64, d = 8): 1e3 → 29 kB, 1e5 → 243 kB (default);
    1e5 with `checkpoints=32` → 25 kB (not asserted here, to save a compilation).
    """
    data, model = sparse
    small = _temp_bytes(data, model, 1_000)
    if small is None:
        pytest.skip("no memory analysis on this backend")
    large = _temp_bytes(data, model, 100_000)
    print(f"backward temp bytes: 1e3 steps {small}, 1e5 steps {large}")
    assert large <= 1.5 * np.sqrt(100) * small  # ~√ growth, far from the 100× of storing all
