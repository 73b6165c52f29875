"""User-defined models: `models.Custom(apply, params_like)`, `models.Equinox(make)` with
`init.Module()`, and callable activations (`TwoLayerNet(activation=fn)`,
`models.Activation(fn, homogeneous=...)`). float64 (conftest).

Tolerance of the Custom-vs-built-in comparisons (`ROUNDING`): `Custom` differentiates
`TwoLayerNet.apply` by reverse mode while the built-in uses its hand-written pullback,
and `jnp.tanh`'s derivative from autodiff is (1 + t)(1 − t) where the built-in string
"tanh" uses 1 − t². Either way each gradient evaluation differs by a few ulps
(tests/test_analytic_gradients.py bounds it by 1e-12 relative); over the few dozen
steps of these short, well-conditioned runs the difference stays at that level, so
`ROUNDING = 1e-10` on O(1) losses and parameters leaves orders of margin while any
wrong term in the gradient (an O(1) relative error) fails. The same step counts are
required too. Callables that are the built-in's own function and derivative rule
(`jax.nn.relu`) give bitwise-equal results and are compared exactly.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim
from dynsim import _simulate
from dynsim._problem import Problem
from dynsim.analysis import conserved_drift, homogeneity_degree
from dynsim.data import Dataset
from dynsim.dynamics import GradientDescent, GradientFlow
from dynsim.init import Custom as CustomInit
from dynsim.init import Gaussian, Module, Orthogonal
from dynsim.losses import SquaredLoss
from dynsim.models import (
    Activation,
    Custom,
    Equinox,
    HomogeneousNet,
    TwoLayerNet,
)
from dynsim.models._equinox import is_trained

ROUNDING = 1e-10
N, D, M = 8, 3, 5
GF = GradientFlow(t1=4.0)
GD = GradientDescent(learning_rate=0.1, steps=40)


@pytest.fixture(scope="module")
def data():
    X = jax.random.normal(jax.random.key(1), (N, D))
    return X, jnp.sin(X[:, 0]) + 0.5 * X[:, 1]


def _run(model, data, init, dynamics=GF, seeds=3, **kw):
    return dynsim.simulate(model, data, init=init, dynamics=dynamics, seeds=seeds,
                           key=jax.random.key(0), **kw)


def _max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _init_of(model):
    """The built-in's Gaussian draw, as an init any model with its layout accepts."""
    return CustomInit(lambda k: model.gaussian(k, 1.0, jnp.float64))


# --- Custom -------------------------------------------------------------------------

@pytest.mark.parametrize("dynamics", [GF, GD], ids=["gf", "gd"])
def test_custom_matches_built_in(data, dynamics):
    net = TwoLayerNet(D, M, "tanh", output_bias=True)
    custom = Custom(net.apply, net.param_shapes())
    ref, got = (_run(m, data, _init_of(net), dynamics) for m in (net, custom))
    np.testing.assert_array_equal(got.num_steps, ref.num_steps)
    np.testing.assert_array_equal(got.status, ref.status)
    assert _max_diff(got.loss, ref.loss) < ROUNDING
    assert _max_diff(got.params, ref.params) < ROUNDING
    assert float(np.max(got.loss[:, -1])) < float(np.min(got.loss[:, 0]))


def test_custom_generic_inits_and_optional_parts(data):
    net = TwoLayerNet(D, M, "relu")
    example = net.gaussian(jax.random.key(3), 1.0)  # an example pytree, not structs
    custom = Custom(net.apply, example, conserved=net.conserved, predictor=None)
    assert custom.layers == ("['a']", "['b']", "['w']")
    want = {"a": (M,), "b": (M,), "w": (M, D)}
    for init in (Gaussian((0.5, 1.0, 2.0)), Orthogonal(), _init_of(net)):
        dynsim.validate_simulation(custom, data, init=init, dynamics=GF)  # nothing compiles
        params = init(custom, Dataset(*data), jax.random.key(4))
        assert jax.tree.map(jnp.shape, params) == want
    # the conserved quantities given are reported; the missing predictor says so
    res = _run(custom, data, Gaussian(), GradientFlow(t1=1.0), seeds=2, save_conserved=True)
    assert float(np.max(conserved_drift(res).final)) < 1e-4
    with pytest.raises(ValueError, match="predictor: Custom was given no `predictor`"):
        res.predictor()
    with pytest.raises(ValueError, match="width: Custom was given no width"):
        dynsim.validate_simulation(custom, data, init=Gaussian(width_exponent=0.5), dynamics=GF)


