r"""The exact population loss of a two-layer student against a two-layer teacher.

With Gaussian inputs x ~ N(0, I_d), a student f(x) = Σ_j a_j σ(w_jᵀx) and a teacher
f*(x) = Σ_k a*_k σ(w*_kᵀx),

    L = ½ E[(f(x) − f*(x))²]
      = ½ Σ_{jl} a_j a_l κ(w_j, w_l) − Σ_{jk} a_j a*_k κ(w_j, w*_k) + ½ Σ_{kl} a*_k a*_l κ(w*_k, w*_l),

with κ(u, v) = E[σ(uᵀx) σ(vᵀx)] in closed form:

- ReLU, the arc-cosine kernel of degree 1 (Cho & Saul, 2009):
  κ(u, v) = ‖u‖‖v‖ (sin θ + (π − θ) cos θ) / (2π), θ the angle between u and v;
- erf (σ = `jax.scipy.special.erf`; Williams, 1998):
  κ(u, v) = (2/π) arcsin(2uᵀv / √((1 + 2‖u‖²)(1 + 2‖v‖²))).

**ReLU at θ = 0.** Written with A = ‖u‖², B = ‖v‖², p = uᵀv, S = √(AB − p²) = ‖u‖‖v‖ sin θ,
κ = (S + (π − θ) p) / (2π) with θ = atan2(S, p). Its derivatives are finite everywhere,
∂κ/∂p = (π − θ)/(2π), ∂κ/∂A = S/(4πA), ∂κ/∂B = S/(4πB), so ∇_u κ = ((π − θ) v + ‖v‖ sin θ û)/(2π),
but autodiff of S and θ separately gives ∞ − ∞ at parallel u, v: the kernel has these
derivatives written out (`jax.custom_jvp`). At u = 0 (or v = 0) κ = 0 and its derivative
is taken as 0, autodiff's relu′(0) = 0 under the expectation. Second derivatives
(Hessian–vector products) are autodiff of that rule: ∂²κ/∂θ² is unbounded as θ → 0, and
exactly at θ = 0 it is not finite.
"""

import inspect
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float, Params, Scalar
from ..data import Dataset
from ._objective import AbstractObjective

POPULATION_ACTIVATIONS = ("relu", "erf")


@jax.custom_jvp
def _relu_gram(A: Array, B: Array, P: Array) -> Array:
    """κ from A = ‖u‖², B = ‖v‖², p = uᵀv (arrays of one shape)."""
    S = jnp.sqrt(jnp.maximum(A * B - P * P, 0.0))
    theta = jnp.arctan2(S, P)
    return (S + (jnp.pi - theta) * P) / (2 * jnp.pi)


@_relu_gram.defjvp
def _relu_gram_jvp(primals, tangents):
    A, B, P = primals
    dA, dB, dP = tangents
    S = jnp.sqrt(jnp.maximum(A * B - P * P, 0.0))
    theta = jnp.arctan2(S, P)
    out = (S + (jnp.pi - theta) * P) / (2 * jnp.pi)
    nonzero = (A > 0) & (B > 0)
    safe_A = jnp.where(A > 0, A, 1.0)
    safe_B = jnp.where(B > 0, B, 1.0)
    c_p = jnp.where(nonzero, (jnp.pi - theta) / (2 * jnp.pi), 0.0)
    c_A = jnp.where(nonzero, S / (4 * jnp.pi * safe_A), 0.0)
    c_B = jnp.where(nonzero, S / (4 * jnp.pi * safe_B), 0.0)
    return out, c_p * dP + c_A * dA + c_B * dB


def kernel(
    activation: str, U: Float[Array, "m d"], V: Float[Array, "k d"] | None = None
) -> Float[Array, "m k"]:
    """κ(u_j, v_l) = E_{x~N(0,I)}[σ(u_jᵀx) σ(v_lᵀx)] for all rows u_j of U and v_l of V
    (V = None: the Gram matrix of U with itself)."""
    same = V is None
    V = U if same else V
    A = jnp.sum(U * U, axis=1)[:, None]
    B = jnp.sum(V * V, axis=1)[None, :]
    P = U @ V.T
    if activation == "relu":
        A, B = jnp.broadcast_to(A, P.shape), jnp.broadcast_to(B, P.shape)
        if not same:
            return _relu_gram(A, B, P)
        # κ(u, u) = ‖u‖²/2 on the diagonal, where θ = 0 always: the general form there
        # has finite first but infinite second derivatives (Hessians of L would be NaN)
        eye = jnp.eye(P.shape[0], dtype=bool)
        off = _relu_gram(jnp.where(eye, 1.0, A), jnp.where(eye, 1.0, B), jnp.where(eye, 0.0, P))
        return jnp.where(eye, 0.5 * A, off)
    if activation == "erf":
        return (2 / jnp.pi) * jnp.arcsin(2 * P / jnp.sqrt((1 + 2 * A) * (1 + 2 * B)))
    raise ValueError(
        f"activation: the population loss has closed forms for {POPULATION_ACTIVATIONS}; "
        f"got {activation!r}"
    )


