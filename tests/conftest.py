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


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Free each test module's compiled programs when the module ends.

    XLA:CPU maps the code of every compiled kernel into the process. The suite compiles
    hundreds of programs; kept alive by jax's caches and dynsim's `_COMPILED` cache, their
    mappings crossed vm.max_map_count (65,530) in one pytest process at the notebook
    tests (LLVM: "Cannot allocate memory", then a crash in compilation)."""
    yield
    import gc

    from dynsim import _simulate

    _simulate._COMPILED.clear()
    jax.clear_caches()
    gc.collect()
