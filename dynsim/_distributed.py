"""Multi-process (multi-host) ensembles: each JAX process integrates its own seed range.

Seeds are independent and seed i depends only on (key, i), so a run over P processes needs
no collective communication: process p integrates a contiguous block of seeds with its own
local devices (`simulate(..., devices="all")` within the process) and the blocks
concatenate to exactly the single-process result. Start every process with
`jax.distributed.initialize(...)` first (or pass `process_index` / `process_count`).
"""

from typing import Any

import jax

from ._result import SimulationResult
from ._simulate import simulate


def process_seed_range(
    seeds: int, *, process_index: int | None = None, process_count: int | None = None
) -> tuple[int, int]:
    """(first seed, number of seeds) of this process's contiguous share of `seeds`.

    Shares differ by at most one seed; the first `seeds mod P` processes take one more.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds: must be a positive integer; got {seeds!r}")
    p = jax.process_index() if process_index is None else int(process_index)
    n = jax.process_count() if process_count is None else int(process_count)
    if n < 1 or not 0 <= p < n:
        raise ValueError(f"process_index: must be in [0, {n}); got {p}")
    base, extra = divmod(seeds, n)
    start = p * base + min(p, extra)
    return start, base + (1 if p < extra else 0)


def simulate_local_share(
    model: Any,
    data: Any,
    *,
    seeds: int,
    seed_start: int = 0,
    process_index: int | None = None,
    process_count: int | None = None,
    **kwargs: Any,
) -> SimulationResult:
    """`simulate` for this process's share of seeds `[seed_start, seed_start + seeds)`.

    Returns the local `SimulationResult` (its `seed_ids` say which seeds); concatenating
    the processes' results in process order gives the single-process result bitwise.
    Raises `ValueError` if this process's share is empty (more processes than seeds).
    """
    start, count = process_seed_range(
        seeds, process_index=process_index, process_count=process_count
    )
    if count == 0:
        raise ValueError(f"seeds: {seeds} seeds leave this process ({start=}) without work")
    return simulate(model, data, seeds=count, seed_start=seed_start + start, **kwargs)