class TeacherStudentPopulation(AbstractObjective):
    r"""The exact population loss L = ½ E_{x~N(0,I_d)}[(f(x) − f*(x))²] (module notes).

    The student is one of

    - a `TwoLayerNet(d, m, activation, bias=False, output_bias=False)`,
      f(x) = s·Σ_j a_j σ(w_jᵀx) with its scaling s (any `scaling`; `train_outer=False`
      keeps a fixed);
    - an `Equinox(make)` whose module is a one-hidden-layer `eqx.nn.MLP(d, out, m, 1,
      activation=σ, use_bias=False, use_final_bias=False)` with `out` = `"scalar"` or 1,
      the default (identity) final activation and σ = `jax.nn.relu` (`"relu"`) or
      `jax.scipy.special.erf` (`"erf"`): f(x) = Σ_j a_j σ(w_jᵀx) with W = `layers[0].weight`
      (m, d) and a = `layers[1].weight` (1, m) read from the module (both trained).

    The teacher is f*(x) = Σ_k a*_k σ(w*_kᵀx).

    L is the n → ∞ limit of the mean squared loss `SquaredLoss(reduction="mean")`
    on noiseless teacher data (so time is on that loss's clock). It does not read the
    training data: `simulate` still takes a data set, which sets the parameters' dtype,
    is what data-dependent inits see, and whose test split `analysis.test_risk` uses
    with `per_sample` = ½(f − y)² (a Monte-Carlo estimate of L on teacher data from
    `dynsim.data.teacher_student`). Being no sum over samples (`reduction=None`), it
    refuses minibatch SGD.

    **Arguments:**

    - `teacher`: `{"w": (k, d), "a": (k,)}`; a pair `(TwoLayerNet, params)` of a
      teacher network without biases (its scaling folded into a*); a pair
      `(Equinox, params)` or an `eqx.nn.MLP` module of the student form above.
    - `activation`: `"relu"` or `"erf"`, shared by student and teacher.

    **Raises:** `ValueError` naming `teacher` or `activation` here, and `loss` (before
    anything compiles, from `check_model`) for a student it cannot handle: hidden or
    output biases (x ↦ wᵀx + b is not a centred Gaussian projection), another
    activation than `activation` (an equinox module's activation must be that very
    function, a wrapper is not recognized), an MLP of depth ≠ 1, with `scan=True`, a
    non-identity final activation or an output of size > 1, another module type, or
    models other than `TwoLayerNet` and `Equinox`.
    """

    teacher_w: Float[Array, "k d"]
    teacher_a: Float[Array, " k"]
    activation: str = eqx.field(static=True)
    reduction = None

    def __init__(self, teacher: Any, activation: str = "relu"):
        if activation not in POPULATION_ACTIVATIONS:
            raise ValueError(
                f"activation: the population loss has closed forms for "
                f"{POPULATION_ACTIVATIONS}; got {activation!r}"
            )
        from ..models import Equinox

        if isinstance(teacher, tuple) and len(teacher) == 2 and isinstance(teacher[0], Equinox):
            net, params = teacher
            module = eqx.combine(params, net.static)
            _check_mlp("teacher", module, activation)
            w, a = _mlp_weights(module)
        elif isinstance(teacher, tuple) and len(teacher) == 2:
            net, params = teacher
            _check_two_layer("teacher", net, activation)
            w, a = params["w"], net.scale * jnp.asarray(params["a"])
        elif isinstance(teacher, eqx.nn.MLP):
            _check_mlp("teacher", teacher, activation)
            w, a = _mlp_weights(teacher)
        elif isinstance(teacher, Mapping) and set(teacher) == {"w", "a"}:
            w, a = teacher["w"], teacher["a"]
        else:
            raise ValueError(
                "teacher: expected {'w': (k, d), 'a': (k,)}, a pair (TwoLayerNet, params) or "
                f"(Equinox, params), or an eqx.nn.MLP; got {type(teacher).__name__}"
            )
        w, a = jnp.asarray(w), jnp.asarray(a)
        if w.ndim != 2 or a.shape != w.shape[:1]:
            raise ValueError(
                f"teacher: w must be (k, d) and a (k,); got {w.shape} and {a.shape}"
            )
        if not (jnp.issubdtype(w.dtype, jnp.floating) and jnp.issubdtype(a.dtype, jnp.floating)):
            raise ValueError(f"teacher: w and a must be real floating arrays; got {w.dtype}, {a.dtype}")
        if not isinstance(w, jax.core.Tracer) and not (
            np.all(np.isfinite(np.asarray(w))) and np.all(np.isfinite(np.asarray(a)))
        ):
            raise ValueError("teacher: w and a must be finite")
        self.teacher_w, self.teacher_a = w, a
        self.activation = activation

    def check_model(self, model):
        from ..models import Equinox

        if isinstance(model, Equinox):
            # the module's structure with ShapeDtypeStruct leaves (nothing runs)
            module = eqx.combine(model.param_shapes(), model.static)
            _check_mlp("loss", module, self.activation, student=True)
            in_dim = module.layers[0].weight.shape[1]
        else:
            _check_two_layer("loss", model, self.activation, student=True)
            in_dim = model.in_dim
        if in_dim != self.teacher_w.shape[1]:
            raise ValueError(
                f"loss: the teacher has input dimension {self.teacher_w.shape[1]}, the "
                f"student in_dim={in_dim}"
            )

    def __call__(self, model, params: Params, data: Dataset | None = None) -> Scalar:
        from ..models import Equinox

        self.check_model(model)
        if isinstance(model, Equinox):
            w, a = _mlp_weights(model.network(params))
        else:
            w = params["w"]
            a = model.scale * params["a"]
            if not model.train_outer:
                a = jax.lax.stop_gradient(a)
        wt = self.teacher_w.astype(w.dtype)
        at = self.teacher_a.astype(w.dtype)
        ss = a @ kernel(self.activation, w) @ a
        st = a @ kernel(self.activation, w, wt) @ at
        tt = at @ kernel(self.activation, wt) @ at
        return 0.5 * ss - st + 0.5 * tt

    def per_sample(self, pred, target):
        """½(f(x) − y)² per sample: its mean over teacher data estimates L."""
        return 0.5 * jnp.square(pred - target)


