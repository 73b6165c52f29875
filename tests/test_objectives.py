"""Whole objectives: Objective(fn), the teacher–student population loss (TwoLayerNet and
eqx.nn.MLP students), Regularized."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import dynsim
from dynsim import _simulate
from dynsim._problem import Problem
from dynsim.losses import Objective, Regularized, SquaredLoss, TeacherStudentPopulation
from dynsim.models import Equinox, LinearNet, TwoLayerNet

D, M, K = 3, 3, 2
N_MC, CHUNK = 10**6, 10**5


def _teacher(activation):
    net = TwoLayerNet(D, K, activation, bias=False, scaling="standard")
    return net, net.gaussian(jax.random.key(11), 1.0)


def _student_params(case, student, teacher_params):
    p = student.gaussian(jax.random.key(12), 1.0)
    if case == "parallel":
        # w_0 ∥ w*_0 (θ = 0), w_1 = −w*_1 (θ = π), w_2 = 0.5 w_0 (two student neurons
        # parallel to each other): the boundary angles of the arc-cosine kernel
        wt = teacher_params["w"]
        p["w"] = jnp.stack([1.7 * wt[0], -0.6 * wt[1], 0.85 * wt[0]])
    return p


def _mc_value_and_grad(student, params, teacher, tp):
    """Mean and standard error of ½(f − f*)² and of its gradient over 10⁶ x ~ N(0, I)."""

    def one(p, x):
        r = student.apply(p, x[None]).reshape(()) - teacher.apply(tp, x[None]).reshape(())
        return 0.5 * r * r

    @jax.jit
    def moments(key):
        x = jax.random.normal(key, (CHUNK, D))
        vals, grads = jax.vmap(jax.value_and_grad(one), in_axes=(None, 0))(params, x)
        g = jax.vmap(lambda t: ravel_pytree(t)[0])(grads)
        s = jnp.concatenate([vals[:, None], g], axis=1)
        return jnp.sum(s, axis=0), jnp.sum(s * s, axis=0)

    total, total_sq = 0.0, 0.0
    for c in range(N_MC // CHUNK):
        s1, s2 = moments(jax.random.fold_in(jax.random.key(99), c))
        total, total_sq = total + np.asarray(s1), total_sq + np.asarray(s2)
    mean = total / N_MC
    var = total_sq / N_MC - mean**2
    return mean, np.sqrt(var / N_MC)


@pytest.mark.parametrize("case", ["random", "parallel"])
@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_population_loss_and_gradient_match_monte_carlo(activation, case):
    """Closed form vs a Monte-Carlo estimate from 10⁶ Gaussian inputs: the value and
    every gradient entry agree within 4.5 standard errors of the MC mean (the standard
    errors estimated from the same samples), at random student weights and at student
    neurons parallel or antiparallel to teacher neurons (θ = 0 and π)."""
    teacher, tp = _teacher(activation)
    student = TwoLayerNet(D, M, activation, bias=False)  # ntk scaling s = 1/√m
    params = _student_params(case, student, tp)
    loss = TeacherStudentPopulation((teacher, tp), activation)
    value, grads = jax.value_and_grad(lambda p: loss(student, p))(params)
    closed = np.concatenate([[float(value)], np.asarray(ravel_pytree(grads)[0])])
    assert np.all(np.isfinite(closed))
    mean, se = _mc_value_and_grad(student, params, teacher, tp)
    z = np.abs(closed - mean) / se
    assert np.all(z < 4.5), (closed, mean, se, z)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_population_loss_is_zero_at_the_teacher(activation):
    """Student = teacher (and a wider student with the extra neuron switched off): L = 0
    and ∇L = 0 to rounding, through the student's ntk scaling."""
    teacher, tp = _teacher(activation)
    loss = TeacherStudentPopulation((teacher, tp), activation)
    student = TwoLayerNet(D, K + 1, activation, bias=False)
    s = student.scale
    params = {
        "w": jnp.concatenate([tp["w"], jnp.ones((1, D))]),
        "a": jnp.concatenate([tp["a"] / s, jnp.zeros(1)]),
    }
    value, grads = jax.value_and_grad(lambda p: loss(student, p))(params)
    assert abs(float(value)) < 1e-13
    assert float(jnp.max(jnp.abs(ravel_pytree(grads)[0]))) < 1e-12
    same = TeacherStudentPopulation({"w": tp["w"], "a": tp["a"]}, activation)
    assert abs(float(same(teacher, tp))) < 1e-13


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_population_hessian_matches_finite_differences(activation):
    """Second derivatives (what a sharpness metric needs) through the kernel's jvp rule:
    the Hessian is finite, symmetric and equals central differences of the gradient.
    The diagonal κ(w_j, w_j), where θ = 0 always, must not make it NaN."""
    teacher, tp = _teacher(activation)
    student = TwoLayerNet(D, M, activation, bias=False)
    loss = TeacherStudentPopulation((teacher, tp), activation)
    x0, unravel = ravel_pytree(student.gaussian(jax.random.key(12), 1.0))
    f = lambda x: loss(student, unravel(x))
    H = np.asarray(jax.hessian(f)(x0))
    g = jax.jit(jax.grad(f))
    eps = 1e-5
    fd = np.stack([(g(x0 + eps * e) - g(x0 - eps * e)) / (2 * eps) for e in np.eye(x0.size)])
    assert np.all(np.isfinite(H))
    np.testing.assert_allclose(H, H.T, atol=1e-14)
    np.testing.assert_allclose(H, fd, atol=1e-8)