def test_custom_without_conserved_says_so(data):
    net = TwoLayerNet(D, M, "relu")
    custom = Custom(net.apply, net.param_shapes())
    res = _run(custom, data, Gaussian(), GD, seeds=2)
    with pytest.raises(ValueError, match="conserved: Custom was given no `conserved`"):
        conserved_drift(res)
    before = _simulate.TRACE_COUNT["chunk"]
    with pytest.raises(ValueError, match="^conserved: Custom was given no `conserved`"):
        _run(custom, data, Gaussian(), GD, seeds=2, save_conserved=True)
    with pytest.raises(ValueError, match="^conserved: Custom was given no `conserved`"):
        dynsim.validate_simulation(custom, data, init=Gaussian(), dynamics=GD,
                                   save_conserved=True)
    assert _simulate.TRACE_COUNT["chunk"] == before  # both before compiling


# --- Equinox ------------------------------------------------------------------------

def _make(key):
    return eqx.nn.MLP(D, "scalar", M, 2, activation=jnp.tanh, key=key)


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "vmap"])
def test_equinox_mlp_trains(data, batched):
    model = Equinox(_make)
    res = _run(model, data, Module(), GradientFlow(t1=4.0, batched=batched), seeds=3)
    assert np.all(res.ok())
    assert np.all(res.loss[:, -1] < 0.5 * res.loss[:, 0])
    # the trained parameters are the module's floating leaves, a module of its type
    assert isinstance(res.params, eqx.nn.MLP)
    final = model.network(jax.tree.map(lambda x: jnp.asarray(x[0]), res.params))
    pred = jax.vmap(final)(data[0])
    loss = SquaredLoss()(pred, data[1])
    np.testing.assert_allclose(loss, res.loss[0, -1], rtol=1e-12)


def test_module_init_is_make(data):
    model = Equinox(_make)
    key = jax.random.key(0)
    res = _run(model, data, Module(), GradientDescent(learning_rate=0.1, steps=1), seeds=3)
    for i in range(3):
        k_init = _simulate._seed_keys(key, i)[0]
        want = eqx.filter(_make(k_init), is_trained)
        got = jax.tree.map(lambda x: x[i], res.params0)
        assert jax.tree.structure(got) == jax.tree.structure(want)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_array_equal(g, w)


def test_equinox_gaussian_and_orthogonal(data):
    model = Equinox(_make)
    assert len(model.layers) == 6  # three Linear layers: weight and bias each
    for init in (Gaussian(0.5), Orthogonal()):
        dynsim.validate_simulation(model, data, init=init, dynamics=GF)  # nothing compiles
        params = init(model, Dataset(*data), jax.random.key(4))
        shapes = [jnp.shape(x) for x in jax.tree.leaves(params)]
        assert shapes == [(M, D), (M,), (M, M), (M,), (1, M), (1,)]
        loss = SquaredLoss()(model.apply(params, data[0]), data[1])
        assert jnp.isfinite(loss)


# --- callable activations -----------------------------------------------------------

def test_relu_callable_declared_homogeneous_equals_string(data):
    ref = _run(TwoLayerNet(D, M, "relu"), data, Gaussian(), GD, save_conserved=True)
    declared = TwoLayerNet(D, M, Activation(jax.nn.relu, homogeneous=True))
    got = _run(declared, data, Gaussian(), GD, save_conserved=True)
    np.testing.assert_array_equal(got.loss, ref.loss)
    for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(ref.params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.conserved["balance"], ref.conserved["balance"])
    assert homogeneity_degree(declared) == 2
    # not declared: the same function, the same run, but no conserved quantities
    plain = TwoLayerNet(D, M, jax.nn.relu)
    res = _run(plain, data, Gaussian(), GD, save_conserved=True)
    np.testing.assert_array_equal(res.loss, ref.loss)
    assert res.conserved == {}
    with pytest.raises(ValueError, match="not positively homogeneous"):
        homogeneity_degree(plain)


def test_homogeneous_net_declared_callable(data):
    ref = _run(HomogeneousNet(D, [M, 4]), data, Gaussian(0.7), GD, save_conserved=True)
    net = HomogeneousNet(D, [M, 4], activation=Activation(jax.nn.relu, homogeneous=True))
    got = _run(net, data, Gaussian(0.7), GD, save_conserved=True)
    np.testing.assert_array_equal(got.loss, ref.loss)
    np.testing.assert_array_equal(got.conserved["neuron_balance1"],
                                  ref.conserved["neuron_balance1"])
    with pytest.raises(ValueError, match="activation: HomogeneousNet needs"):
        HomogeneousNet(D, [M], activation=jax.nn.relu)  # not declared
    with pytest.raises(ValueError, match="activation: HomogeneousNet needs"):
        HomogeneousNet(D, [M], activation="tanh")


