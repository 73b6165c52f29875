"""dynsim: differentiable, vectorized simulation of gradient-flow training dynamics.

The public names below are imported on first use (PEP 562 module `__getattr__`), so that
`import dynsim` alone does not import JAX: the `dynsim` command (`dynsim/__main__.py`)
must be able to answer a Ctrl-C while JAX is still being imported.
"""

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

_SUBMODULES = ("analysis", "data", "dynamics", "init", "losses", "metrics", "models", "study")

# public name -> the module that defines it
_ATTRIBUTES = {
    "enable_compile_cache": "._compile_cache",
    "process_seed_range": "._distributed",
    "simulate_local_share": "._distributed",
    "CalibrationResult": "._objective",
    "calibrate": "._objective",
    "ensemble_objective": "._objective",
    "minimize": "._objective",
    "SimulationResult": "._result",
    "simulate": "._simulate",
    "Status": "._status",
    "SimulationInputs": "._validation",
    "validate_simulation": "._validation",
    "AbstractDynamics": ".dynamics",
    "GradientDescent": ".dynamics",
    "GradientFlow": ".dynamics",
    "StochasticGradientFlow": ".dynamics",
    "Trajectories": ".dynamics",
    "load": ".study",
}

__all__ = [*_SUBMODULES, *_ATTRIBUTES, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    elif name in _ATTRIBUTES:
        value = getattr(importlib.import_module(_ATTRIBUTES[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # the same names, for static tools (redundant aliases: re-exports)
    from . import analysis as analysis
    from . import data as data
    from . import dynamics as dynamics
    from . import init as init
    from . import losses as losses
    from . import metrics as metrics
    from . import models as models
    from . import study as study
    from ._compile_cache import enable_compile_cache as enable_compile_cache
    from ._distributed import process_seed_range as process_seed_range
    from ._distributed import simulate_local_share as simulate_local_share
    from ._objective import CalibrationResult as CalibrationResult
    from ._objective import calibrate as calibrate
    from ._objective import ensemble_objective as ensemble_objective
    from ._objective import minimize as minimize
    from ._result import SimulationResult as SimulationResult
    from ._simulate import simulate as simulate
    from ._status import Status as Status
    from ._validation import SimulationInputs as SimulationInputs
    from ._validation import validate_simulation as validate_simulation
    from .dynamics import AbstractDynamics as AbstractDynamics
    from .dynamics import GradientDescent as GradientDescent
    from .dynamics import GradientFlow as GradientFlow
    from .dynamics import StochasticGradientFlow as StochasticGradientFlow
    from .dynamics import Trajectories as Trajectories
    from .study import load as load

try:
    __version__ = importlib.metadata.version("dynsim")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"