def test_population_relu_gradient_at_zero_neuron_is_finite():
    """A student neuron w_j = 0 (e.g. a zero init): κ = 0 and a finite gradient."""
    teacher, tp = _teacher("relu")
    loss = TeacherStudentPopulation((teacher, tp), "relu")
    student = TwoLayerNet(D, M, "relu", bias=False)
    params = student.gaussian(jax.random.key(3), 1.0)
    params["w"] = params["w"].at[0].set(0.0)
    value, grads = jax.value_and_grad(lambda p: loss(student, p))(params)
    assert np.isfinite(float(value)) and np.all(np.isfinite(ravel_pytree(grads)[0]))
    assert float(grads["a"][0]) == 0.0  # κ(0, ·) = 0


def test_population_loss_trains_under_simulate():
    """GF on the population loss (data only set shapes and give the test split):
    the loss decreases; the test risk is ½ mean (f − f*)² on teacher data."""
    teacher, tp = _teacher("relu")
    data = dynsim.data.teacher_student(jax.random.key(0), 8, teacher, tp, n_test=50_000)
    student = TwoLayerNet(D, 4, "relu", bias=False)
    loss = TeacherStudentPopulation((teacher, tp), "relu")
    res = dynsim.simulate(
        student, data, init=dynsim.init.Gaussian(1.0), dynamics=dynsim.GradientFlow(t1=20.0),
        seeds=2, key=jax.random.key(1), loss=loss,
    )
    assert np.all(res.status == dynsim.Status.REACHED_END)
    assert np.all(res.loss[:, -1] < res.loss[:, 0])
    final = jax.vmap(lambda p: loss(student, p))(jax.tree.map(jnp.asarray, res.params))
    risk = dynsim.analysis.test_risk(res)
    np.testing.assert_allclose(risk, final, rtol=0.05)


def _regression():
    return dynsim.data.regression(jax.random.key(5), 12, 5, noise=0.3)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_regularized_gradient_flow_converges_to_ridge(reduction):
    """GF on ½Σ(βᵀx_i − y_i)² + λ‖β‖² converges to β = (XᵀX + 2λI)⁻¹Xᵀy; with the mean
    loss 1/(2n)Σ(…)² + λ‖β‖² to (XᵀX + 2nλI)⁻¹Xᵀy. To 1e-6."""
    data = _regression()
    X, y = np.asarray(data.X), np.asarray(data.y)
    n, d = X.shape
    lam = 0.05
    model = LinearNet(d, [])
    loss = Regularized(SquaredLoss(reduction=reduction), l2=lam)
    res = dynsim.simulate(
        model, data, init=dynsim.init.Gaussian(1.0),
        dynamics=dynsim.GradientFlow(t1=400.0, rtol=1e-10, atol=1e-12),
        seeds=3, key=jax.random.key(2), loss=loss,
    )
    shift = 2 * lam * (1 if reduction == "sum" else n)
    ridge = np.linalg.solve(X.T @ X + shift * np.eye(d), X.T @ y)
    beta = np.asarray(jax.vmap(model.predictor)(jax.tree.map(jnp.asarray, res.params)))
    np.testing.assert_allclose(beta, np.broadcast_to(ridge, beta.shape), atol=1e-6, rtol=0)


