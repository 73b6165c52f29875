r"""The slot pool: B slots integrate S ≥ B seeds, each slot taking the next waiting seed
when its own stops.

Every seed's initial state sits in a queue (leaves with a leading axis S, computed up
front in one batch). A slot holds one seed, named by `seed` (S marks an empty slot);
when the seed stops, its final state is scattered into the output arrays at its seed
index and the slot is loaded with the next waiting seed's initial state. Seeds with very
different step counts then do not hold each other back: the batch stays full until the
queue is empty (fixed blocks would run until their slowest seed stops, computing and
masking the finished ones). The per-seed arithmetic does not depend on the slot, so a
seed's result is the same with any number of slots (bitwise where the batched matmul
kernels round the same, which the tests check).
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from ..._custom_types import BatchedParams

OUT_KEYS = ("y", "sprev", "result", "num_steps")
"""The entries of a slot's state a seed leaves behind when it stops."""


def seed_bytes(params0: BatchedParams) -> int:
    """Bytes of one seed's parameters in a batch with a leading seed axis."""
    leaves = jax.tree.leaves(params0)
    n = max(leaves[0].shape[0], 1)
    return sum((x.size // n) * x.dtype.itemsize for x in leaves)


ACCELERATOR_BLOCK = 4096
"""`block_size="auto"` on GPU/TPU backends: seeds per block (not yet measured on a
device; chosen so one block's kernels span thousands of seeds)."""


def auto_slots(
    params0: BatchedParams, cache_bytes: int = 2**20, backend: str | None = None
) -> int:
    """`block_size="auto"`: the number of slots (seeds per block) for a batch `params0`.

    By backend (`jax.default_backend()` unless given). On GPU and TPU,
    `ACCELERATOR_BLOCK` seeds: the device runs each kernel over all of them at once. On
    CPU, the largest of 128, 64, 32 slots whose step working set — about 16 arrays of
    B × (one seed's parameters): the state, seven stage gradients, stage states, the
    error estimate, the selects — fits in `cache_bytes` (1 MiB, half a 2 MiB L2); when
    none fits, 128 (the state lives in L3/memory anyway and larger batches amortize the
    per-step control ops and give bigger matrix products). The 1 MiB and the 128/64/32
    are tuned by measurement on W1–W3: benchmarks/HISTORY.md. The choice depends on the
    model and the backend, never on the number of seeds, so results do not depend on
    how many seeds run.
    """
    backend = jax.default_backend() if backend is None else backend
    if backend != "cpu":
        return ACCELERATOR_BLOCK
    size = seed_bytes(params0)
    for b in (128, 64, 32):
        if 16 * b * size <= cache_bytes:
            return b
    return 128


def auto_vmap_block(backend: str | None = None) -> int:
    """`GradientFlow(batched=False, block_size="auto")`: seeds per `vmap` block, 32 on
    CPU (per-seed `diffeqsolve` loops gain little from larger batches there),
    `ACCELERATOR_BLOCK` on GPU/TPU."""
    backend = jax.default_backend() if backend is None else backend
    return 32 if backend == "cpu" else ACCELERATOR_BLOCK


class SlotPool(eqx.Module):
    """B = `n_slots` slots over `n_seeds` seeds (B = min(slots, S), at least 2; `slots`
    `None`: all S), loading at most `n_load` waiting seeds per iteration.

    The loop state is a dict: the queue's entries for the seed in each slot (leaves
    (B, ...)), `seed` (B,), `next_seed` (the first seed not yet loaded), `waiting` (a
    slot is empty while seeds wait), `saved` (the summaries, (S, T, ...)) and `out`
    (the `OUT_KEYS` entries of every stopped seed, (S, ...)).
    """

    n_seeds: int = eqx.field(static=True)
    n_slots: int = eqx.field(static=True)
    n_load: int = eqx.field(static=True)

    def __init__(self, n_seeds: int, slots: int | None):
        self.n_seeds = n_seeds
        self.n_slots = n_seeds if slots is None else max(2, min(int(slots), n_seeds))
        # At most `n_load` waiting seeds enter empty slots per iteration: loading is a
        # gather of n_load queue rows and a scatter of them into the slots, instead of a
        # gather and a select over all slots, which costs less where most iterations
        # retire a seed (benchmarks/HISTORY.md). Slots left empty get a seed on the next
        # iterations.
        self.n_load = min(self.n_slots, max(2, -(-self.n_slots // 16)))

    def initial_state(self, queue: dict, saved0) -> dict:
        """Slot i holds seed i; the outputs start as the queue (a seed that never runs
        leaves its initial state)."""
        return dict(
            jax.tree.map(lambda x: x[: self.n_slots], queue),
            seed=jnp.arange(self.n_slots, dtype=jnp.int32),  # n_seeds marks an empty slot
            next_seed=jnp.asarray(self.n_slots, jnp.int32),
            # an empty slot and a waiting seed; set by the refill and carried (deriving
            # it from the slots in every step makes XLA compile a slower loop:
            # benchmarks/HISTORY.md)
            waiting=jnp.asarray(False),
            saved=saved0,
            out={k: queue[k] for k in OUT_KEYS},
        )

    def occupied(self, st: dict):
        """(B,) the slot holds a seed."""
        return st["seed"] < self.n_seeds

    def retire_and_refill(self, st: dict, done, queue: dict) -> dict:
        """Write out the slots whose seed stopped (`done`, (B,)); give up to `n_load`
        empty slots the next waiting seeds."""
        n_seeds, n_slots, n_load = self.n_seeds, self.n_slots, self.n_load
        at = jnp.where(done, st["seed"], n_seeds)  # n_seeds: dropped
        out = {
            k: jax.tree.map(lambda o, x: o.at[at].set(x, mode="drop"), st["out"][k], st[k])
            for k in OUT_KEYS
        }
        seed = jnp.where(done, n_seeds, st["seed"])
        (empty,) = jnp.nonzero(seed == n_seeds, size=n_load, fill_value=n_slots)
        new = st["next_seed"] + jnp.arange(n_load, dtype=jnp.int32)
        load = (empty < n_slots) & (new < n_seeds)
        to = jnp.where(load, empty, n_slots)  # n_slots: dropped
        src = jnp.where(load, new, 0)
        slot = {
            k: jax.tree.map(
                lambda x, q: x.at[to].set(q.at[src].get(mode="clip"), mode="drop"), st[k], queue[k]
            )
            for k in queue
        }
        seed = seed.at[to].set(new, mode="drop")
        next_seed = st["next_seed"] + jnp.sum(load, dtype=jnp.int32)
        waiting = jnp.any(seed == n_seeds) & (next_seed < n_seeds)
        return dict(
            slot, seed=seed, next_seed=next_seed, waiting=waiting, saved=st["saved"], out=out
        )

    def max_iterations(self, max_steps: int) -> int:
        """A bound on the loop's iterations.

        A seed holds a slot for at most max_steps + 1 iterations (its steps, then its
        retirement). While seeds wait, an iteration either loads n_load of them (at most
        ⌈S/n_load⌉ such iterations) or fills every empty slot, so that all B slots do one
        of those S·(max_steps + 1) units of work in the next iteration (at most
        S·(max_steps + 1)/B + 1 such iterations); once the queue is empty, the last seeds
        finish within max_steps + 1. Hence at most
        (⌈S/B⌉ + 1)·(max_steps + 1) + ⌈S/n_load⌉ + 1 iterations.
        """
        n_seeds, n_slots = self.n_seeds, self.n_slots
        return (-(-n_seeds // n_slots) + 1) * (max_steps + 1) + -(-n_seeds // self.n_load) + 1
