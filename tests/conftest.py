"""Strict test settings: float64 everywhere (library code never sets global config)."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def getkey():
    """Fresh, deterministic PRNG keys: getkey() -> key."""
    counter = iter(range(10**6))
    base = jax.random.key(1234)
    return lambda: jax.random.fold_in(base, next(counter))
