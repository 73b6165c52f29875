"""JAX's persistent compilation cache for dynsim's programs: `enable_compile_cache`."""

import os
from pathlib import Path

import jax
from jax.experimental.compilation_cache import compilation_cache

CACHE_DIR_ENV = "DYNSIM_CACHE_DIR"


def default_cache_dir() -> Path:
    """Where `enable_compile_cache()` puts the cache: `$DYNSIM_CACHE_DIR` if set, else a
    directory already given to JAX (`JAX_COMPILATION_CACHE_DIR`), else
    `$XDG_CACHE_HOME/dynsim/jax` (an absolute `XDG_CACHE_HOME`), else
    `~/.cache/dynsim/jax`."""
    given = os.environ.get(CACHE_DIR_ENV)
    if given:
        return Path(given).expanduser()
    configured = jax.config.jax_compilation_cache_dir
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "dynsim" / "jax"


def enable_compile_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keep compiled programs on disk, so that another process running the same
    configuration loads them instead of compiling them again.

    This turns on JAX's persistent compilation cache for the whole process
    (`jax_compilation_cache_dir`), with every program cached whatever its compile
    time or size (`jax_persistent_cache_min_compile_time_secs = 0`,
    `jax_persistent_cache_min_entry_size_bytes = -1`): dynsim's chunk programs, and
    the small programs of data generation and analysis. It takes effect for
    everything compiled afterwards, also when called after earlier compilations. The
    program is looked up by a hash of its XLA computation, the compile options, the
    devices and the jax/jaxlib versions, so a changed configuration, shape, dtype,
    device or jax version compiles anew; `simulate(...).compile_time` then drops to
    the time of tracing and loading. Tracing (Python) is not cached: a cache hit
    still traces the program to compute its key.

    The command line (`dynsim run`, `dynsim demo`) calls this unless given
    `--no-cache`. From Python, call it once before simulating. The cache grows
    without bound; deleting its directory is always safe. As JAX warns, a
    cache directory is trusted code: do not point it at a directory others can write.

    **Arguments:**

    - `path`: the cache directory (created if missing). `None`: `default_cache_dir()`,
      i.e. `$DYNSIM_CACHE_DIR` if set, else a directory already given to JAX
      (`JAX_COMPILATION_CACHE_DIR`), else `$XDG_CACHE_HOME/dynsim/jax` or
      `~/.cache/dynsim/jax`.

    **Returns:** the cache directory, or `None` if JAX's compilation cache is switched
    off (`JAX_ENABLE_COMPILATION_CACHE=false`, `jax_enable_compilation_cache`): then
    nothing is changed.
    """
    if not jax.config.jax_enable_compilation_cache:
        return None
    path = default_cache_dir() if path is None else Path(path).expanduser()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    # JAX decides at its first compilation whether a cache is used, and keeps that
    # decision: reset it, so that the directory also applies after earlier compiles
    compilation_cache.reset_cache()
    return path


def disable_compile_cache() -> None:
    """No persistent compilation cache for this process (`dynsim run --no-cache`),
    also if one was configured through JAX's own settings."""
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
