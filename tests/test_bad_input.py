"""Bad input to the Python API: a ValueError naming the argument, before anything compiles.

One row per case: how to build the bad call, and the name the message must start with.
Runtime type checking is off here: these are the errors a user sees.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynsim
from dynsim import _simulate
from dynsim.models import DiagonalNet, HomogeneousNet, LinearNet, TwoLayerNet

pytestmark = pytest.mark.usefixtures("without_runtime_typecheck")

KEY = jax.random.key(0)
X = jnp.asarray(np.random.default_rng(0).normal(size=(5, 4)))
Y = jnp.asarray(np.random.default_rng(1).normal(size=5))
DATA = dynsim.data.Dataset(X, Y, X[:3], Y[:3])


def _sim(**kw):
    args = dict(
        model=LinearNet(4, [3]), data=DATA, init=dynsim.init.Gaussian(0.1),
        dynamics=dynsim.GradientFlow(t1=1.0), seeds=2, key=KEY,
    )
    args.update(kw)
    return dynsim.simulate(args.pop("model"), args.pop("data"), **args)


CASES = {
    # data
    "X_test of the wrong width": (lambda: dynsim.data.Dataset(X, Y, X[:3, :2], Y[:3]), "data: X_test"),
    "y_test of the wrong length": (lambda: dynsim.data.Dataset(X, Y, X[:3], Y[:2]), "data: y_test"),
    "complex X": (lambda: dynsim.data.Dataset(X.astype(jnp.complex128), Y), "data: X"),
    "integer y": (lambda: dynsim.data.Dataset(X, jnp.arange(5)), "data: y"),
    "float16 X": (lambda: dynsim.data.Dataset(X.astype(jnp.float16), Y.astype(jnp.float16)), "data: X"),
    "no samples": (lambda: dynsim.data.Dataset(jnp.ones((0, 4)), jnp.ones(0)), "data: X"),
    "projection of the wrong shape": (lambda: _sim(dynamics=dynsim.GradientDescent(
        learning_rate=0.01, steps=3, projection=lambda p: {"W": (p["W"][0][:2], p["W"][1])})),
        "projection"),
    "projection that raises": (lambda: _sim(dynamics=dynsim.GradientDescent(
        learning_rate=0.01, steps=3, projection=lambda p: p["nope"])), "projection"),
    # a pair (X, y) is cast to the default float: never from complex or half precision
    "complex X in a pair": (lambda: _sim(data=(np.asarray(X, np.complex64), Y)), "data: X"),
    "float16 y in a pair": (lambda: _sim(data=(X, np.asarray(Y, np.float16))), "data: y"),
    "complex X_test in a 4-tuple": (
        lambda: _sim(data=(X, Y, np.asarray(X[:3], complex), Y[:3])), "data: X_test"),
    "string data": (lambda: _sim(data=(np.array([["a"]]), np.array(["b"]))), "data"),
    # simulate
    "seed_start=True": (lambda: _sim(seed_start=True), "seed_start"),
    "seed_start=2**32": (lambda: _sim(seed_start=2**32), "seeds"),
    "seed indices beyond 2**32": (lambda: _sim(seeds=10, seed_start=2**32 - 5), "seeds"),
    "metric returning None": (lambda: _sim(metrics={"m": lambda p: None}), "metrics"),
    "metric reading a missing key": (lambda: _sim(metrics={"m": lambda p: p["U"]}), "metrics"),
    "metric returning a string": (lambda: _sim(metrics={"m": lambda p: "x"}), "metrics"),
    # models
    "DiagonalNet(5.9)": (lambda: DiagonalNet(5.9), "dim"),
    "DiagonalNet('5')": (lambda: DiagonalNet("5"), "dim"),
    "hidden=[2.5]": (lambda: LinearNet(4, [2.5]), "hidden"),
    "hidden=3 (not a sequence)": (lambda: LinearNet(4, 3), "hidden"),
    "HomogeneousNet hidden=[True]": (lambda: HomogeneousNet(3, [True]), "hidden"),
    "TwoLayerNet width 0": (lambda: TwoLayerNet(3, 0), "width"),
    # inits
    "Gaussian(std=nan)": (lambda: dynsim.init.Gaussian(std=float("nan")), "std"),
    "Gaussian(std=-1)": (lambda: dynsim.init.Gaussian(std=-1.0), "std"),
    "Gaussian(std=inf) as array": (lambda: dynsim.init.Gaussian(std=jnp.asarray(jnp.inf)), "std"),
    "Constant(alpha=nan)": (lambda: dynsim.init.Constant(alpha=float("nan")), "alpha"),
    "Constant shape of the wrong length": (
        lambda: _sim(model=DiagonalNet(4), init=dynsim.init.Constant(0.1, shape=jnp.ones(3))), "init",
    ),
    "Balanced(ratio=0)": (lambda: dynsim.init.Balanced(ratio=0.0), "ratio"),
    # dynamics
    "negative learning rate array": (lambda: dynsim.GradientDescent(jnp.asarray(-0.1)), "learning_rate"),
    "string learning rate": (lambda: dynsim.GradientDescent("0.1"), "learning_rate"),
    "steps=2.5": (lambda: dynsim.GradientDescent(0.1, steps=2.5), "steps"),
    "steps=2**31": (lambda: dynsim.GradientDescent(0.1, steps=2**31), "steps"),
    "negative rtol array": (lambda: dynsim.GradientFlow(t1=1.0, rtol=jnp.asarray(-1e-6)), "rtol"),
    "negative t1 array": (lambda: dynsim.GradientFlow(t1=jnp.asarray(-5.0)), "t1"),
    "max_steps=2**31": (lambda: dynsim.GradientFlow(t1=1.0, max_steps=2**31), "max_steps"),
    # losses
    "CustomLoss returning a vector per sample": (
        lambda: _sim(loss=dynsim.losses.CustomLoss(lambda p, t: jnp.stack([p - t, p + t]).ravel())), "loss",
    ),
    "loss='mse'": (lambda: _sim(loss="mse"), "loss"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_rejected_before_compiling(case):
    build, name = CASES[case]
    before = _simulate.TRACE_COUNT["chunk"]
    with pytest.raises(ValueError) as info:
        build()
    assert str(info.value).startswith(name), (case, str(info.value))
    assert _simulate.TRACE_COUNT["chunk"] == before, "validation must fail before tracing"
