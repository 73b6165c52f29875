"""The study format, generated from its one definition: field tables and JSON schema.

Everything here is read from the definitions the study loader itself uses: the fields,
types and ranges of `_schema.py` (the `describe()` of each `Field`), the keys and
sections of `_config.py` (`TOP_KEYS`, `SECTIONS`, `SWEEPABLE`, `RUN_DEFAULTS`), the
analyses of `_analyses.py` (their definitions from its docstring), and defaults and
one-line summaries from the signatures and docstrings of the constructors a study
builds (`_build.py`). `field_tables()` is the reference part of docs/studies.md (between
its `GENERATED` markers; `python -m dynsim.study._docs docs/studies.md` rewrites it and
`tests/test_study_docs.py` checks it is current); `json_schema()` is what
`dynsim schema` prints.
"""

import dataclasses
import inspect
import re
import sys
from pathlib import Path

from .. import data as data_mod
from .. import init as init_mod
from .. import models
from ..dynamics import GradientDescent, GradientFlow, StochasticGradientFlow
from ..losses import BY_NAME
from . import _analyses
from ._analyses import ANALYSES, DEFAULT_ANALYSES
from ._build import DATA_GENERATORS, DYNAMICS_KINDS, INIT_SCHEMES, MODEL_KINDS, study_keywords
from ._config import (
    DEFAULT_MAX_CHUNK,
    RUN_DEFAULTS,
    SECTIONS,
    SWEEP_MODE_KEY,
    SWEEP_MODES,
    SWEEPABLE,
    TOP_KEYS,
)
from ._schema import (
    DATA,
    DYNAMICS,
    INITS,
    LOSSES,
    MODELS,
    RUN,
    Bool,
    Either,
    Field,
    ListOf,
    NotInStudies,
    Number,
    Str,
    Table,
)

BEGIN = "<!-- BEGIN GENERATED: python -m dynsim.study._docs docs/studies.md -->"
END = "<!-- END GENERATED -->"

_DYNAMICS_CLASSES = {"gradient_flow": GradientFlow, "gradient_descent": GradientDescent,
                     "stochastic_flow": StochasticGradientFlow}


@dataclasses.dataclass(frozen=True)
class Kind:
    """One choice of a section's selector (`[model] kind = "LinearNet"`): the
    constructor it builds, its fields and their schema."""

    name: str
    fn: object
    schema: dict
    where: str  # the constructor's public name, e.g. dynsim.models.LinearNet


def kinds() -> dict:
    """`{section: (selector key, default choice or None, [Kind, ...])}` for the sections
    that choose a constructor by name, in the order the builder knows them."""
    loss_kinds = [Kind(n, cls, LOSSES, f"dynsim.losses.{cls.__name__}")
                  for n, cls in BY_NAME.items()]
    return {
        "model": ("kind", None, [Kind(n, getattr(models, n), MODELS[n], f"dynsim.models.{n}")
                                 for n in MODEL_KINDS]),
        "data": ("generator", None, [Kind(n, getattr(data_mod, n), DATA[n],
                                          f"dynsim.data.{n}") for n in DATA_GENERATORS]),
        "init": ("scheme", None, [Kind(n, getattr(init_mod, n), INITS[n], f"dynsim.init.{n}")
                                  for n in INIT_SCHEMES]),
        "loss": ("name", "squared", loss_kinds),
        "dynamics": ("kind", None, [Kind(n, _DYNAMICS_CLASSES[n], DYNAMICS[n],
                                         f"dynsim.{_DYNAMICS_CLASSES[n].__name__}")
                                    for n in DYNAMICS_KINDS]),
    }


# ---------------------------------------------------------------- defaults and summaries


def defaults(fn) -> dict:
    """The default of each study keyword of `fn` (absent: the keyword is required)."""
    params = inspect.signature(fn).parameters
    out = {n: params[n].default for n in study_keywords(fn)
           if params[n].default is not inspect.Parameter.empty}
    if fn in (getattr(data_mod, g) for g in DATA_GENERATORS):
        out["seed"] = 0  # the builder's: the data key is jax.random.key(seed)
    return out


