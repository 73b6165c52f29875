"""`FusedTsit5` against `diffrax.Tsit5` (float64): one step, whole solves, the
`GradientFlow` `vmap` path, and derivatives through the solve.

Tolerances. Both solvers form the same sums of the same terms, associated differently
(`diffrax.Tsit5` contracts a zero-padded (7, ...) buffer of scaled stages h·f_j, here
the coefficients a_ij·h multiply f_j in one unrolled sum). A stage value therefore
differs by a few ulp of the magnitudes summed, |y0| + Σ_j |a_ij·k_j|, and the vector
field carries that through the later stages multiplied by about 1 + h·Lip(f): the step
tests allow 64 ulp of those magnitudes. The error estimate Σ_j (b_j − b̂_j)·k_j is a
small remainder of O(|k|) terms, so its relative rounding is ~ulp·|k|/|error|; at rtol
1e-10 that is ~1e-6, which moves the controller's next step by ~1e-7 relative (the
PID exponents are ≤ 0.14). Whole solves therefore take the same accepted and rejected
steps at times that agree to ~1e-6 relative (asserted: 1e-5), with solutions that agree
far inside the tolerances.
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim
from dynsim import Status
from dynsim._problem import Problem
from dynsim.dynamics import FusedTsit5
from dynsim.dynamics._flow_helpers import initial_step, step_controller
from dynsim.dynamics._gradient_flow import per_seed_solver, supports_batched
from dynsim.losses import get_loss
from dynsim.models import LinearNet, TwoLayerNet

EPS = np.finfo(np.float64).eps
DIFFRAX = diffrax.Tsit5()
# In `GradientFlow`, diffrax's own implementation: the stage-loop kind that
# `RecursiveCheckpointAdjoint` gives a `Tsit5()` (`per_seed_solver` keeps a given kind).
DIFFRAX_GF = diffrax.Tsit5(scan_kind="bounded")


def _nonlinear(t, y, args):
    return {
        "a": -y["a"] * (1 + jnp.sin(t)) + jnp.sum(y["b"][:2]),
        "b": -jnp.tanh(y["b"]) * y["a"] + jnp.cos(3 * t),
    }


_A = jnp.asarray([[-1.0, 2.0, 0.0], [-2.0, -1.0, 0.5], [0.0, 0.0, -30.0]])


def _linear(t, y, args):
    return _A @ y


def _gradient_flow():
    data = dynsim.data.regression(jax.random.key(0), 8, 5)
    model = LinearNet(5, [4])
    problem = Problem(model, get_loss("squared"), data.X, data.y)
    y0 = dynsim.init.Gaussian(0.5)(model, data, jax.random.key(1))
    vf = lambda t, p, args: jax.tree.map(jnp.negative, problem.value_and_grad(p)[1])  # noqa: E731
    return vf, y0, 20.0


PROBLEMS = {
    "nonlinear-pytree": lambda: (
        _nonlinear,
        {"a": jnp.asarray(1.3), "b": jnp.asarray([0.5, -2.0, 3.0])},
        10.0,
    ),
    "linear-oscillating-stiffish": lambda: (_linear, jnp.asarray([1.0, -0.5, 2.0]), 8.0),
    "gradient-flow-linear-net": _gradient_flow,
}


def _solve(vf, y0, t1, solver, saveat, rtol=1e-10, atol=1e-12, **kw):
    """As `GradientFlow.run` solves: its controller and its first step (Hairer's
    heuristic, whose error is near the tolerance; a much smaller first step has an
    error estimate of a few ulp, whose rounding then moves every later step time)."""
    ctrl, term = step_controller(solver, rtol, atol), diffrax.ODETerm(vf)
    dt0 = initial_step(diffrax.Tsit5(), ctrl, term, jnp.asarray(0.0), jnp.asarray(t1), y0)
    return diffrax.diffeqsolve(
        term, solver, 0.0, t1, dt0, y0, saveat=saveat, stepsize_controller=ctrl,
        max_steps=10_000, **kw,
    )


def _leaves_close(x, y, scale, ulps=64):
    for a, b, s in zip(jax.tree.leaves(x), jax.tree.leaves(y), jax.tree.leaves(scale)):
        np.testing.assert_array_less(np.abs(np.asarray(a) - np.asarray(b)), ulps * EPS * np.max(s) + 1e-300)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_each_step_matches_diffrax(name):
    """Along diffrax's accepted steps (and one rejected, oversized step from each
    state), both solvers' `step` from the same (t0, t1, y0, FSAL stage): the new state,
    the FSAL stage, the error estimate and the dense output at three interior times agree
    to rounding, and the controller accepts or rejects both."""
    vf, y0, t1 = PROBLEMS[name]()
    sol = jax.jit(lambda: _solve(vf, y0, t1, DIFFRAX, diffrax.SaveAt(steps=True)))()
    n = int(sol.stats["num_accepted_steps"])
    ts = np.asarray(sol.ts[:n])
    states = [y0] + [jax.tree.map(lambda x, i=i: x[i], sol.ys) for i in range(n)]
    starts = np.concatenate([[0.0], ts])
    term = diffrax.ODETerm(vf)
    ctrl = step_controller(DIFFRAX, 1e-10, 1e-12)

    @jax.jit
    def both(t0, t1_, y):
        out = []
        for solver in (DIFFRAX, FusedTsit5()):
            state = solver.init(term, t0, t1_, y, None)
            y1, err, dense, fsal, result = solver.step(term, t0, t1_, y, None, state, False)
            interp = solver.interpolation_cls(t0=t0, t1=t1_, **dense)
            mid = [interp.evaluate(t0 + c * (t1_ - t0)) for c in (0.25, 0.5, 0.9)]
            cstate = ctrl.init(term, t0, t1_, y, t1_ - t0, None, solver.func, 5)[1]
            keep, *_ = ctrl.adapt_step_size(t0, t1_, y, y1, None, err, 5, cstate)
            fsal = fsal[1] if isinstance(solver, diffrax.Tsit5) else fsal
            out.append((y1, err, mid, fsal, keep))
        k = dense["fs"]  # stage derivatives f_j (FusedTsit5 with an ODETerm: scale = h)
        mags = jax.tree.map(
            lambda y_, *f: jnp.abs(y_) + sum(jnp.abs((t1_ - t0) * fj) for fj in f) * 12, y, *k
        )
        return out, mags

    checked_reject = 0
    for i in range(0, n, max(1, n // 25)):
        t0, y = starts[i], states[i]
        for t1_ in (ts[i], t0 + 4 * (ts[i] - t0)):
            (ref, new), mags = both(jnp.asarray(t0), jnp.asarray(min(t1_, t1)), y)
            _leaves_close(new[0], ref[0], mags)  # y1
            _leaves_close(new[1], ref[1], mags)  # error estimate: to rounding of |k|
            for m_new, m_ref in zip(new[2], ref[2]):
                _leaves_close(m_new, m_ref, mags)  # dense output
            # the FSAL stage f(t1, y1): y1's rounding times the Lipschitz constant (< 100 here)
            _leaves_close(new[3], ref[3], jax.tree.map(lambda m: 100 * m, mags))
            # The same decision on the same (rounding-level equal) error estimate. (The
            # proposed next steps are not compared here: on the first, tiny step the
            # error estimate is itself a few ulp of |k| and its rounding moves them by
            # ~1e-3; the whole solves below take the same steps.)
            assert bool(new[4]) == bool(ref[4])
            checked_reject += not bool(ref[4])
    assert checked_reject > 0  # the oversized steps include rejected ones


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_solve_matches_diffrax_step_for_step(name):
    """Whole adaptive solves: the same accepted and rejected step counts, accepted step
    times within 1e-5 relative (module docstring), states at those times and at save
    times (dense output) and the final state agreeing far inside the tolerances."""
    vf, y0, t1 = PROBLEMS[name]()
    save = jnp.linspace(0.0, t1, 17)
    out = {}
    for solver in (DIFFRAX, FusedTsit5()):
        steps = jax.jit(lambda s=solver: _solve(vf, y0, t1, s, diffrax.SaveAt(steps=True)))()
        dense = jax.jit(lambda s=solver: _solve(vf, y0, t1, s, diffrax.SaveAt(ts=save)))()
        out[type(solver)] = steps, dense
    (ref, ref_d), (new, new_d) = out[diffrax.Tsit5], out[FusedTsit5]
    for key in ("num_accepted_steps", "num_rejected_steps", "num_steps"):
        assert int(new.stats[key]) == int(ref.stats[key]), key
    assert int(ref.stats["num_rejected_steps"]) > 0 or name == "gradient-flow-linear-net"
    n = int(ref.stats["num_accepted_steps"])
    np.testing.assert_allclose(new.ts[:n], ref.ts[:n], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(new_d.ys), jax.tree.leaves(ref_d.ys)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    for a, b in zip(jax.tree.leaves(new.ys), jax.tree.leaves(ref.ys)):
        np.testing.assert_allclose(a[n - 1], b[n - 1], rtol=1e-8, atol=1e-10)


def test_jumps_and_dense_solution():
    """`made_jump` (step-size controller `jump_ts`) re-evaluates the FSAL stage, and
    `SaveAt(dense=True)` interpolates with the fused dense output."""
    vf, y0, t1 = PROBLEMS["nonlinear-pytree"]()

    def solve(solver):
        ctrl = diffrax.PIDController(rtol=1e-9, atol=1e-11, jump_ts=jnp.asarray([1.0, 2.5]))
        return diffrax.diffeqsolve(
            diffrax.ODETerm(vf), solver, 0.0, t1, 1e-3, y0, stepsize_controller=ctrl,
            saveat=diffrax.SaveAt(dense=True, t1=True), max_steps=10_000,
        )

    ref, new = (jax.jit(lambda s=s: solve(s))() for s in (DIFFRAX, FusedTsit5()))
    assert int(new.stats["num_steps"]) == int(ref.stats["num_steps"])
    ts = jnp.linspace(0.0, t1, 41)
    for a, b in zip(jax.tree.leaves(jax.vmap(new.evaluate)(ts)), jax.tree.leaves(jax.vmap(ref.evaluate)(ts))):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    for a, b in zip(jax.tree.leaves(new.ys), jax.tree.leaves(ref.ys)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_gradient_flow_vmap_path_uses_it_and_matches_diffrax():
    """`GradientFlow(batched=False)` runs `FusedTsit5` for `Tsit5()`; against diffrax's
    Tsit5 (`scan_kind` given) the same statuses and step counts, stop times within
    1e-5 relative and the saved losses within the tolerances. An explicit `FusedTsit5`
    still takes the batched loop when `batched=True`."""
    assert isinstance(per_seed_solver(diffrax.Tsit5()), FusedTsit5)
    assert per_seed_solver(DIFFRAX_GF) is DIFFRAX_GF
    dopri = diffrax.Dopri5()
    assert per_seed_solver(dopri) is dopri
    assert supports_batched(dynsim.GradientFlow(solver=FusedTsit5()))
    data = dynsim.data.teacher_student(jax.random.key(2), 12, TwoLayerNet(5, 2))
    model = TwoLayerNet(5, 6, "tanh", bias=True)
    kw = dict(t1=30.0, n_save=9, rtol=1e-10, atol=1e-12, stop_loss=1e-4, batched=False)
    common = dict(init=dynsim.init.Gaussian(1.0), seeds=4, key=jax.random.key(3))
    new = dynsim.simulate(model, data, dynamics=dynsim.GradientFlow(**kw), **common)
    ref = dynsim.simulate(model, data, dynamics=dynsim.GradientFlow(**kw, solver=DIFFRAX_GF), **common)
    assert set(np.asarray(ref.status).tolist()) >= {Status.CONVERGED}
    np.testing.assert_array_equal(new.status, ref.status)
    np.testing.assert_array_equal(new.num_steps, ref.num_steps)
    np.testing.assert_allclose(new.t_final, ref.t_final, rtol=1e-5)
    np.testing.assert_allclose(new.loss, ref.loss, rtol=1e-6, atol=1e-14)
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(ref.params)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * np.max(np.abs(b)))


@pytest.mark.parametrize("adjoint", ["checkpoint", "forward"])
def test_gradients_through_gradient_flow_match_diffrax(adjoint):
    """d(final loss)/d(init scale) through `simulate` on the `vmap` path: reverse mode
    (`RecursiveCheckpointAdjoint`) and forward mode (`ForwardMode`, `jax.jacfwd`), with
    `FusedTsit5` against diffrax's Tsit5."""
    data = dynsim.data.regression(jax.random.key(0), 6, 4)
    adj = {"checkpoint": diffrax.RecursiveCheckpointAdjoint(), "forward": diffrax.ForwardMode()}[adjoint]
    diff = {"checkpoint": jax.grad, "forward": jax.jacfwd}[adjoint]

    def final_loss(scale, solver):
        gf = dynsim.GradientFlow(
            t1=1.0, n_save=2, rtol=1e-10, atol=1e-12, max_steps=500, batched=False,
            adjoint=adj, solver=solver,
        )
        res = dynsim.simulate(
            LinearNet(4, [3]), data, init=dynsim.init.Gaussian(scale), dynamics=gf, seeds=2,
            key=jax.random.key(0),
        )
        return jnp.sum(res.loss[:, -1])

    new = diff(final_loss)(0.5, diffrax.Tsit5())
    # (diffrax's stage loop differentiates forwards only as a plain loop: `ForwardMode`
    # sets `scan_kind="lax"` itself when none is given)
    ref = diff(final_loss)(0.5, DIFFRAX_GF if adjoint == "checkpoint" else diffrax.Tsit5(scan_kind="lax"))
    assert np.isfinite(ref) and abs(ref) > 1e-6
    np.testing.assert_allclose(new, ref, rtol=1e-7)


