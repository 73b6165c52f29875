"""Reference solutions and kernels to compare gradient-flow simulations against.

Solvers (`min_l2_interpolator`, `min_l1_interpolator`, `implicit_bias_interpolator`,
`max_margin`) run once per data set in numpy/scipy float64 and return jax arrays;
links, potentials and kernels are pure jax functions (jit / vmap friendly).
"""

from ._implicit_bias import (
    ImplicitBiasSolution as ImplicitBiasSolution,
    implicit_bias_interpolator as implicit_bias_interpolator,
    implicit_bias_solve as implicit_bias_solve,
)
from ._kernels import (
    empirical_ntk as empirical_ntk,
    kernel_interpolator as kernel_interpolator,
    kernel_predict as kernel_predict,
    relu_gaussian_correlation as relu_gaussian_correlation,
    relu_ntk as relu_ntk,
)
from ._links import (
    DiagonalLink as DiagonalLink,
    diagonal_link as diagonal_link,
    link_inverse as link_inverse,
    link_potential as link_potential,
    q_alpha as q_alpha,
    q_alpha_grad as q_alpha_grad,
)
from ._margin import MaxMarginResult as MaxMarginResult, max_margin as max_margin
from ._references import (
    min_l1_interpolator as min_l1_interpolator,
    min_l2_interpolator as min_l2_interpolator,
)

__all__ = [
    "DiagonalLink",
    "ImplicitBiasSolution",
    "MaxMarginResult",
    "diagonal_link",
    "empirical_ntk",
    "implicit_bias_interpolator",
    "implicit_bias_solve",
    "kernel_interpolator",
    "kernel_predict",
    "link_inverse",
    "link_potential",
    "max_margin",
    "min_l1_interpolator",
    "min_l2_interpolator",
    "q_alpha",
    "q_alpha_grad",
    "relu_gaussian_correlation",
    "relu_ntk",
]
