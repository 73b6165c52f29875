"""Models: parametrizations f(θ; x) studied by the theory of gradient flow."""

from ._activations import ACTIVATIONS as ACTIVATIONS
from ._activations import Activation as Activation
from ._base import AbstractModel as AbstractModel
from ._custom import AbstractTreeModel as AbstractTreeModel
from ._custom import Custom as Custom
from ._custom import MissingModelFeature as MissingModelFeature
from ._diagonal import DiagonalNet as DiagonalNet
from ._equinox import Equinox as Equinox
from ._homogeneity import homogeneity_degree as homogeneity_degree
from ._homogeneous import HomogeneousNet as HomogeneousNet
from ._linear import LinearNet as LinearNet
from ._two_layer import TwoLayerNet as TwoLayerNet
