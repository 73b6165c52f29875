"""The type and range of every field a study file may set, checked before anything is built.

`SCHEMAS[section][kind]` maps each keyword of a constructor that a study file may give
to a `Field`. `check_fields` applies it to one section of a resolved sweep point; a value
of the wrong type or out of range is a `StudyError` naming the field and where it was
given (file line, `--set`, or the sweep entry). Numbers are checked here (type,
finiteness, sign); what only the constructors can judge (`k ≤ d`, a known activation
name) they check afterwards. Integers are accepted where a float belongs (and become
floats); floats are refused where an integer belongs (`steps = 1e3` is a float in TOML).
"""

import dataclasses
import math
from typing import Any


def describe_value(value: Any) -> str:
    """`'abc' (a string)`, `2.5 (a float)`, …: a value and its TOML type, for messages."""
    if isinstance(value, bool):
        kind = "a boolean"
    elif isinstance(value, int):
        kind = "an integer"
    elif isinstance(value, float):
        kind = "a float"
    elif isinstance(value, str):
        kind = "a string"
    elif isinstance(value, list):
        kind = "a list"
    elif isinstance(value, dict):
        kind = "a table"
    else:
        kind = type(value).__name__
    return f"{value!r} ({kind})"


class Field:
    """A field's type and range: `check(value)` -> (normalized value, problem or None)."""

    def describe(self) -> str:
        raise NotImplementedError

    def check(self, value: Any) -> tuple[Any, str | None]:
        raise NotImplementedError

    def _bad(self, value: Any) -> tuple[Any, str]:
        return value, f"must be {self.describe()}; got {describe_value(value)}"


@dataclasses.dataclass(frozen=True)
class Number(Field):
    """A finite number (`integer`: an integer), optionally bounded below by `low`."""

    integer: bool = False
    low: int | float | None = None
    strict: bool = False  # low itself excluded
    high: int | None = None  # for integers: inclusive upper bound

    def describe(self) -> str:
        at_most = "" if self.high is None else f" (at most {_HIGH_TEXT.get(self.high, self.high)})"
        return self._lower() + at_most

    def _lower(self) -> str:
        noun = "integer" if self.integer else "number"
        if self.integer and self.low == 1 and not self.strict:
            return "a positive integer"
        if self.low == 0:
            return f"a positive {noun}" if self.strict else f"a non-negative {noun}"
        if self.low is None:
            return "an integer" if self.integer else "a finite number"
        article = "an" if self.integer else "a"
        return f"{article} {noun} {'>' if self.strict else '>='} {self.low:g}"

    def check(self, value: Any) -> tuple[Any, str | None]:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return self._bad(value)
        if self.integer and not isinstance(value, int):
            return self._bad(value)
        if not self.integer:
            value = float(value)
            if not math.isfinite(value):
                return self._bad(value)
        if self.low is not None and (value < self.low or (self.strict and value == self.low)):
            return self._bad(value)
        if self.high is not None and value > self.high:
            return self._bad(value)
        return value, None


@dataclasses.dataclass(frozen=True)
class Bool(Field):
    def describe(self) -> str:
        return "true or false"

    def check(self, value: Any) -> tuple[Any, str | None]:
        return (value, None) if isinstance(value, bool) else self._bad(value)


@dataclasses.dataclass(frozen=True)
class Str(Field):
    """A string; with `choices`, one of them."""

    choices: tuple = ()

    def describe(self) -> str:
        if len(self.choices) == 1:
            return repr(self.choices[0])
        return f"one of {', '.join(map(repr, self.choices))}" if self.choices else "a string"

    def check(self, value: Any) -> tuple[Any, str | None]:
        if not isinstance(value, str) or (self.choices and value not in self.choices):
            return self._bad(value)
        return value, None


