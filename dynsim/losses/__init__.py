"""Losses. Convention: `reduction="sum"` (default) gives L = ½‖f(X) − y‖² etc.

Per-sample losses (`AbstractLoss`) and whole objectives (`AbstractObjective`:
`Objective`, `TeacherStudentPopulation`, `Regularized`).
"""

from ._losses import BY_NAME as BY_NAME
from ._losses import AbstractLoss as AbstractLoss
from ._losses import CustomLoss as CustomLoss
from ._losses import ExponentialLoss as ExponentialLoss
from ._losses import LogisticLoss as LogisticLoss
from ._losses import SquaredLoss as SquaredLoss
from ._losses import get_loss as get_loss
from ._objective import AbstractObjective as AbstractObjective
from ._objective import Objective as Objective
from ._population import TeacherStudentPopulation as TeacherStudentPopulation
from ._regularized import Regularized as Regularized
