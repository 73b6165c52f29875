"""Models: parametrizations f(θ; x) studied by the theory of gradient flow."""

from ._activations import ACTIVATIONS as ACTIVATIONS
from ._base import AbstractModel as AbstractModel
from ._diagonal import DiagonalNet as DiagonalNet
from ._homogeneity import homogeneity_degree as homogeneity_degree
from ._homogeneous import HomogeneousNet as HomogeneousNet
from ._linear import LinearNet as LinearNet
from ._two_layer import TwoLayerNet as TwoLayerNet
