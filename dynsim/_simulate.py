"""`simulate`: many seeds of one configuration, in chunks, under one compilation."""

import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _memory
from ._problem import Problem
from ._progress import Progress
from ._result import SimulationResult
from ._validation import validate_simulation
from .data import Dataset
from .dynamics import AbstractDynamics, Trajectories
from .models._base import AbstractModel

_COMPILED: dict = {}
_CACHE_SIZE = 64
TRACE_COUNT = {"chunk": 0}  # incremented each time the chunk function is traced


def simulate(
    model: AbstractModel,
    data: Any,
    *,
    init: Any,
    dynamics: AbstractDynamics,
    seeds: int,
    key: Any,
    loss: Any = "squared",
    chunk_size: int | None = None,
    metrics: Mapping[str, Callable] | None = None,
    save_params: bool = False,
    save_conserved: bool = False,
    seed_start: int = 0,
    callback: Callable | None = None,
    devices: Any = None,
    progress: Any = False,
) -> SimulationResult:
    r"""Train `seeds` independent initializations of `model` on `data` under `dynamics`.

    Seed i (i = `seed_start`, …, `seed_start + seeds − 1`) uses the key
    `jax.random.fold_in(key, i)`, split into an init key and a dynamics key, so each
    seed's trajectory depends only on (key, i): results are bitwise reproducible and the
    same whatever `chunk_size`, `seeds` or `devices` is (bitwise in the tested cases; in
    general up to rounding, as XLA's matrix kernels depend on the batch shape).

    All seeds of a chunk run in one compiled, `vmap`-ed computation; chunks share one
    compilation (the last chunk is padded). Results are moved to host memory after each
    chunk, so `seeds` may exceed device memory.

    **Arguments:**

    - `model`: a `dynsim.models` model.  `data`: a `Dataset` or a pair (X, y).
    - `init`: a `dynsim.init` scheme or a callable `key -> params`.
    - `dynamics`: `GradientFlow(...)`, `StochasticGradientFlow(...)` or
      `GradientDescent(...)` (any `AbstractDynamics`).
    - `seeds`: number of initializations.  `key`: a JAX PRNG key.
    - `loss`: an `AbstractLoss`, a name (`"squared"`, `"logistic"`, `"exponential"`),
      a per-sample callable `(pred, target) -> scalar`, or an `AbstractObjective`
      (`losses.Objective`, `TeacherStudentPopulation`, `Regularized`).
    - `chunk_size`: seeds per compiled batch. Default: all seeds at once, up to
      `_memory.AUTO_CHUNK_PROBE` (16,384); above that, the largest chunk whose program
      fits half the available device memory, sized from the memory analysis of the
      program compiled for 16,384 seeds.
    - `metrics`: `{name: fn}` saved at every save time, one seed at a time: `fn(params)`
      or `fn(params, problem)` (two required positional parameters; `problem` exposes
      `model`, `X`, `y`, `loss`, `value(params)`, `grad(params)`), returning arrays.
      Built-ins: `dynsim.metrics.sharpness`, `ntk_min_eig`, `ntk_max_eig`,
      `param_norm`, `distance_to`.
    - `save_params`, `save_conserved`: also save parameters / conserved quantities at every
      save time (memory S × T × |θ|).
    - `seed_start`: first seed index (to extend or resume an ensemble).
    - `callback`: called as `callback(start, stop, chunk)` after each chunk finishes, with
      `chunk` the `Trajectories` of seeds [start, stop) in host arrays, `params0`
      attached (`SimulationResult.from_trajectories` turns it into a result; the results
      store persists work as it completes this way).
    - `devices`: `None` (the default device), `"all"` (every local device) or a sequence
      of devices: each chunk's seeds are split evenly across them with `jax.shard_map`
      (the chunk is padded to a multiple of the device count). Per-seed results do not
      depend on the devices used, up to rounding (same statuses and step counts).
    - `progress`: `True` shows progress on stderr: "compiling" until the program is
      compiled, then seeds done/total, rate and ETA, redrawn in place on a terminal,
      else one plain line per chunk at most every 10 s (a log file). `False` (the
      default): nothing. Any other object with methods `compiled()` and
      `advance(n, (chunk, n_chunks))` is told the same events instead (the study
      runner's progress is). Nothing is shown inside a JAX transformation.

    **Returns:** a `SimulationResult`.

    **Raises:** `ValueError` naming the offending argument, before anything is compiled;
    `ValueError` naming `chunk_size` (or `seeds`) once compiled, before running, if one
    chunk's program does not fit the device's available memory or the results of all
    seeds would not fit the host's.
    """
    model, dataset, loss_fn, init_fn, metric_items = validate_simulation(
        model, data, init=init, dynamics=dynamics, loss=loss, seeds=seeds, key=key,
        chunk_size=chunk_size, metrics=metrics, seed_start=seed_start,
        save_conserved=bool(save_conserved),
    )
    problem = Problem(
        model, loss_fn, dataset.X, dataset.y, metric_items, bool(save_params), bool(save_conserved)
    )
    init_data = Dataset(dataset.X, dataset.y)  # no `info`: keeps the static part hashable
    devices = _check_devices(devices)
    if not (isinstance(progress, bool) or (callable(getattr(progress, "compiled", None))
                                           and callable(getattr(progress, "advance", None)))):
        raise ValueError(f"progress: expected True or False; got {progress!r}")
    n_dev = len(devices)
    chunk = seeds if chunk_size is None else min(int(chunk_size), seeds)
    chunk = -(-chunk // n_dev) * n_dev
    devices = devices if n_dev > 1 else None
    args = (problem, init_fn, dynamics, init_data, key)
    dynamic, static = eqx.partition(args, eqx.is_array)
    traced = not _at_top_level() or any(
        isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(dynamic)
    )

    t_start = time.perf_counter()
    compile_time = float("nan")
    with _progress(progress, seeds, traced) as bar:
        if traced:
            runner = lambda ids: _run_chunk(dynamic, static, ids, devices)
        else:
            if chunk_size is None and chunk > _memory.AUTO_CHUNK_PROBE:
                probe = -(-_memory.AUTO_CHUNK_PROBE // n_dev) * n_dev
                _, _, compiled = _compiled(dynamic, static, probe, devices)
                budget = _memory.DEVICE_SHARE * _memory.available_bytes()
                chunk = _memory.chunk_from_probe(
                    _memory.program_bytes(compiled)[0], probe, chunk, budget, n_dev
                )
            runner, compile_time, compiled = _compiled(dynamic, static, chunk, devices)
            _memory.check_fits(compiled, chunk, seeds, chunk_given=chunk_size is not None)
            if bar is not None:
                bar.compiled()
        n_chunks = -(-seeds // chunk)
        outputs = []
        for c in range(n_chunks):
            lo = seed_start + c * chunk
            hi = min(lo + chunk, seed_start + seeds)
            ids = jnp.arange(lo, lo + chunk, dtype=jnp.int32)
            out = runner(ids)
            out = jax.tree.map(lambda x: x[: hi - lo], out)
            if not traced:
                out = jax.device_get(out)
                if callback is not None:
                    callback(lo, hi, out)
                if bar is not None:
                    bar.advance(hi - lo, (c + 1, n_chunks))
            outputs.append(out)
    wall = time.perf_counter() - t_start if not traced else float("nan")
    cat = np.concatenate if not traced else jnp.concatenate
    out = jax.tree.map(lambda *xs: cat(xs, axis=0), *outputs) if n_chunks > 1 else outputs[0]
    return SimulationResult.from_trajectories(
        out,
        model=problem.model,
        data=dataset,
        loss_fn=problem.loss,
        dynamics=dynamics,
        seed_start=seed_start,
        wall_time=wall,
        compile_time=compile_time,
    )


@contextlib.contextmanager
def _progress(progress, seeds: int, traced: bool):
    """The object told `simulate`'s progress (None: nobody); a bar of its own for
    `progress=True`, closed however the call ends (an error, Ctrl-C)."""
    if traced or progress is False:
        yield None
    elif progress is True:
        bar = Progress(seeds, desc="simulate", force=True)
        try:
            bar.start_compute()
            yield bar
        finally:
            bar.close()
    else:
        yield progress


def _at_top_level() -> bool:
    """False inside a JAX transformation (grad, vmap, jit, ...).

    Tracers can hide in closures of static fields (a `CustomLoss` closing over a traced
    value), invisible to `eqx.partition`; those need the plain `jit` path, which lifts
    closed-over tracers, instead of an ahead-of-time compiled executable.
    """
    try:
        from jax._src.core import trace_state_clean
    except ImportError:  # pragma: no cover - private API moved: rely on the leaf check
        return True
    return trace_state_clean()


def _seed_keys(key, seed_id):
    return tuple(jax.random.split(jax.random.fold_in(key, seed_id)))


@jax.jit(static_argnums=(1, 3))
def _run_chunk(dynamic, static, ids, devices=None):
    TRACE_COUNT["chunk"] += 1
    if isinstance(static, _ById):
        static = static.value
    if devices is None:
        return _run_seeds(dynamic, static, ids)
    P = jax.sharding.PartitionSpec
    mesh = jax.sharding.Mesh(np.asarray(devices), ("seeds",))
    sharded = jax.shard_map(
        lambda d, i: _run_seeds(d, static, i),
        mesh=mesh,
        in_specs=(P(), P("seeds")),
        out_specs=P("seeds"),
        check_vma=False,
    )
    return sharded(dynamic, ids)


def _run_seeds(dynamic, static, ids) -> Trajectories:
    problem, init_fn, dynamics, data, key = eqx.combine(dynamic, static)
    k_init, k_dyn = jax.vmap(lambda i: _seed_keys(key, i))(ids)
    params0 = jax.vmap(lambda k: init_fn(problem.model, data, k))(k_init)
    out = dynamics.run_batch(problem, params0, k_dyn)
    return dataclasses.replace(out, params0=params0)


def _compiled(dynamic, static, chunk, devices=None):
    """AOT-compile the chunk function once per configuration; returns (fn, seconds,
    the compiled executable)."""
    avals = tuple((x.shape, x.dtype) for x in jax.tree.leaves(dynamic))
    cache_key = (static, jax.tree.structure(dynamic), avals, chunk, devices)
    try:
        hash(cache_key)
    except TypeError:  # unhashable user objects: compile once for this call, no caching
        cache_key, static = None, _ById(static)
    if cache_key is not None and cache_key in _COMPILED:
        compiled = _COMPILED[cache_key]
        return (lambda ids: compiled(dynamic, ids)), 0.0, compiled
    t0 = time.perf_counter()
    ids = jax.ShapeDtypeStruct((chunk,), jnp.int32)
    compiled = _run_chunk.lower(dynamic, static, ids, devices).compile()
    seconds = time.perf_counter() - t0
    if cache_key is not None:
        if len(_COMPILED) >= _CACHE_SIZE:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[cache_key] = compiled
    return (lambda ids: compiled(dynamic, ids)), seconds, compiled


class _ById:
    """Hashes by identity: lets unhashable configurations through `jit` (no caching)."""

    def __init__(self, value):
        self.value = value

    def __hash__(self):
        return id(self.value)

    def __eq__(self, other):
        return isinstance(other, _ById) and other.value is self.value


def _check_devices(devices) -> tuple:
    if devices is None:
        return (jax.devices()[0],)
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f"devices: expected None, 'all' or a sequence of devices; got {devices!r}")
        return tuple(jax.local_devices())
    try:
        devices = tuple(devices)
    except TypeError:
        raise ValueError(f"devices: expected None, 'all' or a sequence of devices; got {devices!r}") from None
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise ValueError(f"devices: expected a non-empty sequence of jax devices; got {devices!r}")
    return devices