def test_regularized_gradient_is_the_derivative_and_skips_frozen_layers():
    """The pullback gradient + 2λθ equals autodiff of base + λ‖θ‖²; with
    TwoLayerNet(train_outer=False) the outer weights are neither penalized nor moved."""
    data = dynsim.data.regression(jax.random.key(6), 7, 4)
    for train_outer in (True, False):
        model = TwoLayerNet(4, 5, "tanh", train_outer=train_outer)
        params = model.gaussian(jax.random.key(7), 1.0)
        loss = Regularized("squared", l2=0.3)
        problem = Problem(model, loss, data.X, data.y)
        value, grads = problem.value_and_grad(params)

        def total(p):
            sq = sum(jnp.sum(p[k] ** 2) for k in p if train_outer or k not in ("a", "c"))
            return SquaredLoss()(model.apply(p, data.X), data.y) + 0.3 * sq

        want_v, want_g = jax.value_and_grad(total)(params)
        np.testing.assert_allclose(value, want_v, rtol=1e-13)
        for k in params:
            np.testing.assert_allclose(grads[k], want_g[k], rtol=1e-12, atol=1e-14)
        if not train_outer:
            assert float(jnp.max(jnp.abs(grads["a"]))) == 0.0


def _squared_objective(model, params, data):
    r = model.apply(params, data.X) - data.y
    return 0.5 * jnp.sum(r * r)


@pytest.mark.parametrize(
    "dynamics",
    [
        dynsim.GradientFlow(t1=2.0),
        dynsim.GradientDescent(learning_rate=0.02, steps=200),
        dynsim.GradientDescent(learning_rate=0.02, steps=200, batch_size=4),
    ],
    ids=["gf", "gd", "sgd"],
)
def test_objective_equal_to_a_builtin_loss_gives_the_same_trajectories(dynamics):
    """Objective(½Σ(f − y)², reduction='sum') vs the built-in squared loss: the same
    losses and parameters to rounding (autodiff vs the model's pullback), same statuses
    and step counts, on GF, GD and SGD (the same minibatches)."""
    data = dynsim.data.regression(jax.random.key(8), 10, 3)
    model = TwoLayerNet(3, 6, "tanh")
    kw = dict(init=dynsim.init.Gaussian(0.8), dynamics=dynamics, seeds=3, key=jax.random.key(4))
    a = dynsim.simulate(model, data, loss="squared", **kw)
    b = dynsim.simulate(model, data, loss=Objective(_squared_objective, reduction="sum"), **kw)
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.num_steps, b.num_steps)
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-10, atol=1e-13)
    for k in a.params:
        np.testing.assert_allclose(b.params[k], a.params[k], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "loss",
    [
        Objective(_squared_objective),
        TeacherStudentPopulation({"w": jnp.ones((2, 3)), "a": jnp.ones(2)}, "relu"),
        Regularized(Objective(_squared_objective), l2=0.1),
    ],
    ids=["objective", "population", "regularized-objective"],
)
def test_sgd_refuses_an_objective_that_is_no_sample_sum(loss, without_runtime_typecheck):
    data = dynsim.data.regression(jax.random.key(8), 10, 3)
    model = TwoLayerNet(3, 4, "relu", bias=False)
    before = _simulate.TRACE_COUNT["chunk"]
    with pytest.raises(ValueError, match=r"^batch_size: .*loss"):
        dynsim.simulate(
            model, data, init=dynsim.init.Gaussian(1.0),
            dynamics=dynsim.GradientDescent(learning_rate=0.1, steps=5, batch_size=3),
            seeds=1, key=jax.random.key(0), loss=loss,
        )
    assert _simulate.TRACE_COUNT["chunk"] == before
    # the same objective trains full-batch, and a declared sum trains under SGD
    dynsim.validate_simulation(
        model, data, init=dynsim.init.Gaussian(1.0),
        dynamics=dynsim.GradientDescent(learning_rate=0.1, steps=5), loss=loss,
    )
    dynsim.validate_simulation(
        model, data, init=dynsim.init.Gaussian(1.0),
        dynamics=dynsim.GradientDescent(learning_rate=0.1, steps=5, batch_size=3),
        loss=Regularized(Objective(_squared_objective, reduction="sum"), l2=0.1),
    )


