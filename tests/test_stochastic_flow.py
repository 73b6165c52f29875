r"""`StochasticGradientFlow`: Langevin, SGD and label-noise diffusions (float64, conftest).

Closed forms used:

- Ornstein–Uhlenbeck, L = ½θᵀAθ with isotropic noise 2τI: the SDE's stationary
  covariance is τA⁻¹; Euler–Maruyama with step h is the linear chain
  θ_{k+1} = (I − hA)θ_k + √(2τh)ξ_k, whose stationary covariance is, per eigenvalue a
  of A, τ/(a(1 − ah/2)) (it solves Σ = (I − hA)Σ(I − hA) + 2τhI). The test compares
  the sample covariance of 4,000 seeds with the chain's (the scheme's exact answer)
  within 4.5 standard errors of a sample covariance, Var(S_ij) = (Σ_iiΣ_jj + Σ_ij²)/N.
- Weak order: E[θ_T²] of a 1-D OU process from θ₀ = 1 is known in closed form; the
  weak error of Euler–Maruyama is O(h). Measured as diffrax's own tests do, against a
  fine-step solution on the same Brownian paths (`brownian="tree"`), so the Monte-Carlo
  error of the two means cancels to the strong error's order.
- SGD noise: the diffusion's GGᵀ at a fixed θ against η·Cov[minibatch gradient],
  computed exactly by enumerating all C(n, b) batches, and against the covariance of
  sampled `GradientDescent(batch_size=b)` steps.
- Label noise: GGᵀ = ηδ²JᵀJ for ½‖f − y‖² (J = ∂f/∂θ by `jax.jacfwd`).
"""

import itertools

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import dynsim
from dynsim._problem import Problem
from dynsim.dynamics import GradientDescent, GradientFlow, StochasticGradientFlow
from dynsim.dynamics._noise import diffusion, noise_shape
from dynsim.losses import LogisticLoss, Objective, SquaredLoss
from dynsim.models import Custom, TwoLayerNet

A = np.array([[2.0, 0.5], [0.5, 1.0]])
KEY = jax.random.key(0)


def _quadratic(a):
    """L = ½θᵀaθ as a `Custom` model with an `Objective` (the data are unused)."""
    a = jnp.asarray(a)
    d = a.shape[0]
    model = Custom(lambda p, X: X @ p, jnp.zeros(d))
    loss = Objective(lambda m, p, data: 0.5 * p @ a @ p)
    data = (jnp.zeros((2, d)), jnp.zeros(2))
    return model, loss, data


def _ou(dynamics, seeds, theta0=1.0, a=A, key=KEY, **kw):
    model, loss, data = _quadratic(a)
    x0 = jnp.full(np.shape(a)[0], theta0)
    return dynsim.simulate(model, data, init=lambda k: x0, dynamics=dynamics, loss=loss,
                           seeds=seeds, key=key, **kw)


def test_ou_stationary_covariance():
    tau, h, n = 0.5, 0.05, 4000
    # t1 = 6: the initial offset decays like e^{-λ_min t} = e^{-0.79·6} ≈ 0.009 in the
    # mean (the sample covariance subtracts the sample mean) and e^{-2λ_min t} ≈ 1e-4
    # relative in the covariance, far below the 2% sampling error.
    dyn = StochasticGradientFlow(t1=6.0, dt0=h, temperature=tau, n_save=3)
    r = _ou(dyn, n)
    assert np.all(r.status == dynsim.Status.REACHED_END)
    theta = np.asarray(r.params)
    S = np.cov(theta.T)
    a, U = np.linalg.eigh(A)
    chain = (U * (tau / (a * (1 - a * h / 2)))) @ U.T
    se = np.sqrt((np.outer(np.diag(chain), np.diag(chain)) + chain**2) / n)
    assert np.all(np.abs(S - chain) < 4.5 * se), (S, chain, se)
    # and the chain's bias against the SDE's τA⁻¹ is the known O(ah/2) ≤ 7%
    np.testing.assert_allclose(chain, tau * np.linalg.inv(A), rtol=0.08)
    assert np.all(np.abs(theta.mean(0)) < 4.5 * np.sqrt(np.diag(chain) / n) + 0.01)


