"""The built-in models' hand-written pullbacks give reverse mode's value and gradient.

`Problem.value_and_grad` computes ∇L = (∂f/∂θ)ᵀ ∂ℓ/∂f with the model's
`apply_and_pullback`; the reference is `jax.value_and_grad(Problem.value)`, autodiff of the
plain formula ℓ(model.apply(θ, X), y). float64 (conftest).

Tolerance: both sides evaluate the same sums of products in float64, in different
association orders (the end-to-end form of `LinearNet` multiplies the weights before the
data; backpropagation sums in another order), so they differ by a few ulps of the largest
term: measured ≤ 3e-15 relative to a leaf's largest entry at these sizes. The bound
`RTOL = 1e-12` (of max|∂L/∂θ| per leaf, and of |L| for the value) leaves three orders of
margin for rounding while any wrong or missing term (an O(1) relative error) fails.
"""

import jax
import jax.numpy as jnp
import pytest

from dynsim._problem import Problem
from dynsim.losses import CustomLoss, ExponentialLoss, LogisticLoss, SquaredLoss
from dynsim.models import (
    ACTIVATIONS,
    AbstractModel,
    DiagonalNet,
    HomogeneousNet,
    LinearNet,
    TwoLayerNet,
)

RTOL = 1e-12
N, D = 7, 5  # samples, input dimension

MODELS = {
    # LinearNet: n = 7 samples, so outputs m ≤ 7 take the end-to-end pullback, m = 9 the
    # backpropagation through the features (test_linear_net_both_pullbacks covers each).
    "linear-plain": LinearNet(D),
    "linear-plain-bias-m3": LinearNet(D, (), 3, bias=True),
    "linear-1hidden": LinearNet(D, [4]),
    "linear-1hidden-bias": LinearNet(D, [4], bias=True),
    "linear-2hidden-m2-bias": LinearNet(D, [4, 3], 2, bias=True),
    "linear-3hidden-bias": LinearNet(D, [6, 3, 4], bias=True),
    "linear-2hidden-m9-bias": LinearNet(D, [6, 3], 9, bias=True),
    "linear-2hidden-m9": LinearNet(D, [6, 3], 9),
    "diagonal-uu-vv": DiagonalNet(D),
    "diagonal-uv": DiagonalNet(D, "uv"),
    "diagonal-depth3": DiagonalNet(D, "depth", depth=3),
    "diagonal-depth4": DiagonalNet(D, "depth", depth=4),
    "diagonal-uu-vv+w": DiagonalNet(D, "uu-vv+w", dense_scale=0.3),
    "homogeneous-relu-2": HomogeneousNet(D, [4]),
    "homogeneous-relu-3": HomogeneousNet(D, [4, 3]),
    "homogeneous-leaky-4-m2": HomogeneousNet(D, [4, 6, 3], 2, activation="leaky_relu",
                                             leaky_slope=0.2),
    **{f"two-layer-{a}": TwoLayerNet(D, 6, a) for a in ACTIVATIONS},
    "two-layer-relu-nobias-meanfield": TwoLayerNet(D, 6, bias=False, scaling="mean-field"),
    "two-layer-tanh-outbias-standard": TwoLayerNet(D, 6, "tanh", output_bias=True,
                                                   scaling="standard"),
    "two-layer-leaky-frozen-outer": TwoLayerNet(D, 6, "leaky_relu", output_bias=True,
                                                train_outer=False, leaky_slope=0.3),
    "two-layer-erf-frozen-nobias": TwoLayerNet(D, 6, "erf", bias=False, train_outer=False),
}


def _data(model, classification, key):
    kx, ky = jax.random.split(key)
    X = jax.random.normal(kx, (N, D))
    y = jax.random.normal(ky, (N, *model.out_shape))
    return X, (jnp.where(y >= 0, 1.0, -1.0) if classification else y)


def _losses(model):
    losses = [SquaredLoss(r) for r in ("sum", "mean")]
    losses.append(CustomLoss(lambda f, t: jnp.sum(jnp.cosh(f - t)), reduction="mean"))
    if model.out_shape == ():
        losses += [LogisticLoss(r) for r in ("sum", "mean")]
        losses += [ExponentialLoss(r) for r in ("sum", "mean")]
    return losses


def _params(model, key):
    # std 0.7: pre-activations of all signs and sizes, none at a kink (z = 0)
    return model.gaussian(key, 0.7)


def _assert_close(got, want, rtol=RTOL):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert g.shape == w.shape and g.dtype == w.dtype
        scale = jnp.max(jnp.abs(w))
        assert float(jnp.max(jnp.abs(g - w))) <= rtol * float(scale) + 1e-300, (g, w)


def _both(problem, params, batch=None):
    got = problem.value_and_grad(params, batch)
    want = jax.value_and_grad(problem.value)(params, batch)
    return got, want


