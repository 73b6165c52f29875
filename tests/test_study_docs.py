"""The study format's documentation and JSON schema agree with the loader: docs/studies.md's
reference is the one generated from the schema definition, documents every field the
schema accepts and no other; its example and every preset (`dynsim presets --show`)
validate; `dynsim schema` is JSON that accepts every preset and refuses what the loader
refuses. (jsonschema is not a dependency: the schema is checked by a small validator of
exactly the keywords it uses.)"""

import copy
import json
import re
import tomllib
from pathlib import Path

import pytest

from dynsim._cli import main
from dynsim.study import StudyError, load_study
from dynsim.study._config import PRESET_DIR, Study
from dynsim.study._docs import BEGIN, END, json_schema, kinds, render
from dynsim.study._load import validate
from dynsim.study._schema import RUN, NotInStudies

DOCS = Path(__file__).resolve().parents[1] / "docs" / "studies.md"
PRESETS = sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def _docs() -> str:
    return DOCS.read_text(encoding="utf-8")


def test_reference_is_generated_from_the_schema():
    text = _docs()
    assert render(text) == text, (
        "docs/studies.md's reference is out of date: run "
        "`python -m dynsim.study._docs docs/studies.md`")


def _documented_fields() -> dict:
    """`{(section, choice): {field, ...}}` from the reference's tables; `[run]` as
    ("run", None)."""
    block = _docs().split(BEGIN, 1)[1].split(END, 1)[0]
    out, current = {}, None
    for line in block.splitlines():
        if m := re.match(r'### `(\w+) = "(\w+)"`', line):
            current = (m.group(1), m.group(2))
            out[current] = set()
        elif line.startswith("## "):
            current = ("run", None) if line == "## `[run]`" else None
            if current:
                out[current] = set()
        elif current and (m := re.match(r"\| `(\w+)` \|", line)):
            out[current].add(m.group(1))
    return out


def test_every_field_the_schema_accepts_is_documented_and_no_other():
    documented = _documented_fields()
    expected = {("run", None): set(RUN)}
    for _, (selector, _, choices) in kinds().items():
        for kind in choices:
            expected[(selector, kind.name)] = {
                k for k, spec in kind.schema.items() if not isinstance(spec, NotInStudies)}
    # the selectors repeat across sections (model.kind, dynamics.kind): compare per kind name
    assert {k[1]: v for k, v in documented.items()} == {k[1]: v for k, v in expected.items()}


def _example() -> str:
    m = re.search(r"## An example\s+```toml\n(.*?)```", _docs(), re.S)
    assert m, "docs/studies.md has an example"
    return m.group(1)


def test_the_documented_example_validates():
    st = load_study("example", source=_example(), path="docs/studies.md")
    assert len(st.points()) == 6


@pytest.mark.parametrize("name", PRESETS)
def test_presets_show_prints_a_study_that_validates(name, capsys):
    assert main(["presets", "--show", name]) == 0
    text = capsys.readouterr().out
    assert text == (PRESET_DIR / f"{name}.toml").read_text(encoding="utf-8")
    st = load_study(name, source=text, path=f"<presets --show {name}>")
    assert st.points()
    _validate(tomllib.loads(text), json_schema())


