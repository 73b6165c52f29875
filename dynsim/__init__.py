"""dynsim: differentiable, vectorized simulation of gradient-flow training dynamics."""

import importlib.metadata

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