def _raises(message):
    def fn(model, params, data):
        raise TypeError(message)

    return fn


@pytest.mark.parametrize(
    "loss, model",
    [
        (Objective(lambda m, p, d: m.apply(p, d.X)), TwoLayerNet(3, 4)),
        (Objective(lambda m, p, d: jnp.sum(p["a"] > 0)), TwoLayerNet(3, 4)),
        (Objective(_raises("boom")), TwoLayerNet(3, 4)),
        (TeacherStudentPopulation({"w": jnp.ones((2, 3)), "a": jnp.ones(2)}), TwoLayerNet(3, 4)),
        (TeacherStudentPopulation({"w": jnp.ones((2, 3)), "a": jnp.ones(2)}),
         TwoLayerNet(3, 4, "tanh", bias=False)),
        (TeacherStudentPopulation({"w": jnp.ones((2, 5)), "a": jnp.ones(2)}),
         TwoLayerNet(3, 4, bias=False)),
        (TeacherStudentPopulation({"w": jnp.ones((2, 3)), "a": jnp.ones(2)}), LinearNet(3, [])),
        (Regularized(Objective(lambda m, p, d: p["a"]), l2=0.1), TwoLayerNet(3, 4)),
    ],
    ids=[
        "vector", "integer", "raises", "biased-student", "activation", "dimension",
        "not-two-layer", "regularized-vector",
    ],
)
def test_bad_objective_is_named_before_compiling(loss, model, without_runtime_typecheck):
    data = dynsim.data.regression(jax.random.key(8), 10, 3)
    before = _simulate.TRACE_COUNT["chunk"]
    with pytest.raises(ValueError, match=r"^loss: "):
        dynsim.simulate(
            model, data, init=dynsim.init.Gaussian(1.0), dynamics=dynsim.GradientFlow(t1=1.0),
            seeds=1, key=jax.random.key(0), loss=loss,
        )
    assert _simulate.TRACE_COUNT["chunk"] == before


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: Objective("not callable"), "loss"),
        (lambda: Objective(_squared_objective, reduction="median"), "reduction"),
        (lambda: Regularized("squared", l2=-1.0), "l2"),
        (lambda: Regularized("squared", l2=float("nan")), "l2"),
        (lambda: Regularized("squared", l2="0.1"), "l2"),
        (lambda: TeacherStudentPopulation({"w": jnp.ones((2, 3))}), "teacher"),
        (lambda: TeacherStudentPopulation({"w": jnp.ones((2, 3)), "a": jnp.ones(3)}), "teacher"),
        (lambda: TeacherStudentPopulation({"w": jnp.ones((2, 3)), "a": jnp.ones(2)}, "tanh"),
         "activation"),
    ],
)
def test_bad_objective_arguments(make, name, without_runtime_typecheck):
    with pytest.raises(ValueError, match=rf"^{name}: "):
        make()


def _mean_objective(model, params, data):
    r = model.apply(params, data.X) - data.y
    return 0.5 * jnp.mean(r * r)


@pytest.mark.parametrize(
    "loss",
    [
        Objective(_squared_objective, reduction="sum"),
        Objective(_mean_objective, reduction="mean"),
        Regularized(SquaredLoss(reduction="mean"), l2=0.2),
        Regularized(Objective(_squared_objective, reduction="sum"), l2=0.2),
    ],
    ids=["objective-sum", "objective-mean", "regularized-loss", "regularized-objective"],
)
def test_minibatch_estimate_of_an_objective_is_unbiased(loss):
    """Averaged over all C(7, 3) minibatches, the estimate and its gradient equal the
    full objective and gradient (the penalty is the same on every batch)."""
    import itertools

    data = dynsim.data.regression(jax.random.key(9), 7, 4)
    model = TwoLayerNet(4, 3, "tanh")
    params = model.gaussian(jax.random.key(10), 1.0)
    problem = Problem(model, loss, data.X, data.y)
    full_v, full_g = problem.value_and_grad(params)
    batches = jnp.asarray(list(itertools.combinations(range(7), 3)))
    vs, gs = jax.vmap(lambda b: problem.value_and_grad(params, b))(batches)
    np.testing.assert_allclose(jnp.mean(vs), full_v, rtol=1e-12)
    np.testing.assert_allclose(jnp.mean(vs), problem.value(params), rtol=1e-12)
    for k in params:
        np.testing.assert_allclose(jnp.mean(gs[k], axis=0), full_g[k], rtol=1e-10, atol=1e-13)


