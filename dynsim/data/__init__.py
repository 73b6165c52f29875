"""Data sets and deterministic generators (each with a held-out split)."""

from .._data import Dataset as Dataset
from .._data import as_dataset as as_dataset
from .._data import pairwise_independent as pairwise_independent
from .._data import regression as regression
from .._data import separable as separable
from .._data import sparse_regression as sparse_regression
from .._data import teacher_student as teacher_student
from .._data import whitened as whitened
