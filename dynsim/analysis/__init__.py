"""Reference solutions to compare gradient-flow simulations against, and measures of them.

**References** (`_references/`: functions of the data and, for the implicit bias, of an
initialization; nothing there takes a simulation result). The solvers
(`min_l2_interpolator`, `min_l1_interpolator`, `implicit_bias_interpolator`,
`max_margin`) run once per data set in numpy/scipy float64 and return jax arrays; links,
potentials and kernels are pure jax functions (jit / vmap friendly).

**Measures** (`_measures/`: functions of a `SimulationResult`) — `distance`, `cosine`,
`support_recovery`, `sparsity`, `test_risk`, margins, `conserved_drift`, convergence
rates, the NTK and Min et al. bounds, teacher–student alignment — are vectorized over
seeds and return arrays with a leading seed axis; `summarize` turns such arrays into an
xarray ensemble summary. `homogeneity_degree` is `dynsim.models.homogeneity_degree`.
"""

from ..models import homogeneity_degree as homogeneity_degree
from ._measures._conservation import ConservedDrift as ConservedDrift
from ._measures._conservation import conserved_drift as conserved_drift
from ._measures._convergence import NTKRateBound as NTKRateBound
from ._measures._convergence import fitted_rate as fitted_rate
from ._measures._convergence import ntk_rate_bound as ntk_rate_bound
from ._measures._convergence import time_to as time_to
from ._measures._margins import SmoothedMargin as SmoothedMargin
from ._measures._margins import direction_error as direction_error
from ._measures._margins import normalized_margin as normalized_margin
from ._measures._margins import smoothed_margin as smoothed_margin
from ._measures._min_bounds import MinDistanceBound as MinDistanceBound
from ._measures._min_bounds import MinRateBound as MinRateBound
from ._measures._min_bounds import check_min_rate_bound as check_min_rate_bound
from ._measures._min_bounds import min_distance_bound as min_distance_bound
from ._measures._min_bounds import min_invariant_set as min_invariant_set
from ._measures._min_bounds import min_rate_bound as min_rate_bound
from ._measures._min_bounds import min_rate_constant as min_rate_constant
from ._measures._predictor import Sparsity as Sparsity
from ._measures._predictor import SupportRecovery as SupportRecovery
from ._measures._predictor import cosine as cosine
from ._measures._predictor import distance as distance
from ._measures._predictor import sparsity as sparsity
from ._measures._predictor import support_recovery as support_recovery
from ._measures._risk import test_risk as test_risk
from ._measures._summary import summarize as summarize
from ._measures._teacher import JacobianSpectrum as JacobianSpectrum
from ._measures._teacher import NeuronAlignment as NeuronAlignment
from ._measures._teacher import jacobian_spectrum as jacobian_spectrum
from ._measures._teacher import neuron_alignment as neuron_alignment
from ._references._implicit_bias import ImplicitBiasSolution as ImplicitBiasSolution
from ._references._implicit_bias import implicit_bias_interpolator as implicit_bias_interpolator
from ._references._implicit_bias import implicit_bias_solve as implicit_bias_solve
from ._references._kernels import empirical_ntk as empirical_ntk
from ._references._kernels import kernel_interpolator as kernel_interpolator
from ._references._kernels import kernel_predict as kernel_predict
from ._references._kernels import relu_gaussian_correlation as relu_gaussian_correlation
from ._references._kernels import relu_ntk as relu_ntk
from ._references._links import DiagonalLink as DiagonalLink
from ._references._links import diagonal_link as diagonal_link
from ._references._links import link_inverse as link_inverse
from ._references._links import link_potential as link_potential
from ._references._links import q_alpha as q_alpha
from ._references._links import q_alpha_grad as q_alpha_grad
from ._references._max_margin import MaxMarginResult as MaxMarginResult
from ._references._max_margin import max_margin as max_margin
from ._references._min_norm import min_l1_interpolator as min_l1_interpolator
from ._references._min_norm import min_l2_interpolator as min_l2_interpolator

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