def test_euler_weak_order_one():
    """The weak error e(h) = E[θ_T²(h)] − E[θ_T²(h_ref)] of Euler–Maruyama on a 1-D OU
    process, measured on shared Brownian paths, equals the scheme's exact weak error
    (from the chain's second-moment recursion) within 4.5 standard errors of the
    per-seed differences, and its log-log slope is the weak order 1."""
    a, sigma2, T, n = 1.0, 1.0, 1.0, 4000
    # E[θ_T²] from θ₀ = 1 for dθ = −aθ dt + σ dW, and for the Euler chain
    # v_{k+1} = (1 − ah)²v_k + σ²h.
    exact = np.exp(-2 * a * T) + sigma2 / (2 * a) * (1 - np.exp(-2 * a * T))

    def chain(h):
        v = 1.0
        for _ in range(round(T / h)):
            v = (1 - a * h) ** 2 * v + sigma2 * h
        return v

    hs, h_ref = T / np.array([8, 16, 32]), T / 512
    init = dynsim.init.Custom(lambda k: jnp.ones(1))
    model, loss, data = _quadratic(np.array([[a]]))

    def second_moment(h):
        dyn = StochasticGradientFlow(t1=T, dt0=float(h), temperature=sigma2 / 2, n_save=1,
                                     brownian="tree", brownian_tol=T / 2**10)
        r = dynsim.simulate(model, data, init=init, dynamics=dyn, loss=loss, seeds=n, key=KEY)
        return np.asarray(r.params)[:, 0] ** 2

    ref = second_moment(h_ref)
    # the fine solution's mean is the closed form within its MC error (θ_T is Gaussian
    # with mean e^{-aT}: the std of θ² is √(2v² + 4m²v') ≤ 2·E[θ²]) plus the chain's bias
    assert abs(ref.mean() - exact) < 4.5 * 2 * exact / np.sqrt(n) + abs(chain(h_ref) - exact)
    diffs = [second_moment(h) - ref for h in hs]
    errors = np.array([np.mean(d) for d in diffs])
    se = np.array([np.std(d) / np.sqrt(n) for d in diffs])
    expected = np.array([chain(h) - chain(h_ref) for h in hs])
    assert np.all(np.abs(errors - expected) < 4.5 * se), (errors, expected, se)
    slope = np.polyfit(np.log(hs), np.log(np.abs(errors)), 1)[0]
    assert 0.85 < slope < 1.3, (slope, errors)  # the exact errors' slope is 1.10


def _net_problem(n=6, d=3, m=4, loss=None):
    X = jax.random.normal(jax.random.key(1), (n, d))
    y = jnp.tanh(X[:, 0]) - 0.5 * X[:, 1]
    model = TwoLayerNet(d, m, activation="tanh")
    params = model.gaussian(jax.random.key(2), 0.8, jnp.float64)
    return Problem(model, SquaredLoss() if loss is None else loss, X, y), params


def _flat(tree):
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def _diffusion_matrix(problem, params, **kw):
    """GGᵀ of the diffusion at θ, by applying G to a basis of the noise space."""
    kind = kw.pop("kind")
    struct = noise_shape(kind, problem, params)
    op = diffusion(kind, problem, params, noise_struct=struct, **kw)
    size = int(np.prod(struct.shape))
    cols = jax.vmap(lambda e: _flat(op.mv(e.reshape(struct.shape))))(jnp.eye(size))
    G = cols.T
    return G @ G.T


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_sgd_diffusion_is_minibatch_covariance(reduction):
    problem, params = _net_problem(loss=SquaredLoss(reduction=reduction))
    n, b, eta = 6, 2, 0.1
    sigma = _diffusion_matrix(problem, params, kind="sgd", temperature=None,
                              learning_rate=eta, batch_size=b, label_noise=None)
    grads = np.stack([
        np.asarray(_flat(problem.value_and_grad(params, jnp.asarray(B))[1]))
        for B in itertools.combinations(range(n), b)
    ])
    exact = eta * np.cov(grads.T, bias=True)  # every batch equally likely
    np.testing.assert_allclose(sigma, exact, rtol=1e-10, atol=1e-12 * np.abs(exact).max())