@pytest.mark.parametrize("adjoint", ["checkpoint", "forward", "backsolve"])
def test_gradients_through_diffeqsolve_match_diffrax(adjoint):
    """d/dθ of a solve's final state for a vector field with parameters θ, with every
    adjoint (`BacksolveAdjoint` solves the adjoint ODE, an `AdjointTerm`, with the same
    solver: the generic stage path), `FusedTsit5` against diffrax's Tsit5."""
    y0 = jnp.asarray([1.0, -0.5, 2.0])
    adj = {
        "checkpoint": diffrax.RecursiveCheckpointAdjoint(),
        "forward": diffrax.ForwardMode(),
        "backsolve": diffrax.BacksolveAdjoint(),
    }[adjoint]
    diff = jax.jacfwd if adjoint == "forward" else jax.jacrev

    def final(theta, solver):
        def vf(t, y, args):
            return args[0] * _A @ y + args[1] * jnp.sin(y)

        ctrl = diffrax.PIDController(rtol=1e-10, atol=1e-12)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(vf), solver, 0.0, 2.0, 1e-3, y0, args=theta,
            stepsize_controller=ctrl, adjoint=adj, max_steps=10_000,
        )
        return sol.ys[-1]

    theta = jnp.asarray([0.7, 0.3])
    new = jax.jit(diff(lambda th: final(th, FusedTsit5())))(theta)
    ref = jax.jit(diff(lambda th: final(th, diffrax.Tsit5())))(theta)
    np.testing.assert_allclose(new, ref, rtol=1e-7, atol=1e-10)
