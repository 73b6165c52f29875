"""Per-trajectory outcome codes."""

import enum

import numpy as np


class Status(enum.IntEnum):
    """How one trajectory ended. Stored per seed as `int8` in `SimulationResult.status`.

    - `REACHED_END`: integrated to `t1` (gradient flow) or ran all `steps` (gradient
      descent) without meeting a stopping threshold.
    - `CONVERGED`: stopped early at a steady state (loss or gradient norm under the
      thresholds given to the dynamics).
    - `MAX_STEPS`: the adaptive solver used up `max_steps` before `t1`.
    - `DIVERGED`: the parameters became non-finite or exceeded `divergence` in absolute
      value; the trajectory was stopped, other seeds are unaffected.
    - `FAILED`: any other solver failure (e.g. step size underflow).
    """

    REACHED_END = 0
    CONVERGED = 1
    MAX_STEPS = 2
    DIVERGED = 3
    FAILED = 4


STATUS_NAMES = {s.value: s.name.lower() for s in Status}

OK_STATUSES = (Status.REACHED_END, Status.CONVERGED)
"""The statuses of a trajectory that ran as asked: it reached the end or converged.
`MAX_STEPS` (the budget ran out before the end), `DIVERGED` and `FAILED` are not ok."""


def is_ok(codes) -> np.ndarray:
    """Boolean mask of status codes in `OK_STATUSES` (the one definition of "ok")."""
    return np.isin(np.asarray(codes), [int(s) for s in OK_STATUSES])