@dataclasses.dataclass(frozen=True)
class ListOf(Field):
    """A list of `item`s, at least `min_len` long."""

    item: Field
    min_len: int = 1

    def describe(self) -> str:
        empty = "a" if self.min_len == 0 else "a non-empty"
        return f"{empty} list, each item {self.item.describe()}"

    def check(self, value: Any) -> tuple[Any, str | None]:
        if not isinstance(value, list) or len(value) < self.min_len:
            return self._bad(value)
        out = []
        for i, v in enumerate(value):
            v, problem = self.item.check(v)
            if problem:
                return value, f"item {i} {problem}"
            out.append(v)
        return out, None


@dataclasses.dataclass(frozen=True)
class Either(Field):
    """The first of `options` that accepts the value."""

    options: tuple

    def describe(self) -> str:
        return " or ".join(o.describe() for o in self.options)

    def check(self, value: Any) -> tuple[Any, str | None]:
        for option in self.options:
            v, problem = option.check(value)
            if problem is None:
                return v, None
        return self._bad(value)


@dataclasses.dataclass(frozen=True)
class Table(Field):
    """A TOML table (checked by whoever builds from it, e.g. `data.teacher`); `section`:
    the study section whose fields it takes (`"model"` for a teacher)."""

    what: str = "a table"
    section: str | None = None

    def describe(self) -> str:
        return self.what

    def check(self, value: Any) -> tuple[Any, str | None]:
        return (value, None) if isinstance(value, dict) else self._bad(value)


@dataclasses.dataclass(frozen=True)
class NotInStudies(Field):
    """A keyword the constructor has but a study file cannot express."""

    reason: str = "not configurable from a study file"

    def describe(self) -> str:
        return self.reason

    def check(self, value: Any) -> tuple[Any, str | None]:
        return value, self.reason


# Counts (sizes, steps, seeds) are int32 inside JAX; the core's bound (`check_count`).
MAX_COUNT = 2**31 - 2
# PRNG seeds: `jax.random.key(seed)` keeps only the low 32 bits when x64 is off (float32
# studies), so larger seeds would silently repeat smaller ones.
MAX_SEED = 2**32 - 1
_HIGH_TEXT = {MAX_COUNT: "2**31 - 2", MAX_SEED: "2**32 - 1"}
POS_INT = Number(integer=True, low=1, high=MAX_COUNT)
PRECISIONS = ("float32", "float64")
NONNEG_INT = Number(integer=True, low=0, high=MAX_COUNT)
POS = Number(low=0, strict=True)
NONNEG = Number(low=0)
REAL = Number()
BOOL = Bool()
STR = Str()
SEED = Number(integer=True, low=0, high=MAX_SEED)  # a PRNG seed

MODELS = {
    "LinearNet": {"in_dim": POS_INT, "hidden": ListOf(POS_INT, min_len=0),
                  "out_dim": POS_INT, "bias": BOOL},
    "DiagonalNet": {"dim": POS_INT, "parametrization": STR,
                    "depth": Number(integer=True, low=2), "dense_scale": POS},
    "TwoLayerNet": {"in_dim": POS_INT, "width": POS_INT, "activation": STR, "bias": BOOL,
                    "output_bias": BOOL, "train_outer": BOOL, "scaling": STR,
                    "leaky_slope": REAL},
    "HomogeneousNet": {"in_dim": POS_INT, "hidden": ListOf(POS_INT), "out_dim": POS_INT,
                       "activation": STR, "leaky_slope": REAL},
}

RUN = {
    "seeds": POS_INT, "chunk_size": POS_INT, "key": SEED, "precision": Str(PRECISIONS),
    "save_conserved": BOOL, "save_params": BOOL,
}