def test_sgd_diffusion_matches_sampled_gd_steps():
    problem, params = _net_problem()
    b, eta, seeds = 3, 0.05, 6000
    sigma = _diffusion_matrix(problem, params, kind="sgd", temperature=None,
                              learning_rate=eta, batch_size=b, label_noise=None)
    gd = GradientDescent(learning_rate=eta, steps=1, batch_size=b, n_save=1)
    r = dynsim.simulate(problem.model, (problem.X, problem.y), init=lambda k: params,
                        dynamics=gd, seeds=seeds, key=KEY)
    steps = np.concatenate(
        [np.asarray(x).reshape(seeds, -1) for x in jax.tree.leaves(r.params)], axis=1)
    emp = np.cov((steps - np.asarray(_flat(params))).T) / eta  # η²Cov[ĝ]/η = Σ
    # sample covariance error ~ √((Σ_iiΣ_jj + Σ_ij²)/N) per entry
    d = np.sqrt(np.diag(sigma))
    se = np.sqrt((np.outer(d, d) ** 2 + sigma**2) / seeds)
    assert np.all(np.abs(emp - sigma) < 5 * se + 1e-14), np.max(np.abs(emp - sigma) / (se + 1e-14))


def test_label_diffusion_is_jacobian_gram():
    problem, params = _net_problem()
    eta, delta = 0.1, 0.3
    sigma = _diffusion_matrix(problem, params, kind="label", temperature=None,
                              learning_rate=eta, batch_size=None, label_noise=delta)
    flat, unravel = ravel_pytree(params)
    J = jax.jacfwd(lambda v: problem.model.apply(unravel(v), problem.X))(flat)
    np.testing.assert_allclose(sigma, eta * delta**2 * J.T @ J, rtol=1e-12, atol=1e-14)


def test_zero_noise_is_gradient_flow():
    problem, params = _net_problem()
    h = 0.01
    ts = h * np.array([0, 10, 50, 200])
    data = (problem.X, problem.y)
    kw = dict(init=lambda k: params, seeds=2, key=KEY)
    gf = dynsim.simulate(problem.model, data, dynamics=GradientFlow(
        t1=2.0, ts=ts, solver=diffrax.Euler(), dt0=h, batched=False), **kw)
    for dyn in (StochasticGradientFlow(t1=2.0, dt0=h, ts=ts, temperature=0.0),
                StochasticGradientFlow(t1=2.0, dt0=h, ts=ts, noise="sgd", learning_rate=0.1,
                                       batch_size=problem.X.shape[0])):
        r = dynsim.simulate(problem.model, data, dynamics=dyn, **kw)
        # GradientFlow accumulates t += h, the SDE steps to k·h: step sizes differ by
        # rounding (1e-16 relative), which 200 contracting steps keep at ~1e-14.
        for x, y in zip(jax.tree.leaves(r.params), jax.tree.leaves(gf.params)):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(r.loss, gf.loss, rtol=1e-12)
        np.testing.assert_array_equal(r.ts, gf.ts)


@pytest.mark.parametrize("noise", ["isotropic", "sgd", "label"])
def test_reproducible_and_chunk_invariant(noise):
    problem, params = _net_problem()
    kw = {"isotropic": dict(temperature=0.01),
          "sgd": dict(learning_rate=0.1, batch_size=2),
          "label": dict(learning_rate=0.1, label_noise=0.2)}[noise]
    dyn = StochasticGradientFlow(t1=0.5, dt0=0.05, noise=noise, n_save=3, block_size=4, **kw)
    init = dynsim.init.Custom(lambda key: params)  # every seed starts at the same θ₀

    def run(**k):
        return dynsim.simulate(problem.model, (problem.X, problem.y), init=init,
                               dynamics=dyn, **k)

    whole = run(seeds=8, key=KEY)
    chunks = run(seeds=8, key=KEY, chunk_size=4)
    tail = run(seeds=4, key=KEY, seed_start=4)
    again = run(seeds=4, key=KEY, seed_start=4)
    other = run(seeds=4, key=jax.random.key(1), seed_start=4)
    for x, y, z, w in zip(*(jax.tree.leaves(r.params) for r in (whole, chunks, tail, again))):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x[4:], z)
        np.testing.assert_array_equal(z, w)
    # From one θ₀, seeds differ only by their Brownian motions, which differ by seed
    # and by key.
    final = whole.loss[:, -1]
    assert np.all(np.abs(final[:, None] - final[None, :])[~np.eye(8, dtype=bool)] > 1e-10)
    assert np.all(np.abs(other.loss[:, -1] - tail.loss[:, -1]) > 1e-10)