def test_presets_show_of_an_unknown_name_names_the_presets(capsys):
    assert main(["presets", "--show", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--show: no preset 'nope'" in err and "diagonal_sparse" in err


# ---------------------------------------------------------------- JSON schema

_KNOWN = {"$schema", "$defs", "$ref", "title", "description", "type", "properties",
          "required", "additionalProperties", "propertyNames", "pattern", "anyOf", "enum",
          "const", "items", "minItems", "minimum", "exclusiveMinimum", "maximum"}
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


class Invalid(Exception):
    pass


def _validate(value, schema, root=None, path="$"):
    """A validator of the JSON Schema keywords in `_KNOWN` (draft 2020-12 meaning,
    except that "integer" is Python's int, as TOML parses it)."""
    root = root or schema
    unknown = set(schema) - _KNOWN
    assert not unknown, f"{path}: keywords this validator does not know: {unknown}"
    if "$ref" in schema:
        _validate(value, root["$defs"][schema["$ref"].rsplit("/", 1)[1]], root, path)
    if "type" in schema:
        t = schema["type"]
        if t == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif t == "number":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, _TYPES[t])
        if not ok:
            raise Invalid(f"{path}: not {t}: {value!r}")
    if "const" in schema and value != schema["const"]:
        raise Invalid(f"{path}: not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise Invalid(f"{path}: not one of {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        raise Invalid(f"{path}: below the minimum")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        raise Invalid(f"{path}: not above the minimum")
    if "maximum" in schema and value > schema["maximum"]:
        raise Invalid(f"{path}: above the maximum")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            raise Invalid(f"{path}: too short")
        for i, v in enumerate(value):
            if "items" in schema:
                _validate(v, schema["items"], root, f"{path}[{i}]")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                raise Invalid(f"{path}: missing {key}")
        props = schema.get("properties", {})
        for key, v in value.items():
            if "propertyNames" in schema and not re.search(
                    schema["propertyNames"]["pattern"], key):
                raise Invalid(f"{path}: bad key {key!r}")
            if key in props:
                _validate(v, props[key], root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                raise Invalid(f"{path}: unknown key {key!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                _validate(v, schema["additionalProperties"], root, f"{path}.{key}")
    if "anyOf" in schema:
        problems = []
        for option in schema["anyOf"]:
            try:
                _validate(value, option, root, path)
                break
            except Invalid as e:
                problems.append(str(e))
        else:
            raise Invalid(f"{path}: no option fits ({'; '.join(problems)})")


def test_schema_command_prints_json_that_accepts_every_preset_and_the_example(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == json.loads(json.dumps(json_schema()))
    assert schema["$schema"].endswith("2020-12/schema")
    for name in PRESETS:
        _validate(tomllib.loads((PRESET_DIR / f"{name}.toml").read_text()), schema)
    _validate(tomllib.loads(_example()), schema)


def _set(cfg: dict, dotted: str, value) -> dict:
    cfg = copy.deepcopy(cfg)
    *parents, last = dotted.split(".")
    node = cfg
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return cfg


# (dotted key, value): refused by the loader and by the JSON schema
BAD = [
    ("colour", "red"),                       # unknown top-level key
    ("model.depthh", 3),                     # unknown field of the kind
    ("model.kind", "ResNet"),                # unknown kind
    ("model.in_dim", 0),                     # out of range
    ("model.out_dim", 1.5),                  # float where an integer belongs
    ("dynamics.rtol", -1e-6),                # not positive
    ("dynamics.t1", "long"),                 # wrong type
    ("dynamics.adjoint", "BacksolveAdjoint"),  # a keyword not settable from a file
    ("data.teacher", 3),                     # a table expected
    ("run.seeds", 0),
    ("run.precision", "float16"),
    ("run.key", -1),
    ("analyses", ["final_loss", "margins"]),
    ("sweep.init", [1, 2]),                  # not a dotted path
    ("sweep", {"run.seeds": [1, 2]}),        # [run] is not sweepable
    ("sweep", {"init.std": []}),             # empty list
]


@pytest.mark.parametrize("key, value", BAD, ids=[k for k, _ in BAD])
def test_schema_refuses_what_the_loader_refuses(key, value):
    base = "teacher_student" if key.startswith("data.teacher") else "shallow_linear_min_norm"
    cfg = tomllib.loads((PRESET_DIR / f"{base}.toml").read_text())
    schema = json_schema()
    _validate(cfg, schema)
    bad = _set(cfg, key, value) if key != "sweep" else {**cfg, "sweep": value}
    with pytest.raises(Invalid):
        _validate(bad, schema)
    with pytest.raises(StudyError):
        validate(Study(config=bad, source="", path="<test>", lines={}))