_CALLABLE = NotInStudies("callables cannot be given in a study file")
DATA = {
    "regression": {"seed": SEED, "n": POS_INT, "d": POS_INT, "n_test": NONNEG_INT,
                   "noise": NONNEG, "out_dim": POS_INT},
    "sparse_regression": {"seed": SEED, "n": POS_INT, "d": POS_INT, "k": POS_INT,
                          "n_test": NONNEG_INT, "noise": NONNEG},
    "teacher_student": {"seed": SEED, "n": POS_INT,
                        "teacher": Table("a table {kind = ..., ...} describing a model",
                                         section="model"),
                        "teacher_params": NotInStudies(
                            "not configurable from a study file (drawn with teacher_std)"),
                        "n_test": NONNEG_INT, "noise": NONNEG, "teacher_std": POS},
    "separable": {"seed": SEED, "n": POS_INT, "d": POS_INT, "margin": POS,
                  "n_test": NONNEG_INT},
    "whitened": {"seed": SEED, "n": POS_INT, "d": POS_INT, "singular_values": ListOf(POS),
                 "out_dim": POS_INT},
    "pairwise_independent": {"seed": SEED, "n": POS_INT, "d": POS_INT, "n_test": NONNEG_INT,
                             "target": _CALLABLE, "min_angle": NONNEG},
}

_STD = Either((NONNEG, ListOf(NONNEG)))  # one standard deviation, or one per layer
INITS = {
    "Gaussian": {"std": _STD, "width_exponent": REAL},
    "Constant": {"alpha": POS, "shape": Either((POS, ListOf(POS))), "dense_init": REAL},
    "Balanced": {"std": NONNEG, "ratio": POS},
    "Spectral": {"a0": Either((REAL, ListOf(REAL))), "b0": Either((REAL, ListOf(REAL)))},
    "RowSpace": {"std": _STD, "width_exponent": REAL},
    "Orthogonal": {"gain": REAL},
}

LOSSES = {"reduction": STR}  # every loss takes only `reduction`

_NOT_IN_STUDIES = NotInStudies()
_BLOCK_SIZE = Either((POS_INT, Str(("auto",))))
DYNAMICS = {
    "gradient_flow": {
        "t1": POS, "ts": ListOf(NONNEG), "n_save": POS_INT, "solver": STR, "rtol": POS,
        "atol": POS, "dt0": POS, "max_steps": POS_INT, "stop_loss": POS,
        "stop_grad_norm": POS, "divergence": POS, "log_time": BOOL,
        "adjoint": _NOT_IN_STUDIES, "batched": BOOL,
        "block_size": _BLOCK_SIZE,
    },
    "gradient_descent": {
        "learning_rate": POS, "steps": POS_INT, "optimizer": STR,
        "save_steps": ListOf(NONNEG_INT), "n_save": POS_INT, "projection": _NOT_IN_STUDIES,
        "batch_size": POS_INT, "label_noise": NONNEG, "stop_loss": POS,
        "stop_grad_norm": POS, "divergence": POS, "adjoint": _NOT_IN_STUDIES,
        "block_size": _BLOCK_SIZE,
    },
    "stochastic_flow": {
        "t1": POS, "dt0": POS, "noise": Str(("isotropic", "sgd", "label")),
        "temperature": NONNEG, "learning_rate": POS, "batch_size": POS_INT,
        "label_noise": NONNEG, "ts": ListOf(NONNEG), "n_save": POS_INT, "solver": STR,
        "brownian": Str(("steps", "tree")), "brownian_tol": POS, "stop_loss": POS,
        "stop_grad_norm": POS, "divergence": POS, "adjoint": _NOT_IN_STUDIES,
        "block_size": _BLOCK_SIZE,
    },
}


def check_fields(schema: dict, kwargs: dict, error) -> dict:
    """`kwargs` with every value checked against `schema` (and normalized).

    `error(key, message)` builds the exception for a bad value of `key`. A keyword the
    schema does not know is refused (the constructors' signatures decide what is
    unknown before this runs; `tests/test_study_validation.py` checks that the schemas
    cover every keyword they accept).
    """
    out = {}
    for key, value in kwargs.items():
        spec = schema.get(key)
        if spec is None:
            raise error(key, "not configurable from a study file")
        value, problem = spec.check(value)
        if problem:
            raise error(key, problem)
        out[key] = value
    return out