@pytest.mark.parametrize("name", list(MODELS))
def test_value_and_grad_equal_autodiff(name, getkey):
    model = MODELS[name]
    params = _params(model, getkey())
    batch = jnp.array([5, 0, 3])  # a minibatch: the unbiased estimate and its gradient
    for loss in _losses(model):
        X, y = _data(model, loss.classification, getkey())
        problem = Problem(model, loss, X, y)
        for b in (None, batch):
            (v, g), (v_ad, g_ad) = _both(problem, params, b)
            assert abs(float(v - v_ad)) <= RTOL * abs(float(v_ad)), (loss, b)
            _assert_close(g, g_ad)


@pytest.mark.parametrize("name", list(MODELS))
def test_second_derivative_through_pullback_equals_autodiff(name, getkey):
    """A Hessian-vector product through the hand-written gradient is autodiff's
    (users differentiate through `simulate`, whose vector field is this gradient)."""
    model = MODELS[name]
    params, tangent = _params(model, getkey()), _params(model, getkey())
    loss = LogisticLoss() if model.out_shape == () else SquaredLoss()
    X, y = _data(model, loss.classification, getkey())
    problem = Problem(model, loss, X, y)
    _, hvp = jax.jvp(lambda p: problem.value_and_grad(p)[1], (params,), (tangent,))
    _, hvp_ad = jax.jvp(jax.grad(problem.value), (params,), (tangent,))
    _assert_close(hvp, hvp_ad, rtol=1e-11)  # one more product: a little more rounding
    # reverse over the hand-written gradient: ∇_θ ⟨∇L(θ), v⟩ = H v as well
    rev = jax.grad(lambda p: _dot(problem.value_and_grad(p)[1], tangent))(params)
    _assert_close(rev, hvp_ad, rtol=1e-11)


def _dot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize(
    "name", ["linear-1hidden", "linear-2hidden-m2-bias", "linear-2hidden-m9-bias", "linear-plain"]
)
def test_linear_net_both_pullbacks(name, getkey):
    """The end-to-end and the feature pullbacks of `LinearNet` each equal autodiff,
    whichever of the two `apply_and_pullback` picks for the sizes."""
    model = MODELS[name]
    params = _params(model, getkey())
    X, y = _data(model, False, getkey())
    G = jax.random.normal(getkey(), (N, *model.out_shape))
    pred_ad, vjp = jax.vjp(lambda p: model.apply(p, X), params)
    (want,) = vjp(G)
    pred, pull = model._end_to_end_and_pullback(params, X)
    _assert_close(pred, pred_ad)
    _assert_close(pull(G), want)
    pred, pull = model.forward_and_pullback(params["W"], X, biases=params.get("b"))
    gWs, gbs = pull(G)
    _assert_close(pred, pred_ad)
    _assert_close({"W": gWs, "b": gbs} if model.bias else {"W": gWs}, want)


@pytest.mark.parametrize("name", ["linear-1hidden", "diagonal-uu-vv", "two-layer-relu",
                                  "homogeneous-relu-3"])
def test_vmapped_over_seeds(name, getkey):
    """The batched loop and GD call `vmap(Problem.value_and_grad)` over seeds."""
    model = MODELS[name]
    keys = jax.random.split(getkey(), 4)
    params = jax.vmap(lambda k: _params(model, k))(keys)
    X, y = _data(model, False, getkey())
    problem = Problem(model, SquaredLoss(), X, y)
    got = jax.jit(jax.vmap(problem.value_and_grad))(params)
    want = jax.jit(jax.vmap(jax.value_and_grad(problem.value)))(params)
    _assert_close(got, want)


def test_float32_gradients_stay_float32(getkey):
    model = MODELS["linear-2hidden-m2-bias"]
    params = model.gaussian(getkey(), 0.7, jnp.float32)
    X, y = _data(model, False, getkey())
    problem = Problem(model, SquaredLoss(), X.astype(jnp.float32), y.astype(jnp.float32))
    v, g = problem.value_and_grad(params)
    assert v.dtype == jnp.float32
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(g))


class _Cubic(AbstractModel):
    """A user model without a pullback: f(x) = Σ_j (w_j x_j)³."""

    dim: int

    @property
    def in_dim(self):
        return self.dim

    @property
    def out_shape(self):
        return ()

    def param_shapes(self, dtype=None):
        return {"w": jax.ShapeDtypeStruct((self.dim,), dtype or jnp.float64)}

    def apply(self, params, X):
        return jnp.sum((X * params["w"][None, :]) ** 3, axis=1)

    def gaussian(self, key, std, dtype=None):
        return {"w": std * jax.random.normal(key, (self.dim,), dtype or jnp.float64)}


class _ShiftedLinear(LinearNet):
    """A subclass of a built-in with its own `apply`: the inherited hand-written pullback
    would be wrong for it, so it must get autodiff's."""

    def apply(self, params, X):
        return jnp.tanh(super().apply(params, X)) + 1.0


@pytest.mark.parametrize("model", [_Cubic(D), _ShiftedLinear(D, [4])], ids=["custom", "subclass"])
def test_models_without_a_pullback_use_autodiff(model, getkey):
    params = _params(model, getkey())
    X, y = _data(model, False, getkey())
    problem = Problem(model, SquaredLoss(), X, y)
    (v, g), (v_ad, g_ad) = _both(problem, params)
    assert v == v_ad
    _assert_close(g, g_ad, rtol=0.0)  # the same reverse-mode program