def test_tanh_callable_equals_string(data):
    ref = _run(TwoLayerNet(D, M, "tanh"), data, Gaussian())
    got = _run(TwoLayerNet(D, M, jnp.tanh), data, Gaussian())
    np.testing.assert_array_equal(got.num_steps, ref.num_steps)
    assert _max_diff(got.loss, ref.loss) < ROUNDING
    assert _max_diff(got.params, ref.params) < ROUNDING
    one_seed = jax.tree.map(lambda x: jnp.asarray(x[0]), got.params)
    assert TwoLayerNet(D, M, jnp.tanh).conserved(one_seed) == {}


def test_gelu_pullback_and_training(data):
    net = TwoLayerNet(D, M, jax.nn.gelu, output_bias=True)
    X, y = data
    problem = Problem(net, SquaredLoss(), X, y)
    params = net.gaussian(jax.random.key(5), 1.0)
    value, grad = problem.value_and_grad(params)  # the hand-written pullback, σ′ by JAX
    want_value, want_grad = jax.value_and_grad(problem.value)(params)
    np.testing.assert_allclose(value, want_value, rtol=1e-13)
    assert _max_diff(grad, want_grad) < 1e-12 * max(
        float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(want_grad))
    res = _run(net, data, Gaussian())
    assert np.all(res.ok()) and np.all(res.loss[:, -1] < res.loss[:, 0])


# --- bad input: a ValueError naming the argument, before anything compiles -----------

BAD_MODELS = {
    "apply-output-shape": (lambda: Custom(lambda p, X: X @ p["w"], {"w": jnp.ones((D, 2))}),
                           "apply: predictions for X"),
    "apply-fails": (lambda: Custom(lambda p, X: p["v"] @ X.T, {"w": jnp.ones(D)}),
                    "apply: calling it"),
    "make-output-shape": (lambda: Equinox(lambda k: eqx.nn.MLP(D, 2, M, 1, key=k)),
                          "make: predictions for X"),
    "activation-not-elementwise": (lambda: TwoLayerNet(D, M, lambda z: jnp.sum(z, axis=0)),
                                   "activation: .* must act elementwise"),
    "activation-fails": (lambda: TwoLayerNet(D, M, lambda z: z @ jnp.ones((2, 2))),
                         "activation: calling"),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_model_raises_before_compiling(data, case, without_runtime_typecheck):
    build, message = BAD_MODELS[case]
    model = build()
    before = _simulate.TRACE_COUNT["chunk"]
    with pytest.raises(ValueError, match=message):
        _run(model, data, Gaussian())
    assert _simulate.TRACE_COUNT["chunk"] == before


class _NoArrays(eqx.Module):
    size: int = 3

    def __call__(self, x):
        return jnp.sum(x)


BAD_CONSTRUCTORS = {
    "apply-not-callable": (lambda: Custom("f", {"w": jnp.ones(D)}), "apply: expected a callable"),
    "params-like-int": (lambda: Custom(lambda p, X: X @ p["w"], {"w": jnp.ones(D, int)}),
                        "params_like: trained parameters must be real floating"),
    "params-like-empty": (lambda: Custom(lambda p, X: X[:, 0], {}), "params_like: expected"),
    "make-not-callable": (lambda: Equinox(eqx.nn.MLP), "make: calling make"),
    "make-returns-array": (lambda: Equinox(lambda k: jax.random.normal(k, (3,))),
                           "make: must return an eqx.Module"),
    "make-without-arrays": (lambda: Equinox(lambda k: _NoArrays()),
                            "make: _NoArrays has no floating array leaves"),
    "make-fails": (lambda: Equinox(lambda k: 1 / 0), "make: calling make"),
    "activation-not-callable": (lambda: TwoLayerNet(D, M, 3.0), "activation: expected one of"),
    "activation-unknown-name": (lambda: TwoLayerNet(D, M, "gelu"), "activation: unknown"),
    "activation-type": (lambda: Activation(3.0), "activation: Activation needs a callable"),
    "homogeneous-flag": (lambda: Activation(jnp.tanh, homogeneous="yes"), "homogeneous:"),
    "conserved-not-callable": (lambda: Custom(lambda p, X: X @ p["w"], {"w": jnp.ones(D)},
                                              conserved=1), "conserved: expected a callable"),
}


@pytest.mark.parametrize("case", list(BAD_CONSTRUCTORS))
def test_bad_constructor_arguments(case, without_runtime_typecheck):
    build, message = BAD_CONSTRUCTORS[case]
    before = _simulate.TRACE_COUNT["chunk"]
    with pytest.raises(ValueError, match=message):
        build()
    assert _simulate.TRACE_COUNT["chunk"] == before


def test_module_init_needs_equinox(data, without_runtime_typecheck):
    with pytest.raises(ValueError, match="init: Module initializes dynsim.models.Equinox"):
        _run(TwoLayerNet(D, M), data, Module())