def toml_value(value) -> str:
    """A default as a study file writes it (Python objects as their repr)."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, (int, float)):
        return f"`{value!r}`"
    if isinstance(value, (tuple, list)):
        return "`[" + ", ".join(toml_value(v).strip("`") for v in value) + "]`"
    if callable(value) and hasattr(value, "__name__"):
        return f"`{value.__module__.split('.')[0]}.{value.__name__}`"
    return f"`{value!r}`"


def summary(obj) -> str:
    """The first line of `obj`'s docstring."""
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


_BULLET_NAMES = re.compile(r"(?:^|(?<=\s\s))((?:`\w+`(?:, | and )?)+):\s")


def argument_docs(obj) -> dict:
    """`{argument: first sentence}` from the `- `name`: ...` bullets of `obj`'s
    docstring (a bullet may name several arguments, or hold two after a double
    space)."""
    doc = inspect.getdoc(obj) or ""
    bullets, current = [], None
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.startswith("- `"):
            current = [stripped[2:]]
            bullets.append(current)
        elif current is not None and stripped and line.startswith(" "):
            current.append(stripped)
        else:
            current = None
    out = {}
    for bullet in bullets:
        text = " ".join(bullet)
        marks = list(_BULLET_NAMES.finditer(text))
        for i, m in enumerate(marks):
            body = text[m.end(): marks[i + 1].start() if i + 1 < len(marks) else None].strip()
            for name in re.findall(r"`(\w+)`", m.group(1)):
                out.setdefault(name, first_sentence(body))
    return out


def first_sentence(text: str, limit: int = 160) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    m = re.search(r"(?<!e\.g)(?<!i\.e)(?<!\bvs)\.(\s|$)", text)
    if m:
        text = text[: m.start() + 1]
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + " …"
    return text


def analysis_docs() -> dict:
    """`{analysis: definition}` from `_analyses.py`'s docstring."""
    out, name = {}, None
    for line in (_analyses.__doc__ or "").splitlines():
        m = re.match(r"- `(\w+)`: (.*)", line)
        if m:
            name = m.group(1)
            out[name] = m.group(2)
        elif name and line.startswith("  ") and line.strip():
            out[name] += " " + line.strip()
        else:
            name = None
    return out


# ---------------------------------------------------------------- markdown


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _type(field: Field) -> str:
    text = field.describe()
    if isinstance(field, Table) and field.section:
        text = f"a [{field.section}] table (inline: {{kind = ..., ...}})"
    return _cell(text)


def _table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    out = ["| field | type | default | meaning |", "|---|---|---|---|"]
    out += [f"| `{f}` | {t} | {d} | {_cell(m)} |" for f, t, d, m in rows]
    return out


def _kind_fields(kind: Kind) -> tuple[list, list]:
    """The rows of a kind's table, and the keywords a study file cannot set."""
    dflt, docs = defaults(kind.fn), argument_docs(kind.fn)
    if "seed" in kind.schema:  # a data generator's key, given in the file as a seed
        docs.setdefault("seed", "the data set's PRNG seed: its key is `jax.random.key(seed)`.")
    rows, not_settable = [], []
    keywords = study_keywords(kind.fn)
    for name in [*kind.schema, *(k for k in keywords if k not in kind.schema)]:
        spec = kind.schema.get(name)
        if spec is None or isinstance(spec, NotInStudies):
            not_settable.append(name)
            continue
        if name not in dflt:
            default = "required"
        elif isinstance(spec, Str) and not isinstance(dflt[name], str | None):
            # an object the file names by a string (solver = "Tsit5", optimizer = "sgd")
            value = dflt[name]
            default = toml_value(getattr(value, "__name__", type(value).__name__))
        else:
            default = toml_value(dflt[name])
        rows.append((name, _type(spec), default, docs.get(name, "")))
    return rows, not_settable


