"""Metrics that see the problem (`fn(params)` or `fn(params, problem)`) and the built-in
`dynsim.metrics` (float64, conftest).

References are computed independently: the exact Hessian by `jax.hessian` of
`Problem.value` on the flattened parameters and NumPy's `eigvalsh` (the metric uses only
Hessian–vector products); the NTK from a Jacobian built by `jax.jacfwd` of the model on
the parameter PyTree, flattened here (the metric flattens first and picks its own mode).

Tolerances:
- Lanczos with `iters` ≥ d spans the whole space (full reorthogonalization): its top
  Ritz value is λ_max up to the rounding of d products and a d×d eigensolve,
  O(d·ε·‖H‖) ≈ 1e-14·‖H‖ here; `1e-11·‖H‖` leaves margin; an error in the recurrence
  (a missing β term, a lost direction) is O(1)·‖H‖.
- Power iteration: from the fixed start v₀ with components c_i on H's eigenvectors, the
  Rayleigh quotient after k steps satisfies 0 ≤ λ₁ − R ≤ (λ₁ − λ_d)·tan²θ₀·ρ^{2k},
  tan²θ₀ = Σ_{i≥2} c_i²/c_1², ρ = max_{i≥2}|λ_i − s|/(λ₁ − s) for the spectrum shifted
  by s; the bound is computed here from the exact spectrum and the library's v₀, plus
  the same rounding allowance, and the test also asserts that the bound is small (so a
  pass is not vacuous).
- NTK eigenvalues: K from two autodiff modes agree to ulps entrywise, so eigenvalues
  agree to O(N·ε·‖K‖); `1e-11·λ_max(K)` absolute.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import dynsim
import dynsim.metrics as dm
from dynsim import _simulate
from dynsim._problem import Problem, metric_arity, tree_norm
from dynsim.losses import Objective, SquaredLoss
from dynsim.metrics._hessian import _start
from dynsim.models import Custom, TwoLayerNet

N, D, M = 6, 3, 3
ROUND = 1e-11


@pytest.fixture(scope="module")
def data():
    return dynsim.data.regression(jax.random.key(3), N, D)


def _hessian(problem, params, keys=None):
    """Exact Hessian (d×d, NumPy) of L over the leaves `keys` (default all)."""
    keys = sorted(params) if keys is None else keys
    sub = {k: params[k] for k in keys}
    flat, unravel = ravel_pytree(sub)
    H = jax.hessian(lambda v: problem.value({**params, **unravel(v)}))(flat)
    return np.asarray(H), np.asarray(flat)


def _rq_error(lam, c, k):
    """Bound on |λ_dom − R(v_k)| after k power steps from v₀ = Σ c_i e_i, λ_dom the
    eigenvalue of largest |λ| in `lam`."""
    i = int(np.argmax(np.abs(lam)))
    others = np.arange(lam.size) != i
    tan2 = np.sum(c[others] ** 2) / c[i] ** 2
    rho = np.max(np.abs(lam[others])) / abs(lam[i])
    return (lam.max() - lam.min()) * tan2 * rho ** (2 * k)


def _power_bound(H, v0, iters):
    """Bound on λ_max − (the power method's result) for `sharpness(iters)`: with λ₁
    dominant, 2·iters − 1 steps on H; otherwise phase 1's μ ∈ [λ_d, λ_d + e₁] and
    iters − 1 steps from v₀ on H − μI (the bound taken at the largest such μ, where
    the shifted ratio is largest)."""
    lam, V = np.linalg.eigh(H)
    c = V.T @ np.asarray(v0)
    if lam[-1] >= abs(lam[0]):
        return _rq_error(lam, c, 2 * iters - 1)
    shift = lam[0] + _rq_error(lam, c, iters - 1)
    return _rq_error(lam - shift, c, iters - 1)


# --- arity ----------------------------------------------------------------------------

def _two(p, problem):
    return p


def _optional(p, scale=2.0):
    return p


def _star(*args):
    return args[0]


@pytest.mark.parametrize("fn, arity", [
    (lambda p: p, 1), (lambda p, problem: p, 2), (_two, 2), (_optional, 1), (_star, 1),
    (dm.sharpness(), 2), (dm.param_norm(), 2), (jnp.linalg.norm, 1),
], ids=["one", "two", "def-two", "optional", "star", "sharpness", "param_norm", "jnp"])
def test_metric_arity(fn, arity):
    assert metric_arity(fn) == arity


def test_metric_arity_too_many_arguments(without_runtime_typecheck):
    with pytest.raises(ValueError, match="^metrics:"):
        metric_arity(lambda a, b, c: a)


# --- sharpness ------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [5, 6], ids=["top-dominant", "bottom-dominant"])
def test_sharpness_two_layer_net(data, seed):
    """Seed 5: λ_max is also the largest |λ|; seed 6: the most negative eigenvalue
    dominates, so the power method needs its shift."""
    model = TwoLayerNet(D, M, "tanh")
    problem = Problem(model, SquaredLoss(), data.X, data.y)
    params = model.gaussian(jax.random.key(seed), 1.0, jnp.float64)
    H, flat = _hessian(problem, params)
    lam = np.linalg.eigvalsh(H)
    scale = np.max(np.abs(lam))
    d = H.shape[0]
    lanczos = float(dm.sharpness(iters=d, method="lanczos")(params, problem))
    assert abs(lanczos - lam[-1]) <= ROUND * scale
    # seed 6's shifted ratio (λ₂ − λ_d)/(λ₁ − λ_d) ≈ 0.9 needs a few hundred steps
    iters = 200
    power = float(dm.sharpness(iters=iters)(params, problem))
    bound = _power_bound(H, _start(jnp.asarray(flat)), iters)
    assert bound < 1e-6 * scale
    assert -ROUND * scale <= lam[-1] - power <= bound + ROUND * scale


def test_sharpness_dominant_negative_eigenvalue():
    """L(θ) = ½θᵀAθ with spectrum {1, 0.3, −0.2, −3}: the eigenvalue of largest |λ| is −3,
    and both methods return λ_max = 1 (power by its shift s = μ ≈ −3)."""
    q, _ = np.linalg.qr(np.asarray(jax.random.normal(jax.random.key(0), (4, 4))))
    A = q @ np.diag([1.0, 0.3, -0.2, -3.0]) @ q.T
    quad = Objective(lambda m, p, d: 0.5 * p["t"] @ (jnp.asarray(A) @ p["t"]))
    model = Custom(lambda p, X: X @ p["t"], {"t": jax.ShapeDtypeStruct((4,), jnp.float64)})
    X = jnp.ones((2, 4))
    problem = Problem(model, quad, X, jnp.zeros(2))
    params = {"t": jnp.asarray([0.3, -0.1, 0.7, 0.2])}
    np.testing.assert_allclose(dm.sharpness(method="lanczos")(params, problem), 1.0,
                               rtol=0, atol=ROUND * 3)
    iters = 100
    power = float(dm.sharpness(iters=iters)(params, problem))
    bound = _power_bound(A, _start(jnp.zeros(4)), iters)
    assert bound < 1e-8
    assert -ROUND * 3 <= 1.0 - power <= bound + ROUND * 3


def test_lanczos_breakdown_few_distinct_eigenvalues():
    """A linear model with n = 3 < d = 8: H = XᵀX has 3 nonzero eigenvalues and 0, so the
    Krylov space is invariant after 4 steps; the basis continues from fresh vectors and
    λ_max is still exact (to rounding), with no NaN."""
    X = jax.random.normal(jax.random.key(1), (3, 8))
    model = Custom(lambda p, X: X @ p["b"], {"b": jax.ShapeDtypeStruct((8,), jnp.float64)})
    problem = Problem(model, SquaredLoss(), X, jnp.zeros(3))
    params = {"b": jnp.zeros(8)}
    lam = np.linalg.eigvalsh(np.asarray(X.T @ X))
    got = dm.sharpness(iters=20, method="lanczos")(params, problem)
    np.testing.assert_allclose(got, lam[-1], rtol=ROUND)


def test_sharpness_over_trained_parameters_only(data):
    """`TwoLayerNet(train_outer=False)`: the outer weights are fixed, so the Hessian is
    the (w, b) block (the full autodiff Hessian would not even be symmetric, the outer
    weights entering through `stop_gradient`)."""
    model = TwoLayerNet(D, M, "tanh", train_outer=False)
    problem = Problem(model, SquaredLoss(), data.X, data.y)
    params = model.gaussian(jax.random.key(7), 1.0, jnp.float64)
    H, _ = _hessian(problem, params, keys=["b", "w"])
    lam = np.linalg.eigvalsh(H)
    got = dm.sharpness(iters=H.shape[0], method="lanczos")(params, problem)
    assert abs(float(got) - lam[-1]) <= ROUND * np.max(np.abs(lam))


# --- NTK ------------------------------------------------------------------------------

@pytest.mark.parametrize("width", [M, 1], ids=["N<d", "N>d"])
def test_ntk_eigenvalues(data, width):
    model = TwoLayerNet(D, width, "tanh")
    problem = Problem(model, SquaredLoss(), data.X, data.y)
    params = model.gaussian(jax.random.key(4), 1.0, jnp.float64)
    jac = jax.jacfwd(lambda p: model.apply(p, data.X))(params)  # leaves (n, *leaf)
    J = np.concatenate([np.asarray(jac[k]).reshape(N, -1) for k in sorted(jac)], axis=1)
    lam = np.linalg.eigvalsh(J @ J.T)
    tol = ROUND * lam[-1]
    assert abs(float(dm.ntk_max_eig()(params, problem)) - lam[-1]) <= tol
    assert abs(float(dm.ntk_min_eig()(params, problem)) - lam[0]) <= tol
    if J.shape[1] < N:  # rank-deficient K: λ_min = 0
        assert abs(lam[0]) <= tol


# --- norms ----------------------------------------------------------------------------

def test_param_norm_and_distance(data):
    model = TwoLayerNet(D, M, "tanh")
    problem = Problem(model, SquaredLoss(), data.X, data.y)
    params = model.gaussian(jax.random.key(4), 1.0, jnp.float64)
    ref = model.gaussian(jax.random.key(8), 1.0, jnp.float64)
    flat, flat_ref = (np.asarray(ravel_pytree(p)[0]) for p in (params, ref))
    np.testing.assert_allclose(dm.param_norm()(params, problem), np.linalg.norm(flat), rtol=1e-14)
    np.testing.assert_allclose(dm.distance_to(ref)(params, problem),
                               np.linalg.norm(flat - flat_ref), rtol=1e-14)


# --- through simulate -----------------------------------------------------------------

def test_metrics_in_simulate(data):
    """GD with both arities and the built-ins saved along the run: at step 0 and at the
    end the saved sharpness is each seed's exact λ_max(∇²L) (to compare with 2/η = 20),
    the problem's value and gradient norm are the saved loss and gradient norm."""
    model = TwoLayerNet(D, M, "tanh")
    ref = model.gaussian(jax.random.key(8), 1.0, jnp.float64)
    d = sum(x.size for x in jax.tree.leaves(ref))
    metrics = {
        "sharpness": dm.sharpness(iters=d, method="lanczos"),
        "ntk_max": dm.ntk_max_eig(),
        "norm": dm.param_norm(),
        "dist": dm.distance_to(ref),
        "value": lambda p, problem: problem.value(p),
        "grad_norm": lambda p, problem: tree_norm(problem.grad(p)),
        "w00": lambda p: p["w"][0, 0],
    }
    res = dynsim.simulate(
        model, data, init=dynsim.init.Gaussian(1.0), seeds=3, key=jax.random.key(0),
        dynamics=dynsim.GradientDescent(0.1, steps=30, save_steps=(0, 30)), metrics=metrics,
    )
    problem = Problem(model, SquaredLoss(), data.X, data.y)
    # loss and gradient norm: the same quantities, `value` and the pullback gradient
    # (rounding of two evaluation orders: 1e-13 relative)
    np.testing.assert_allclose(res.metrics["value"], res.loss, rtol=1e-13)
    np.testing.assert_allclose(res.metrics["grad_norm"], res.grad_norm, rtol=1e-13)
    np.testing.assert_array_equal(res.metrics["w00"][:, 0], res.params0["w"][:, 0, 0])
    for s in range(3):
        for t, params in ((0, res.params0), (1, res.params)):
            p = jax.tree.map(lambda x: jnp.asarray(x[s]), params)
            lam = np.linalg.eigvalsh(_hessian(problem, p)[0])
            assert abs(res.metrics["sharpness"][s, t] - lam[-1]) <= ROUND * np.max(np.abs(lam))
            flat = np.asarray(ravel_pytree(p)[0])
            np.testing.assert_allclose(res.metrics["norm"][s, t], np.linalg.norm(flat), rtol=1e-14)
            np.testing.assert_allclose(
                res.metrics["dist"][s, t],
                np.linalg.norm(flat - np.asarray(ravel_pytree(ref)[0])), rtol=1e-14)
        np.testing.assert_allclose(res.metrics["ntk_max"][s, 0],
                                   dm.ntk_max_eig()(jax.tree.map(lambda x: jnp.asarray(x[s]), res.params0),
                                                    problem), rtol=1e-12)


# --- bad input ------------------------------------------------------------------------

def _sim(data, metrics):
    model = TwoLayerNet(D, M, "tanh")
    return dynsim.simulate(model, data, init=dynsim.init.Gaussian(1.0), seeds=2,
                           key=jax.random.key(0), dynamics=dynsim.GradientDescent(0.1, steps=3),
                           metrics=metrics)


@pytest.mark.parametrize("metric, name", [
    (lambda p: None, "metrics"),
    (lambda p, problem: None, "metrics"),
    (lambda p, problem: "x", "metrics"),
    (lambda p, problem: problem.nothing, "metrics"),
    (lambda p, problem, extra: p, "metrics"),
    (dm.distance_to({"w": jnp.zeros((M, D))}), "reference"),
    (dm.distance_to({"a": jnp.zeros(M), "b": jnp.zeros(M), "w": jnp.zeros((M, D + 1))}), "reference"),
], ids=["none", "none-2", "string-2", "attribute-2", "three-args", "structure", "shape"])
def test_bad_metric(data, metric, name, without_runtime_typecheck):
    before = _simulate.TRACE_COUNT["chunk"]
    with pytest.raises(ValueError, match=f"^{name}:"):
        _sim(data, {"m": metric})
    assert _simulate.TRACE_COUNT["chunk"] == before


@pytest.mark.parametrize("make, name", [
    (lambda: dm.sharpness(iters=0), "iters"),
    (lambda: dm.sharpness(method="arnoldi"), "method"),
    (lambda: dm.distance_to(None), "reference"),
    (lambda: dm.distance_to({"w": "x"}), "reference"),
    (lambda: dm.distance_to({"w": jnp.asarray([jnp.nan])}), "reference"),
], ids=["iters", "method", "none", "string", "nan"])
def test_bad_builtin_arguments(make, name, without_runtime_typecheck):
    with pytest.raises(ValueError, match=f"^{name}:"):
        make()
