"""Data sets and deterministic generators (each with a held-out split)."""

from ._datasets import Dataset as Dataset
from ._datasets import as_dataset as as_dataset
from ._datasets import pairwise_independent as pairwise_independent
from ._datasets import regression as regression
from ._datasets import separable as separable
from ._datasets import sparse_regression as sparse_regression
from ._datasets import teacher_student as teacher_student
from ._datasets import whitened as whitened
