"""Bad input: a ValueError naming the argument, raised before anything compiles."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim
from dynsim import _simulate
from dynsim.models import DiagonalNet, LinearNet, TwoLayerNet

KEY = jax.random.key(0)
# These tests pass wrongly typed values on purpose and assert dynsim's own errors.
pytestmark = pytest.mark.usefixtures("without_runtime_typecheck")


@pytest.fixture
def data():
    return dynsim.data.regression(KEY, 5, 4)


@pytest.fixture(autouse=True)
def no_compilation():
    before = _simulate.TRACE_COUNT["chunk"]
    yield
    assert _simulate.TRACE_COUNT["chunk"] == before, "validation must fail before tracing"


def _simulate_with(data, **kw):
    args = dict(
        model=LinearNet(4, [3]), data=data, init=dynsim.init.Gaussian(0.1),
        dynamics=dynsim.GradientFlow(t1=1.0), seeds=2, key=KEY,
    )
    args.update(kw)
    model = args.pop("model")
    d = args.pop("data")
    return dynsim.simulate(model, d, **args)


def test_shape_mismatch_names_data(data):
    with pytest.raises(ValueError, match=r"^data: X must have shape \(n, 7\)"):
        _simulate_with(data, model=LinearNet(7, [3]))
    with pytest.raises(ValueError, match=r"^data: y must have shape \(5, 2\)"):
        _simulate_with(data, model=LinearNet(4, [3], 2))
    with pytest.raises(ValueError, match=r"^data: y must have leading dimension"):
        dynsim.data.Dataset(jnp.ones((5, 4)), jnp.ones(3))


def test_non_finite_data(data):
    bad = dynsim.data.Dataset(data.X.at[0, 0].set(jnp.nan), data.y)
    with pytest.raises(ValueError, match=r"^data: X contains non-finite"):
        _simulate_with(bad)
    bad = dynsim.data.Dataset(data.X, data.y.at[1].set(jnp.inf))
    with pytest.raises(ValueError, match=r"^data: y contains non-finite"):
        _simulate_with(bad)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"rtol": -1e-6}, "rtol"),
        ({"rtol": 0.0}, "rtol"),
        ({"atol": -1.0}, "atol"),
        ({"t1": 0.0}, "t1"),
        ({"t1": -5.0}, "t1"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_steps": 2.5}, "max_steps"),
        ({"max_steps": 2**31}, "max_steps"),  # int32 step counters: once integrated nothing
        ({"n_save": 0}, "n_save"),
        ({"n_save": True}, "n_save"),
        ({"stop_loss": -1.0}, "stop_loss"),
        ({"ts": [0.0, 2.0, 1.0]}, "ts"),
        ({"ts": [0.0, 5.0], "t1": 1.0}, "ts"),
        ({"solver": "tsit5"}, "solver"),
        ({"solver": diffrax.Euler()}, "dt0"),
        ({"block_size": 0}, "block_size"),
        ({"block_size": "big"}, "block_size"),
        ({"block_size": 2.5}, "block_size"),
    ],
)
def test_bad_gradient_flow_options(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        dynsim.GradientFlow(**{"t1": 1.0, **kwargs})


@pytest.mark.parametrize(
    "kwargs,name",
    [({"learning_rate": 0.0}, "learning_rate"), ({"learning_rate": -0.1}, "learning_rate"),
     ({"learning_rate": 0.1, "steps": 0}, "steps"), ({"learning_rate": 0.1, "batch_size": 0}, "batch_size"),
     ({"learning_rate": 0.1, "steps": 10, "save_steps": [0, 20]}, "save_steps"),
     ({"learning_rate": 0.1, "steps": 2.5}, "steps"), ({"learning_rate": 0.1, "steps": 2**31}, "steps"),
     ({"learning_rate": 0.1, "n_save": 0}, "n_save"), ({"learning_rate": 0.1, "batch_size": 1.5}, "batch_size")],
)
def test_bad_gradient_descent_options(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        dynsim.GradientDescent(**kwargs)


@pytest.mark.parametrize("seeds", [0, -3, 2.5, True, "10"])
def test_bad_seeds(data, seeds):
    with pytest.raises(ValueError, match=r"^seeds:"):
        _simulate_with(data, seeds=seeds)


def test_bad_chunk_size_and_key(data):
    with pytest.raises(ValueError, match=r"^chunk_size:"):
        _simulate_with(data, chunk_size=0)
    with pytest.raises(ValueError, match=r"^key:"):
        _simulate_with(data, key=42)


def test_unknown_activation_loss_parametrization(data):
    with pytest.raises(ValueError, match=r"^activation: unknown activation 'swish'"):
        TwoLayerNet(4, 3, "swish")
    with pytest.raises(ValueError, match=r"^loss: unknown loss 'hinge'"):
        _simulate_with(data, loss="hinge")
    with pytest.raises(ValueError, match=r"^parametrization:"):
        DiagonalNet(4, "u+v")
    with pytest.raises(ValueError, match=r"^scaling:"):
        TwoLayerNet(4, 3, scaling="xavier")


def test_classification_loss_needs_labels(data):
    with pytest.raises(ValueError, match=r"^data: LogisticLoss needs labels"):
        _simulate_with(data, model=LinearNet(4), loss="logistic")
    with pytest.raises(ValueError, match=r"^loss: ExponentialLoss needs a scalar-output"):
        _simulate_with(dynsim.data.regression(KEY, 5, 4, out_dim=2), model=LinearNet(4, [], 2), loss="exponential")


def test_bad_init(data):
    with pytest.raises(ValueError, match=r"^init: produced parameters"):
        _simulate_with(data, init=lambda key: {"W": (jnp.zeros((3, 4)),)})
    with pytest.raises(ValueError, match=r"^init: Constant applies to DiagonalNet"):
        _simulate_with(data, init=dynsim.init.Constant(0.1))
    with pytest.raises(ValueError, match=r"^init: expected an AbstractInit"):
        _simulate_with(data, init=3.0)
    with pytest.raises(ValueError, match=r"^std: expected one value per layer"):
        _simulate_with(data, init=dynsim.init.Gaussian([0.1, 0.2, 0.3]))


def test_bad_model_and_dynamics(data):
    with pytest.raises(ValueError, match=r"^model:"):
        _simulate_with(data, model="linear")
    with pytest.raises(ValueError, match=r"^dynamics:"):
        _simulate_with(data, dynamics="gf")
    with pytest.raises(ValueError, match=r"^hidden:"):
        LinearNet(4, [0])
    with pytest.raises(ValueError, match=r"^data: expected a Dataset"):
        _simulate_with(np.ones((5, 4)))


def test_validate_simulation_is_the_check_simulate_makes(data):
    """The public entry point normalizes the arguments without running anything, and
    rejects what `simulate` rejects with the same message."""
    model = LinearNet(4, [3])
    inputs = dynsim.validate_simulation(
        model, (data.X, data.y), init=dynsim.init.Gaussian(0.1),
        dynamics=dynsim.GradientFlow(t1=1.0), loss="squared",
        metrics={"w_sq": lambda p: sum(jnp.sum(w**2) for w in p["W"])},
    )
    assert [name for name, _ in inputs.metrics] == ["w_sq"]
    assert isinstance(inputs.dataset, dynsim.data.Dataset)
    assert isinstance(inputs.loss, dynsim.losses.SquaredLoss)
    bad = dict(init=dynsim.init.Gaussian(0.1), dynamics=dynsim.GradientFlow(t1=1.0), seeds=0)
    with pytest.raises(ValueError, match="^seeds:") as direct:
        dynsim.validate_simulation(model, data, **bad)
    with pytest.raises(ValueError, match="^seeds:") as via_simulate:
        dynsim.simulate(model, data, key=KEY, **bad)
    assert str(direct.value) == str(via_simulate.value)

