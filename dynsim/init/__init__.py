"""Initialization schemes, each called as `scheme(model, data, key) -> params`."""

from .._init import AbstractInit as AbstractInit
from .._init import Balanced as Balanced
from .._init import Constant as Constant
from .._init import Custom as Custom
from .._init import Gaussian as Gaussian
from .._init import Orthogonal as Orthogonal
from .._init import RowSpace as RowSpace
from .._init import Spectral as Spectral
from .._init import get_init as get_init