# --- an eqx.nn.MLP student (and teacher) ----------------------------------------------

_SIGMA = {"relu": jax.nn.relu, "erf": jax.scipy.special.erf}


def _mlp(activation, width=M, *, out="scalar", key=12, **kw):
    kw = {"use_bias": False, "use_final_bias": False, **kw}
    return eqx.nn.MLP(D, out, width, 1, activation=_SIGMA.get(activation, activation),
                      key=jax.random.key(key), **kw)


def _as_mlp_params(module, p):
    """The MLP's trained leaves with hidden weights p["w"] (m, d) and output weights
    p["a"] (m,)."""
    module = eqx.tree_at(lambda n: (n.layers[0].weight, n.layers[1].weight), module,
                         (p["w"], p["a"].reshape(1, -1)))
    return eqx.filter(module, eqx.is_inexact_array)


@pytest.mark.parametrize("case", ["random", "parallel"])
@pytest.mark.parametrize("out", ["scalar", 1])
@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_population_loss_of_an_mlp_student_equals_the_two_layer_net(activation, out, case):
    """Equinox(eqx.nn.MLP(depth=1, no biases)) with W, a set to a TwoLayerNet's
    (scaling "standard", so f = Σ_j a_j σ(w_jᵀx) for both): the same loss and gradient
    to 1e-12 in float64 (the same closed form on the same numbers, only the reading of
    the weights differs), at random weights and at the boundary angles θ = 0, π."""
    teacher, tp = _teacher(activation)
    loss = TeacherStudentPopulation((teacher, tp), activation)
    net = TwoLayerNet(D, M, activation, bias=False, scaling="standard")
    p = _student_params(case, net, tp)
    module = _mlp(activation, out=out)
    model = Equinox(lambda key: _mlp(activation, out=out))
    q = _as_mlp_params(module, p)
    v_net, g_net = jax.value_and_grad(lambda p: loss(net, p))(p)
    v_mlp, g_mlp = jax.value_and_grad(lambda q: loss(model, q))(q)
    np.testing.assert_allclose(v_mlp, v_net, rtol=1e-12, atol=0)
    np.testing.assert_allclose(g_mlp.layers[0].weight, g_net["w"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g_mlp.layers[1].weight.reshape(-1), g_net["a"], rtol=1e-12,
                               atol=1e-14)
    # an MLP teacher, alone or as (Equinox, params), is the same teacher as {"w", "a"}
    t_mod = eqx.tree_at(lambda n: (n.layers[0].weight, n.layers[1].weight),
                        _mlp(activation, K, out=out), (tp["w"], tp["a"].reshape(1, -1)))
    for t in (t_mod, (Equinox(lambda key: t_mod), eqx.filter(t_mod, eqx.is_inexact_array))):
        same = TeacherStudentPopulation(t, activation)
        np.testing.assert_allclose(same(model, q), v_net, rtol=1e-12, atol=0)


@pytest.mark.parametrize("activation, out", [("relu", "scalar"), ("erf", 1)])
def test_population_loss_of_an_mlp_student_matches_monte_carlo(activation, out):
    """The MLP student's closed-form loss and gradient against 10⁶ Gaussian inputs through
    the module itself (`Equinox.apply`, vmapped `eqx.nn.MLP`), within 4.5 standard
    errors as for the TwoLayerNet student: checks the reading of W and a from the module
    independently of the TwoLayerNet path."""
    teacher, tp = _teacher(activation)
    model = Equinox(lambda key: _mlp(activation, out=out))
    params = eqx.filter(_mlp(activation, out=out, key=13), eqx.is_inexact_array)
    loss = TeacherStudentPopulation((teacher, tp), activation)
    value, grads = jax.value_and_grad(lambda p: loss(model, p))(params)
    closed = np.concatenate([[float(value)], np.asarray(ravel_pytree(grads)[0])])
    mean, se = _mc_value_and_grad(model, params, teacher, tp)
    z = np.abs(closed - mean) / se
    assert np.all(z < 4.5), (closed, mean, se, z)


class _NotMLP(eqx.Module):
    lin: eqx.nn.Linear

    def __init__(self, key):
        self.lin = eqx.nn.Linear(D, "scalar", use_bias=False, key=key)

    def __call__(self, x):
        return self.lin(jax.nn.relu(x))


_BAD_MODULES = {
    "hidden-bias": (lambda: _mlp("relu", use_bias=True), "use_bias=True"),
    "output-bias": (lambda: _mlp("relu", use_final_bias=True), "use_final_bias=True"),
    "depth-2": (lambda: eqx.nn.MLP(D, "scalar", M, 2, activation=jax.nn.relu, use_bias=False,
                                   use_final_bias=False, key=jax.random.key(0)), "depth=2"),
    "scan": (lambda: _mlp("relu", scan=True), "scan=False"),
    "tanh": (lambda: _mlp(jnp.tanh), "activation is"),
    "wrapped-relu": (lambda: _mlp(lambda z: jax.nn.relu(z)), "activation is"),
    "erf-for-relu": (lambda: _mlp("erf"), "activation is"),
    "final-activation": (lambda: _mlp("relu", final_activation=jnp.tanh), "final activation"),
    "not-an-mlp": (lambda: _NotMLP(jax.random.key(0)), "is a _NotMLP"),
    "input-dimension": (lambda: eqx.nn.MLP(D + 1, "scalar", M, 1, activation=jax.nn.relu,
                                           use_bias=False, use_final_bias=False,
                                           key=jax.random.key(0)), "input dimension"),
}


@pytest.mark.parametrize("name", list(_BAD_MODULES))
def test_bad_mlp_student_is_named_before_compiling(name, without_runtime_typecheck):
    """Modules the closed form does not describe are refused at `simulate`, naming `loss`
    and the offending setting, before anything compiles."""
    build, message = _BAD_MODULES[name]
    module = build()
    data = dynsim.data.regression(jax.random.key(8), 10, module.layers[0].weight.shape[1]
                                  if hasattr(module, "layers") else D)
    loss = TeacherStudentPopulation({"w": jnp.ones((2, D)), "a": jnp.ones(2)}, "relu")
    before = _simulate.TRACE_COUNT["chunk"]
    with pytest.raises(ValueError, match=rf"^loss: .*{message}"):
        dynsim.simulate(
            Equinox(lambda key: build()), data, init=dynsim.init.Module(),
            dynamics=dynsim.GradientFlow(t1=1.0), seeds=1, key=jax.random.key(0), loss=loss,
        )
    assert _simulate.TRACE_COUNT["chunk"] == before


def test_bad_mlp_output_and_teacher_modules(without_runtime_typecheck):
    """An output of size 2 (checked on the model, whose predictions then fit (n, 2)
    targets), and bad teacher modules, which are named `teacher`."""
    two = Equinox(lambda key: _mlp("relu", out=2))
    loss = TeacherStudentPopulation({"w": jnp.ones((2, D)), "a": jnp.ones(2)}, "relu")
    with pytest.raises(ValueError, match=r"^loss: .*out_size=2"):
        loss.check_model(two)
    with pytest.raises(ValueError, match=r"^teacher: .*use_bias=True"):
        TeacherStudentPopulation(_mlp("relu", K, use_bias=True), "relu")
    with pytest.raises(ValueError, match=r"^teacher: .*activation is"):
        TeacherStudentPopulation(_mlp("erf", K), "relu")
    with pytest.raises(ValueError, match=r"^teacher: .*is a _NotMLP"):
        net = Equinox(_NotMLP)
        TeacherStudentPopulation((net, net.gaussian(jax.random.key(0), 1.0)), "relu")
