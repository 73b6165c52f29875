"""Reference solutions and kernels to compare gradient-flow simulations against.

Solvers (`min_l2_interpolator`, `min_l1_interpolator`, `implicit_bias_interpolator`,
`max_margin`) run once per data set in numpy/scipy float64 and return jax arrays;
links, potentials and kernels are pure jax functions (jit / vmap friendly).

Measures of a `SimulationResult` (`distance`, `cosine`, `support_recovery`, `sparsity`,
`test_risk`, margins, `conserved_drift`, convergence rates, the NTK and Min et al.
bounds, teacher–student alignment) are vectorized over seeds and return arrays with a
leading seed axis; `summarize` turns such arrays into an xarray ensemble summary.
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
from ._convergence import (
    NTKRateBound as NTKRateBound,
    fitted_rate as fitted_rate,
    ntk_rate_bound as ntk_rate_bound,
    time_to as time_to,
)
from ._margins import (
    SmoothedMargin as SmoothedMargin,
    direction_error as direction_error,
    homogeneity_degree as homogeneity_degree,
    normalized_margin as normalized_margin,
    smoothed_margin as smoothed_margin,
)
from ._measures import (
    ConservedDrift as ConservedDrift,
    Sparsity as Sparsity,
    SupportRecovery as SupportRecovery,
    conserved_drift as conserved_drift,
    cosine as cosine,
    distance as distance,
    sparsity as sparsity,
    support_recovery as support_recovery,
    test_risk as test_risk,
)
from ._min_bounds import (
    MinDistanceBound as MinDistanceBound,
    MinRateBound as MinRateBound,
    check_min_rate_bound as check_min_rate_bound,
    min_distance_bound as min_distance_bound,
    min_invariant_set as min_invariant_set,
    min_rate_bound as min_rate_bound,
    min_rate_constant as min_rate_constant,
)
from ._summary import summarize as summarize
from ._teacher import (
    JacobianSpectrum as JacobianSpectrum,
    NeuronAlignment as NeuronAlignment,
    jacobian_spectrum as jacobian_spectrum,
    neuron_alignment as neuron_alignment,
)
from ._references import (
    min_l1_interpolator as min_l1_interpolator,
    min_l2_interpolator as min_l2_interpolator,
)

__all__ = [
    "ConservedDrift",
    "DiagonalLink",
    "ImplicitBiasSolution",
    "JacobianSpectrum",
    "MaxMarginResult",
    "MinDistanceBound",
    "MinRateBound",
    "NTKRateBound",
    "NeuronAlignment",
    "SmoothedMargin",
    "Sparsity",
    "SupportRecovery",
    "check_min_rate_bound",
    "conserved_drift",
    "cosine",
    "diagonal_link",
    "direction_error",
    "distance",
    "empirical_ntk",
    "fitted_rate",
    "homogeneity_degree",
    "implicit_bias_interpolator",
    "implicit_bias_solve",
    "jacobian_spectrum",
    "kernel_interpolator",
    "kernel_predict",
    "link_inverse",
    "link_potential",
    "max_margin",
    "min_distance_bound",
    "min_invariant_set",
    "min_l1_interpolator",
    "min_l2_interpolator",
    "min_rate_bound",
    "min_rate_constant",
    "neuron_alignment",
    "normalized_margin",
    "ntk_rate_bound",
    "q_alpha",
    "q_alpha_grad",
    "relu_gaussian_correlation",
    "relu_ntk",
    "smoothed_margin",
    "sparsity",
    "summarize",
    "support_recovery",
    "test_risk",
    "time_to",
]