def test_additive_noise_strong_orders():
    """On the same Brownian paths (`brownian="tree"`, one tree for every solver and
    step), the RMS error at T against a fine SRA1 solution halves with h for
    Euler–Maruyama (strong order 1 for additive noise) and falls by at least 2^1.4 for
    ShARK (strong order 1.5; on this linear drift it measures ≈ 2.1)."""
    T, tol = 1.0, 2.0**-10
    init = dynsim.init.Custom(lambda k: jnp.ones(2))
    model, loss, data = _quadratic(A)

    def final(solver, h):
        dyn = StochasticGradientFlow(t1=T, dt0=h, temperature=0.5, n_save=1, brownian="tree",
                                     brownian_tol=tol, solver=solver)
        r = dynsim.simulate(model, data, init=init, dynamics=dyn, loss=loss, seeds=64, key=KEY)
        return np.asarray(r.params)

    ref = final(diffrax.SRA1(), T / 256)
    for solver, lo, hi in ((diffrax.Euler(), 0.8, 1.4), (diffrax.ShARK(), 1.4, 3.0)):
        e1, e2 = (np.sqrt(np.mean((final(solver, T / k) - ref) ** 2)) for k in (8, 16))
        order = np.log2(e1 / e2)
        assert lo < order < hi, (type(solver).__name__, e1, e2, order)


def test_divergence_flagged_without_poisoning_the_batch():
    # L = ½θ² + log(θ + 3): NaN once θ < −3; seeds started below stop as DIVERGED.
    model = Custom(lambda p, X: X @ p, jnp.zeros(1))
    loss = Objective(lambda m, p, d: 0.5 * jnp.sum(p**2) + jnp.sum(jnp.log(p + 3)))
    data = (jnp.zeros((2, 1)), jnp.zeros(2))
    starts = jnp.array([[1.0], [-5.0], [0.5], [2.0]])
    dyn = StochasticGradientFlow(t1=1.0, dt0=0.05, temperature=0.01, n_save=3)
    r = dynsim.simulate(model, data, init=dynsim.init.Custom(
        lambda m, d, k: starts[jax.random.randint(k, (), 0, 4)], with_context=True),
        dynamics=dyn, loss=loss, seeds=16, key=KEY)
    p0 = np.asarray(r.params0)[:, 0]
    bad = p0 < -3
    assert bad.any() and (~bad).any()
    assert np.all(r.status[bad] == dynsim.Status.DIVERGED)
    assert np.all(r.status[~bad] == dynsim.Status.REACHED_END)
    assert np.all(np.isfinite(r.loss[~bad]))


@pytest.mark.usefixtures("without_runtime_typecheck")
@pytest.mark.filterwarnings("ignore:A JAX array is being set as static")
def test_bad_input_named():
    def raises(match, **kw):
        with pytest.raises(ValueError, match=match):
            StochasticGradientFlow(**{"t1": 1.0, "dt0": 0.1, **kw})

    raises("temperature", temperature=-1.0)
    raises("temperature", noise="isotropic")
    raises("label_noise", noise="label", learning_rate=0.1, label_noise=-0.1)
    raises("learning_rate", noise="sgd", batch_size=2, learning_rate=0.0)
    raises("batch_size", noise="sgd", learning_rate=0.1, batch_size=0)
    raises("temperature", noise="sgd", learning_rate=0.1, batch_size=2, temperature=1.0)
    raises("noise", noise="levy", temperature=1.0)
    raises("solver", noise="sgd", learning_rate=0.1, batch_size=2, solver=diffrax.SRA1())
    raises("solver", temperature=1.0, solver=diffrax.Tsit5())
    raises("dt0", temperature=1.0, dt0=2.0)
    raises("t1", temperature=1.0, t1=jnp.asarray(1.0))
    raises("brownian", temperature=1.0, brownian="exact")
    raises("ts", temperature=1.0, ts=[0.0, 2.0])

    problem, params = _net_problem()
    def refused(match, dyn, loss=None, y=problem.y):
        with pytest.raises(ValueError, match=match):
            dynsim.simulate(problem.model, (problem.X, y), init=dynsim.init.Gaussian(0.5),
                            dynamics=dyn, loss=SquaredLoss() if loss is None else loss,
                            seeds=2, key=KEY)

    refused("batch_size", StochasticGradientFlow(t1=1.0, dt0=0.1, noise="sgd", learning_rate=0.1,
                                                 batch_size=7))
    refused("noise", StochasticGradientFlow(t1=1.0, dt0=0.1, noise="label", learning_rate=0.1,
                                            label_noise=0.1),
            loss=LogisticLoss(), y=jnp.sign(problem.y))
    refused("noise", StochasticGradientFlow(t1=1.0, dt0=0.1, noise="sgd", learning_rate=0.1,
                                            batch_size=2),
            loss=Objective(lambda m, p, d: jnp.sum(m.apply(p, d.X) ** 2)))
