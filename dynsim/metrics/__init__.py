r"""Built-in metrics: functions of one seed's parameters and the `Problem`, saved along a
trajectory with `simulate(..., metrics={name: metric})`.

Each public function returns a metric, a callable `fn(params, problem)` of one seed
(`simulate` vmaps it over the seeds of a chunk):

- `sharpness(iters, method)`: λ_max(∇²L(θ)), the top Hessian eigenvalue (compare with
  2/η, the stability threshold of GD with step η).
- `ntk_min_eig()`, `ntk_max_eig()`: extreme eigenvalues of the empirical NTK K = J Jᵀ.
- `param_norm()`: ‖θ‖₂; `distance_to(reference)`: ‖θ − θ_ref‖₂.

User metrics may be `fn(params)` or `fn(params, problem)` (`dynsim._problem.metric_arity`
decides); `problem` exposes `model`, `X`, `y`, `loss`, `value(params)` (L(θ)) and
`grad(params)` (∇L(θ)).
"""

from ._base import AbstractMetric as AbstractMetric
from ._basic import distance_to as distance_to
from ._basic import param_norm as param_norm
from ._hessian import sharpness as sharpness
from ._ntk import ntk_max_eig as ntk_max_eig
from ._ntk import ntk_min_eig as ntk_min_eig

__all__ = [
    "AbstractMetric",
    "distance_to",
    "ntk_max_eig",
    "ntk_min_eig",
    "param_norm",
    "sharpness",
]
