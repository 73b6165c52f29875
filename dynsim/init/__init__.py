"""Initialization schemes, each called as `scheme(model, data, key) -> params`."""

from ._schemes import AbstractInit as AbstractInit
from ._schemes import Balanced as Balanced
from ._schemes import Constant as Constant
from ._schemes import Custom as Custom
from ._schemes import Gaussian as Gaussian
from ._schemes import Module as Module
from ._schemes import Orthogonal as Orthogonal
from ._schemes import RowSpace as RowSpace
from ._schemes import Spectral as Spectral
from ._schemes import get_init as get_init
