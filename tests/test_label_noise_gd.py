"""Label-noise gradient descent, `GradientDescent(label_noise=δ)`: step k descends the
loss at targets y + δξ_k, ξ_k ~ N(0, I) (float64, conftest).

For the summed squared loss L = ½‖f − y‖² the gradient is Jᵀ(f − y) (J the n×d
Jacobian of the predictions at θ), linear in y, so one step from a fixed θ₀ is

    θ₁ = θ₀ − ηJᵀ(f − y) + ηδJᵀξ,

exactly Gaussian with mean the GD step and covariance Σ = η²δ²JᵀJ; `Regularized` adds
the same deterministic 2λθ₀ to the gradient, so the same holds for it. All seeds start
at the same θ₀ (a fixed init), so over S seeds the sample mean and covariance of θ₁ − θ₀
estimate them. Tolerances are Monte Carlo errors from the exact Σ (J from `jax.jacfwd`,
independent of the library's pullback): the sample mean has standard deviation
√(Σ_ii/S); an entry of the sample covariance (ddof=1) of Gaussian draws has variance
(Σ_ij² + Σ_iiΣ_jj)/(S − 1). Each is checked within 5 of its standard deviations: the
chance that any of the 8 + 36 checked numbers is outside by chance is below 1e-4
(Gaussian tails; the covariance entries are nearly Gaussian at S = 6,000), and the run is
deterministic given the key. A noise scale off by a factor 1.1 (δ² off by 21%) would
move the diagonal of Σ by ≥ 10 of those standard deviations (each ≈ 1.8% of Σ_ii).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import dynsim
from dynsim import _simulate
from dynsim.losses import Objective, Regularized, SquaredLoss
from dynsim.models import TwoLayerNet

N, D, M = 5, 3, 2
ETA, DELTA = 0.05, 0.7
SEEDS = 6000
MODEL = TwoLayerNet(D, M, "tanh")


@pytest.fixture(scope="module")
def data():
    return dynsim.data.regression(jax.random.key(3), N, D)


def _theta0():
    return {"a": jnp.asarray([0.8, -0.5]), "b": jnp.asarray([0.1, -0.3]),
            "w": jnp.asarray([[0.5, -0.2, 0.9], [-0.7, 0.4, 0.3]])}


def _run(data, dynamics, loss=None, seeds=SEEDS, key=1, init=None):
    return dynsim.simulate(
        MODEL, data, init=init or (lambda k: _theta0()), dynamics=dynamics, seeds=seeds,
        key=jax.random.key(key), loss=loss or SquaredLoss(),
    )


def _steps(res):
    """(S, d) θ₁ − θ₀ in `ravel_pytree` order (sorted keys)."""
    d = jax.tree.map(lambda p, p0: np.asarray(p) - np.asarray(p0), res.params, res.params0)
    return np.concatenate([d[k].reshape(d[k].shape[0], -1) for k in sorted(d)], axis=1)


def test_zero_noise_is_plain_gd_bitwise(data):
    """δ = 0 given as a number draws no noise: the run is plain GD's, bitwise."""
    ref = _run(data, dynsim.GradientDescent(ETA, steps=20), seeds=4, init=dynsim.init.Gaussian(1.0))
    got = _run(data, dynsim.GradientDescent(ETA, steps=20, label_noise=0.0), seeds=4,
               init=dynsim.init.Gaussian(1.0))
    np.testing.assert_array_equal(got.loss, ref.loss)
    np.testing.assert_array_equal(got.num_steps, ref.num_steps)
    for k in ref.params:
        np.testing.assert_array_equal(got.params[k], ref.params[k])


def test_traced_zero_noise_is_gd_to_rounding(data):
    """A traced δ always draws the noise; at δ = 0 the targets y + 0·ξ equal y, but they
    are per seed, and XLA then fuses the residual into the gradient's products
    differently: each gradient differs by a few ulps (observed ≤ 1e-15 here). Over 20
    steps of a well-conditioned descent (losses O(1), contracting) that stays below
    1e-13; any noise actually added (δξ with ξ ~ 1) would be ≥ 1e-2 off."""
    import dataclasses

    from dynsim._problem import Problem

    problem = Problem(MODEL, SquaredLoss(), data.X, data.y)
    p0 = jax.vmap(lambda k: MODEL.gaussian(k, 1.0, jnp.float64))(
        jax.random.split(jax.random.key(0), 4))
    keys = jax.random.split(jax.random.key(1), 4)
    gd = dynsim.GradientDescent(ETA, steps=20, block_size=None)
    ref = jax.jit(lambda p: gd.run_batch(problem, p, keys))(p0)
    run = lambda d, p: dataclasses.replace(gd, label_noise=d).run_batch(problem, p, keys)
    got = jax.jit(run)(jnp.asarray(0.0), p0)
    noisy = jax.jit(run)(jnp.asarray(0.1), p0)
    for k in ref.params:
        np.testing.assert_allclose(got.params[k], ref.params[k], rtol=0, atol=1e-13)
    assert np.max(np.abs(noisy.params["w"] - ref.params["w"])) > 1e-3


