"""Strict test settings (library code never sets global config): float64 everywhere,
implicit rank promotion is an error, and jaxtyping checks every annotated dynsim
function's shapes at run time (`--jaxtyping-packages` in pyproject's addopts). CLI
runs started as programs keep their compilation cache in a temporary directory, never
in the user's cache."""

import os
import tempfile

import jax
import pytest

os.environ.setdefault("DYNSIM_CACHE_DIR", tempfile.mkdtemp(prefix="dynsim-test-cache-"))

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def getkey():
    """Fresh, deterministic PRNG keys: getkey() -> key."""
    counter = iter(range(10**6))
    base = jax.random.key(1234)
    return lambda: jax.random.fold_in(base, next(counter))


@pytest.fixture
def without_runtime_typecheck():
    """Runtime type checking off for one test: bad-input tests assert the error a user
    sees (dynsim's own `ValueError` naming the argument), which jaxtyping would
    otherwise pre-empt with a `TypeCheckError` at the annotation."""
    import jaxtyping

    before = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", True)
    yield
    jaxtyping.config.update("jaxtyping_disable", before)


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
