"""Held-out risk of a `SimulationResult`, per seed."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def test_risk(result, params=None) -> Float[Array, " S"]:
    """Held-out risk per seed: (1/n_test) Σ_i ℓ(f(θ_s; x_i), y_i) on `data.X_test, y_test`.

    ℓ is `result.loss_fn.per_sample` (for the squared loss ½‖f(x) − y‖²), so the value is
    a mean per sample whatever the loss's `reduction`. `params` (leaves (S, ...))
    defaults to the final parameters.
    """
    data = result.data
    if data is None or data.X_test is None:
        raise ValueError("result: the data set has no test split (X_test, y_test)")
    params = result.params if params is None else params
    X, y = jnp.asarray(data.X_test), jnp.asarray(data.y_test)

    def one(p):
        return jnp.mean(result.loss_fn.per_sample(result.model.apply(p, X), y))

    return jax.vmap(one)(params)


test_risk.__test__ = False  # not a pytest test
