"""How many seeds fit in memory: the default chunk size and the checks `simulate` makes
from a compiled chunk program's memory analysis before running it."""

import os

import jax

# `simulate(chunk_size=None)` runs all seeds in one chunk up to this many; above it, the
# chunk is sized from the memory analysis of a program compiled for this many seeds.
AUTO_CHUNK_PROBE = 16384
# Share of the available memory one chunk's program may use (arguments, outputs and
# temporaries); the rest is headroom for the host copies of finished chunks.
DEVICE_SHARE = 0.5


def available_bytes(device=None) -> int:
    """Memory one chunk may draw on: the accelerator's `bytes_limit` less what is in
    use, or on CPU the host memory the kernel reports available (`MemAvailable`)."""
    device = device if device is not None else jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return host_available_bytes()


def host_available_bytes() -> int:
    """Host memory available to this process (`MemAvailable`, else physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        return 2**63 - 1


def program_bytes(compiled) -> tuple[int, int]:
    """(device bytes of one run of `compiled`: arguments + outputs + temporaries, its
    output bytes); (0, 0) where the backend gives no memory analysis."""
    try:
        ma = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - backends without a memory analysis
        ma = None
    if ma is None:
        return 0, 0
    out = int(ma.output_size_in_bytes)
    return int(ma.argument_size_in_bytes) + out + int(ma.temp_size_in_bytes), out


def chunk_from_probe(probe_bytes: int, probe: int, seeds: int, budget: float, multiple: int) -> int:
    """The largest chunk (a multiple of `multiple`, at most `seeds`, at least `probe`)
    whose program fits `budget`, scaling the `probe`-seed program's bytes linearly."""
    per_seed = max(probe_bytes, 1) / probe
    chunk = int(budget // per_seed) // multiple * multiple
    return max(probe, min(seeds, chunk))


def check_fits(compiled, chunk: int, seeds: int, chunk_given: bool, device=None) -> None:
    """Refuse a run whose chunk program or collected results cannot fit in memory.

    One chunk's program must fit the device's available memory; the results of all
    `seeds` (outputs of ⌈seeds/chunk⌉ chunks, held twice while they are joined) must
    fit the host's. Raises `ValueError` naming `chunk_size` or `seeds`.
    """
    need, out = program_bytes(compiled)
    avail = available_bytes(device)
    if need > avail:
        what = "chunk_size" if chunk_given else "seeds"
        raise ValueError(
            f"{what}: one chunk of {chunk} seeds needs {_gib(need)} of device memory and "
            f"{_gib(avail)} is available; pass a smaller chunk_size"
        )
    n_chunks = -(-seeds // chunk)
    host = 2 * out * n_chunks
    host_avail = host_available_bytes()
    if host > host_avail:
        raise ValueError(
            f"seeds: the results of {seeds} seeds need {_gib(host)} of host memory and "
            f"{_gib(host_avail)} is available; run fewer seeds per call (`seed_start` "
            "continues an ensemble) or a study, which writes each chunk to disk"
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"