def field_tables() -> str:
    """The reference part of docs/studies.md: every section and field, with its type,
    default and meaning."""
    out = ["## Top-level keys", ""]
    out += _table([(k, *_TOP[k]) for k in TOP_KEYS])
    out += ["", "Tables: " + ", ".join(f"`[{s}]`" for s in SECTIONS)
            + "; `[model]`, `[data]`, `[init]` and `[dynamics]` are required.", ""]
    for section, (selector, default, choices) in kinds().items():
        names = ", ".join(f'`"{k.name}"`' for k in choices)
        need = f"default `\"{default}\"`" if default else "required"
        out += [f"## `[{section}]`", "",
                f"`{selector}` ({need}) chooses one of {names}; the other fields depend "
                "on it.", ""]
        for kind in choices:
            rows, not_settable = _kind_fields(kind)
            out += [f"### `{selector} = \"{kind.name}\"`", "",
                    f"{_cell(summary(kind.fn))} (`{kind.where}`)", ""]
            out += _table(rows) if rows else ["No other fields."]
            if not_settable:
                out += ["", "Not settable from a study file: " + ", ".join(
                    f"`{n}`{_reason(kind.schema.get(n))}" for n in not_settable) + "."]
            out.append("")
    out += ["## `[run]`", "", "How the seeds of every sweep point are run and stored.", ""]
    out += _table([(k, _type(spec), _run_default(k), _RUN_MEANING[k])
                   for k, spec in RUN.items()])
    out += ["", "## `[sweep]`", "",
            "Each key is a quoted dotted path to a field of "
            + ", ".join(f"`[{s}]`" for s in SWEEPABLE)
            + " (e.g. `\"init.std\"`, `\"model.hidden\"`); its value is a non-empty list "
            "of the values to run. The sweep points are the cartesian product of the lists, "
            "in file order; each point is the study with those fields replaced (a field "
            "that is swept may be left out of its table). Each value is checked as the "
            "field itself would be.", "",
            "`mode = \"zip\"` (a plain key of `[sweep]`; default `\"grid\"`) makes the i-th "
            "point take the i-th value of every list instead, so the lists must have one "
            "length: e.g. a learning rate and a step count swept together at a fixed "
            "η·steps. `dynsim.load` gives a grid one dimension per swept key and a zip one "
            "`point` dimension with the swept values as coordinates.", "",
            "```toml", "[sweep]", "mode = \"zip\"", "\"dynamics.learning_rate\" = [0.1, 0.05, 0.025]",
            "\"dynamics.steps\" = [100, 200, 400]", "```", "", "## Analyses", ""]
    docs = analysis_docs()
    out += ["| analysis | definition |", "|---|---|"]
    out += [f"| `{a}` | {_cell(docs.get(a, ''))} |" for a in ANALYSES]
    return "\n".join(out) + "\n"


def _reason(spec) -> str:
    """Why a keyword is not settable, beyond "not configurable from a study file"."""
    text = spec.describe() if spec is not None else ""
    text = text.removeprefix("not configurable from a study file").strip(" ()")
    return f" ({text})" if text else ""


def _run_default(key: str) -> str:
    if key == "chunk_size":
        return f"`min(seeds, {DEFAULT_MAX_CHUNK})`"
    return toml_value(RUN_DEFAULTS[key])


_TOP = {  # (type, default, meaning) of each top-level key
    "name": ("a string", "the file's name", "the study's name (results and reports)"),
    "description": ("a string", "unset", "one line on what the study shows"),
    "analyses": ("a list of analysis names (below)",
                 "`[" + ", ".join(f'"{a}"' for a in DEFAULT_ANALYSES) + "]`",
                 "per-seed measures computed and stored with each chunk"),
}

