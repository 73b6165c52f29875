"""The degree of positive homogeneity of a model in its parameters."""

from ._activations import activation_degree
from ._diagonal import DiagonalNet
from ._homogeneous import HomogeneousNet
from ._linear import LinearNet
from ._two_layer import TwoLayerNet


def homogeneity_degree(model) -> int:
    """Degree L of positive homogeneity of `model` in its parameters: f(cθ; x) = c^L f(θ; x).

    `HomogeneousNet`: `degree` (its depth). `LinearNet` without biases: depth (1 for a
    linear model). `TwoLayerNet` with a k-homogeneous activation (relu, leaky relu,
    linear: k = 1; quadratic: k = 2) and no output bias: k + 1 (hidden biases are
    parameters, so a σ(wᵀx + b) stays homogeneous). `DiagonalNet`: 2 (`"uu-vv"`, `"uv"`)
    or D (`"depth"`).

    **Raises:** `ValueError` for models that are not homogeneous.
    """
    if isinstance(model, HomogeneousNet):
        return int(model.degree)
    if isinstance(model, LinearNet) and not model.bias:
        return int(model.depth)
    if isinstance(model, TwoLayerNet) and not model.output_bias and model.train_outer:
        k = activation_degree(model.activation)
        if k is not None:
            return k + 1
    if isinstance(model, DiagonalNet) and model.parametrization in ("uu-vv", "uv", "depth"):
        return 2 if model.parametrization != "depth" else int(model.depth)
    raise ValueError(f"model: {model!r} is not positively homogeneous in its parameters")