def test_zero_noise_keeps_the_minibatches(data):
    """The noise stream is apart from the minibatch draws: with label noise the same
    minibatches are drawn. For the squared loss the noisy minibatch step is the plain
    minibatch step plus ηδ(n/b)J_Bᵀξ_B, so with the same batches B the difference of the
    two runs' first steps lies in the row space of J_B for a B of b = 2 samples: rank 2
    in d = 8 dimensions. With other batches it would not (rank of the combined rows up
    to 4): the smallest singular values of [J_B; Δ] are checked against rounding
    (1e-10 relative to the largest, far above the ~1e-15 of float64 products and far
    below an O(1) component off the row space)."""
    common = dict(seeds=3, init=dynsim.init.Gaussian(1.0))
    plain = dynsim.GradientDescent(ETA, steps=1, batch_size=2)
    ref = _run(data, plain, **common)
    got = _run(data, dynsim.GradientDescent(ETA, steps=1, batch_size=2, label_noise=DELTA),
               **common)
    diff = _steps(got) - _steps(ref)
    n = data.X.shape[0]
    _, unravel = ravel_pytree(_theta0())
    jac = jax.jit(jax.jacfwd(lambda p: MODEL.apply(unravel(p), data.X)))
    for s in range(3):
        J = np.asarray(jac(ravel_pytree(jax.tree.map(lambda x: jnp.asarray(x[s]), ref.params0))[0]))
        # the batch: the two rows of J whose span contains diff[s]
        fits = []
        for i in range(n):
            for j in range(i + 1, n):
                sv = np.linalg.svd(np.vstack([J[[i, j]], diff[s]]), compute_uv=False)
                fits.append(sv[-1] / sv[0])
        assert min(fits) < 1e-10


@pytest.mark.parametrize("loss", [SquaredLoss(), Regularized(SquaredLoss(), 0.1)],
                         ids=["squared", "regularized"])
def test_one_step_mean_and_covariance(data, loss):
    gd = _run(data, dynsim.GradientDescent(ETA, steps=1), loss=loss, seeds=2)
    res = _run(data, dynsim.GradientDescent(ETA, steps=1, label_noise=DELTA), loss=loss)
    assert np.all(res.num_steps == 1)
    flat0, unravel = ravel_pytree(_theta0())
    J = np.asarray(jax.jacfwd(lambda p: MODEL.apply(unravel(p), data.X))(flat0))  # (n, d)
    sigma = ETA**2 * DELTA**2 * J.T @ J
    steps = _steps(res)
    mean_gd = _steps(gd)[0]
    sd_mean = np.sqrt(np.diag(sigma) / SEEDS)
    assert np.all(np.abs(steps.mean(axis=0) - mean_gd) <= 5 * sd_mean)
    cov = np.cov(steps, rowvar=False)
    sd_cov = np.sqrt((sigma**2 + np.outer(np.diag(sigma), np.diag(sigma))) / (SEEDS - 1))
    assert np.all(np.abs(cov - sigma) <= 5 * sd_cov), np.max(np.abs(cov - sigma) / sd_cov)


def test_with_minibatches_the_mean_step_is_the_gd_step(data):
    """Minibatch and label noise together: E[step] = GD step (both noises have mean zero
    given the other); within 5 empirical standard errors per coordinate, as in
    tests/test_minibatch_sgd.py."""
    gd = _run(data, dynsim.GradientDescent(ETA, steps=1), seeds=2)
    res = _run(data, dynsim.GradientDescent(ETA, steps=1, batch_size=2, label_noise=DELTA),
               seeds=4000)
    steps = _steps(res)
    se = steps.std(axis=0, ddof=1) / np.sqrt(steps.shape[0])
    assert np.all(se > 0)
    assert np.all(np.abs(steps.mean(axis=0) - _steps(gd)[0]) <= 5 * se)


def test_same_key_same_noise(data):
    gd = dynsim.GradientDescent(ETA, steps=10, label_noise=DELTA)
    a, b = _run(data, gd, seeds=3), _run(data, gd, seeds=3)
    c = _run(data, gd, seeds=3, key=2)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.allclose(a.params["w"], c.params["w"])
    # different seeds of one run draw different noise (the same θ₀ for all)
    assert not np.allclose(a.params["w"][0], a.params["w"][1])


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), [0.1, 0.2], "0.1"])
def test_bad_label_noise_value(value, without_runtime_typecheck):
    with pytest.raises(ValueError, match="^label_noise:"):
        dynsim.GradientDescent(ETA, steps=3, label_noise=value)


def test_label_noise_needs_a_per_sample_regression_loss(data, without_runtime_typecheck):
    objective = Objective(lambda m, p, d: 0.5 * jnp.sum((m.apply(p, d.X) - d.y) ** 2))
    sep = dynsim.data.separable(jax.random.key(0), N, D)
    gd = dynsim.GradientDescent(ETA, steps=3, label_noise=DELTA)
    before = _simulate.TRACE_COUNT["chunk"]
    cases = [(data, objective), (data, Regularized(objective, 0.1)), (sep, "logistic"),
             (sep, Regularized("logistic", 0.1))]
    for d, loss in cases:
        with pytest.raises(ValueError, match="^label_noise:"):
            dynsim.simulate(MODEL, d, init=lambda k: _theta0(), dynamics=gd, seeds=2,
                            key=jax.random.key(0), loss=loss)
    assert _simulate.TRACE_COUNT["chunk"] == before
