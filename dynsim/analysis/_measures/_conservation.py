"""Drift of the conserved quantities of a `SimulationResult`, per seed."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._predictor import _TINY


class ConservedDrift(NamedTuple):
    """Result of [`conserved_drift`][].

    - `final`: (S,) max_q max|C_q(θ_T) − C_q(θ_0)| / scale.
    - `path`: (S, T) the same at every save time (if `result.conserved` was saved), else None.
    - `scale`: (S,) max_q max|C_q(θ_0)| (or max|θ_0|² when all C_q(θ_0) vanish).
    """

    final: Float[Array, " S"]
    path: Float[Array, "S T"] | None
    scale: Float[Array, " S"]


def conserved_drift(result) -> ConservedDrift:
    """Relative drift of the model's conserved quantities: a numerical-integrity certificate.

    For gradient flow every C_q = `model.conserved(θ)` is exactly constant, since
    ⟨∇C_q, ∇L⟩ = 0 (for the layer balances of homogeneous networks: Du, Hu & Lee 2018),
    so the drift measures the integration error (≈ solver rtol). A gradient-descent step
    θ − η∇L changes C_q by O(η²), by exactly η²·C_q(∇L) when C_q is a quadratic form
    (the balances). The scale is common to all quantities of a seed so that quantities
    that start at zero (balanced inits) do not divide by zero.
    """
    model = result.model
    c0 = jax.vmap(model.conserved)(result.params0)
    if not c0:
        raise ValueError(f"result: {type(model).__name__} has no conserved quantities")
    cT = jax.vmap(model.conserved)(result.params)

    def seedmax(x):
        return jnp.max(jnp.abs(x).reshape(x.shape[0], -1), axis=1)

    scale = jnp.max(jnp.stack([seedmax(c) for c in jax.tree.leaves(c0)]), axis=0)
    theta = jnp.max(jnp.stack([seedmax(p) ** 2 for p in jax.tree.leaves(result.params0)]), axis=0)
    scale = jnp.where(scale > 0, scale, jnp.maximum(theta, _TINY))
    final = jnp.max(
        jnp.stack([seedmax(b - a) for a, b in zip(jax.tree.leaves(c0), jax.tree.leaves(cT))]),
        axis=0,
    ) / scale
    path = None
    if result.conserved is not None:
        drifts = []
        for a, b in zip(jax.tree.leaves(c0), jax.tree.leaves(result.conserved)):
            diff = jnp.abs(jnp.asarray(b) - a[:, None])
            drifts.append(jnp.max(diff.reshape(diff.shape[0], diff.shape[1], -1), axis=2))
        path = jnp.max(jnp.stack(drifts), axis=0) / scale[:, None]
    return ConservedDrift(final, path, scale)