_RUN_MEANING = {
    "seeds": "random initializations per sweep point; seed i uses fold_in(key, i)",
    "chunk_size": "seeds per compiled batch; each finished chunk is stored (and resumable)",
    "key": "the PRNG seed of `jax.random.key`",
    "precision": "floating-point precision of data, parameters and dynamics",
    "save_conserved": "also store the model's conserved quantities at every save time",
    "save_params": "also store the parameters at every save time (memory seeds × saves × |θ|)",
}


def render(text: str) -> str:
    """`text` (docs/studies.md) with its generated block replaced by `field_tables()`."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"no generated block ({BEGIN} ... {END}) in the text")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n\n{field_tables()}\n{END}{tail}"


# ---------------------------------------------------------------- JSON schema


def field_schema(field: Field) -> dict:
    """The JSON schema of one `Field` (the same type and range)."""
    out: dict
    if isinstance(field, Number):
        out = {"type": "integer" if field.integer else "number"}
        if field.low is not None:
            out["exclusiveMinimum" if field.strict else "minimum"] = field.low
        if field.high is not None:
            out["maximum"] = field.high
    elif isinstance(field, Bool):
        out = {"type": "boolean"}
    elif isinstance(field, Str):
        out = {"type": "string"}
        if field.choices:
            out["enum"] = list(field.choices)
    elif isinstance(field, ListOf):
        out = {"type": "array", "items": field_schema(field.item)}
        if field.min_len:
            out["minItems"] = field.min_len
    elif isinstance(field, Either):
        out = {"anyOf": [field_schema(o) for o in field.options]}
    elif isinstance(field, Table):
        out = {"$ref": f"#/$defs/{field.section}"} if field.section else {"type": "object"}
    else:
        raise TypeError(f"no JSON schema for {field!r}")
    out["description"] = field.describe()
    return out


def _section_schema(section: str) -> dict:
    selector, default, choices = kinds()[section]
    branches = []
    for kind in choices:
        props = {selector: {"const": kind.name}}
        for name, spec in kind.schema.items():
            if not isinstance(spec, NotInStudies):
                props[name] = field_schema(spec)
        # the selector may be swept instead of given (then any kind's fields pass here;
        # the loader checks each point)
        branches.append({"title": kind.name, "type": "object", "properties": props,
                         "additionalProperties": False})
    return {"type": "object", "description": f"[{section}]: `{selector}` chooses the "
            "constructor" + (f" (default {default!r})" if default else ""),
            "anyOf": branches}


def json_schema() -> dict:
    """The JSON schema (draft 2020-12) of a study file as TOML parses it. It checks
    each field's type and range and refuses unknown keys; what only the constructors
    judge (`k <= d`, a known solver name) is left to `dynsim validate`."""
    sections = {s: {"$ref": f"#/$defs/{s}"} for s in kinds()}
    sections["run"] = {"type": "object", "additionalProperties": False,
                       "properties": {k: field_schema(v) for k, v in RUN.items()}}
    sections["sweep"] = {
        "type": "object", "description": "dotted paths into " + ", ".join(SWEEPABLE)
        + ", each to a non-empty list of values (cartesian product; with mode = \"zip\" "
        "the lists, of one length, are zipped)",
        "properties": {SWEEP_MODE_KEY: {"enum": list(SWEEP_MODES)}},
        "propertyNames": {"pattern": rf"^(({'|'.join(SWEEPABLE)})\..+|{SWEEP_MODE_KEY})$"},
        "additionalProperties": {"type": "array", "minItems": 1},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "dynsim study",
        "description": "A dynsim study file (TOML); see docs/studies.md.",
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "analyses": {"type": "array", "items": {"enum": list(ANALYSES)}},
            **sections,
        },
        "required": ["model", "data", "init", "dynamics"],
        "additionalProperties": False,
        "$defs": {s: _section_schema(s) for s in kinds()},
    }


def main(argv=None) -> int:
    """`python -m dynsim.study._docs FILE`: rewrite FILE's generated block."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dynsim.study._docs docs/studies.md", file=sys.stderr)
        return 2
    path = Path(args[0])
    path.write_text(render(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
