"""Dynamics: how a seed's parameters evolve under training, and what is saved.

`GradientFlow` integrates dθ/dt = −∇L(θ) (diffrax per seed, or the batched loop of
`dynsim.dynamics.batched` for many seeds; `FusedTsit5` is the diffrax solver of its
per-seed Tsit5 path); `StochasticGradientFlow` integrates the SDE dθ = −∇L dt + Σ^{1/2} dW (Langevin, SGD and
label-noise diffusions); `GradientDescent` steps
θ_{k+1} = θ_k + update_k with an optax optimizer. All implement `AbstractDynamics` and
return `Trajectories`.
"""

from ._base import AbstractDynamics as AbstractDynamics
from ._fused_tsit5 import FusedTsit5 as FusedTsit5
from ._gradient_descent import GradientDescent as GradientDescent
from ._gradient_flow import GradientFlow as GradientFlow
from ._stochastic_flow import StochasticGradientFlow as StochasticGradientFlow
from ._trajectories import Trajectories as Trajectories