def _mlp_weights(module: eqx.nn.MLP) -> tuple[Array, Array]:
    """(W, a): the hidden weights (m, d) and output weights (m,) of a checked MLP."""
    return module.layers[0].weight, jnp.reshape(module.layers[1].weight, (-1,))


def _check_mlp(name: str, net: Any, activation: str, student: bool = False) -> None:
    """`net` must be `eqx.nn.MLP(d, "scalar" or 1, m, 1, activation=σ, use_bias=False,
    use_final_bias=False)` with the default final activation: f(x) = Σ_j a_j σ(w_jᵀx)."""
    from ..models._activations import activation_fn

    role = "student" if student else "teacher"
    what = "the student's module (from make)" if student else "the teacher module"
    if type(net) is not eqx.nn.MLP:
        raise ValueError(
            f"{name}: TeacherStudentPopulation needs an eqx.nn.MLP {role} of depth 1; "
            f"{what} is a {type(net).__name__}"
        )
    if net.depth != 1 or getattr(net, "scan", False) or len(net.layers) != 2:
        raise ValueError(
            f"{name}: TeacherStudentPopulation needs a one-hidden-layer {role} "
            f"(eqx.nn.MLP(..., depth=1), scan=False); {what} has depth={net.depth}"
        )
    if net.use_bias or net.use_final_bias:
        raise ValueError(
            f"{name}: TeacherStudentPopulation needs a {role} without biases "
            f"(eqx.nn.MLP(..., use_bias=False, use_final_bias=False)); {what} has "
            f"use_bias={net.use_bias}, use_final_bias={net.use_final_bias}"
        )
    if net.in_size == "scalar":
        raise ValueError(
            f"{name}: TeacherStudentPopulation needs a {role} with vector inputs "
            f"(an integer in_size d); {what} has in_size='scalar'"
        )
    if net.out_size not in ("scalar", 1):
        raise ValueError(
            f"{name}: TeacherStudentPopulation needs a {role} with one output "
            f"(out_size 'scalar' or 1); {what} has out_size={net.out_size!r}"
        )
    sigma = activation_fn(activation)
    if net.activation is not sigma:
        raise ValueError(
            f"{name}: the {role}'s activation is {net.activation!r}, the population loss "
            f"{activation!r} needs exactly {sigma!r} (jax.nn.relu or jax.scipy.special.erf)"
        )
    identity = inspect.signature(eqx.nn.MLP.__init__).parameters["final_activation"].default
    if net.final_activation is not identity:
        raise ValueError(
            f"{name}: TeacherStudentPopulation needs a {role} with the identity final "
            f"activation (eqx.nn.MLP's default); {what} has {net.final_activation!r}"
        )


def _check_two_layer(name: str, net: Any, activation: str, student: bool = False) -> None:
    from ..models import TwoLayerNet

    role = "student" if student else "teacher"
    if not isinstance(net, TwoLayerNet):
        extra = " or an Equinox(eqx.nn.MLP) of depth 1" if student else ""
        raise ValueError(
            f"{name}: TeacherStudentPopulation needs a TwoLayerNet{extra} {role}; "
            f"got {type(net).__name__}"
        )
    if net.bias or net.output_bias:
        raise ValueError(
            f"{name}: TeacherStudentPopulation needs a {role} without biases "
            "(TwoLayerNet(..., bias=False, output_bias=False))"
        )
    if net.activation != activation:
        raise ValueError(
            f"{name}: the {role}'s activation is {net.activation!r}, the population loss's "
            f"{activation!r}"
        )
