"""The batched gradient-flow loop: every seed of a batch in one adaptive Tsit5 loop.

`_stepper` (Tsit5 step attempts with diffrax's step control), `_slots` (the slot pool:
retiring stopped seeds, loading waiting ones), `_saving` (dense output at the save
times) and `_loop` (the loop that drives them) hold the parts; `solve` is the entry
point, used by `GradientFlow.run_batch`.
"""

from ._loop import solve as solve
from ._slots import ACCELERATOR_BLOCK as ACCELERATOR_BLOCK
from ._slots import auto_slots as auto_slots
from ._slots import auto_vmap_block as auto_vmap_block
