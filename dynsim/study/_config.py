"""Study files: TOML parsing, `--set` overrides, the structure of a study, line numbers.

A study file has top-level keys `name`, `description`, `analyses` and the tables
`[model]`, `[data]`, `[init]`, `[loss]`, `[dynamics]`, `[run]`, `[sweep]`. Structure
(unknown keys, types, enumerations) is checked here (`check_structure`); the fields of
the sections are checked when every sweep point is built (`_build.py`; `_load.py` does
both before anything runs): first the type and range of each value (`_schema.py`), then
what only the constructors can judge (e.g. `k <= d`). Every error is a `StudyError`
naming the field and where it was given: its file line, `--set KEY`, or the sweep line.
"""

import copy
import dataclasses
import itertools
import re
import tomllib
from pathlib import Path
from typing import Any

from ._analyses import ANALYSES, DEFAULT_ANALYSES, RENAMED
from ._errors import StudyError
from ._schema import RUN, check_fields

PRESET_DIR = Path(__file__).parent / "presets"

SECTIONS = ("model", "data", "init", "loss", "dynamics", "run", "sweep")
# `[sweep] mode = "grid" | "zip"`: how the swept lists combine into points
SWEEP_MODE_KEY = "mode"
SWEEP_MODES = ("grid", "zip")
TOP_KEYS = ("name", "description", "analyses")
SWEEPABLE = ("model", "data", "init", "loss", "dynamics")


@dataclasses.dataclass
class Study:
    """A parsed study: its raw config, source text and the line of every key."""

    config: dict
    source: str
    path: str
    lines: dict  # dotted key -> line number (1-based)
    overrides: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.config.get("name") or Path(self.path).stem

    def where(self, field: str) -> str | None:
        """`file:line` of `field` (or of its closest enclosing table), or `--set`."""
        if field in self.overridden:
            return f"--set {field}"
        parts = field.split(".")
        for k in range(len(parts), 0, -1):
            key = ".".join(parts[:k])
            if key in self.lines:
                return f"{self.path}:{self.lines[key]}"
        return self.path

    @property
    def overridden(self) -> set:
        return {o.split("=", 1)[0].strip() for o in self.overrides}

    def error(self, field: str, message: str) -> StudyError:
        return StudyError(field, message, self.where(field))

    def sweep_keys(self) -> dict:
        """The swept keys and their lists of values (`[sweep]` without `mode`)."""
        return {k: v for k, v in self.config.get("sweep", {}).items() if k != SWEEP_MODE_KEY}

    def sweep_mode(self) -> str:
        """`"grid"` (the default: the cartesian product of the lists) or `"zip"` (the
        i-th point takes the i-th value of every list)."""
        return self.config.get("sweep", {}).get(SWEEP_MODE_KEY, "grid")

    def points(self) -> list[dict]:
        """The resolved config of every sweep point (cartesian product of the lists, or
        their zip with `mode = "zip"`; file order)."""
        sweep = self.sweep_keys()
        names = list(sweep)
        lists = [sweep[n] for n in names]
        combos = zip(*lists) if self.sweep_mode() == "zip" else itertools.product(*lists)
        out = []
        for values in combos:
            cfg = copy.deepcopy({k: v for k, v in self.config.items() if k != "sweep"})
            for name, value in zip(names, values):
                section, *rest = name.split(".")
                node = cfg.setdefault(section, {})
                for part in rest[:-1]:
                    node = node.setdefault(part, {})
                node[rest[-1]] = value
            out.append({"coords": dict(zip(names, values)), "config": cfg})
        return out


# ---------------------------------------------------------------- parsing


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_.\-]+)\s*=""")


def key_lines(text: str) -> dict:
    """Map each `table.key` (dotted) to its 1-based line (tomllib reports none).

    Handles `[table]` headers and bare or quoted keys (`"init.alpha" = …` inside
    `[sweep]` maps to `sweep.init.alpha`). Continuation lines of multi-line arrays are
    skipped by tracking bracket depth.
    """
    lines: dict = {}
    table = ""
    depth = 0
    for num, line in enumerate(text.splitlines(), start=1):
        stripped = _strip_comment(line)
        if depth > 0:
            depth += _bracket_balance(stripped)
            continue
        m = _HEADER.match(line)
        if m and not line.lstrip().startswith("[["):
            table = m.group(1).strip()
            lines.setdefault(table, num)
            continue
        m = _KEY.match(line)
        if m:
            key = m.group(1)
            if key[0] in "\"'":
                key = key[1:-1]
            full = f"{table}.{key}" if table else key
            lines.setdefault(full, num)
            depth = max(0, _bracket_balance(stripped[m.end():]))
    return lines


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out)


def _bracket_balance(s: str) -> int:
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'', "", s)
    return s.count("[") + s.count("{") - s.count("]") - s.count("}")


def read_study_text(p: Path) -> str:
    """The text of a study file: UTF-8 (a leading byte-order mark is dropped); a binary
    or otherwise encoded file is a `StudyError` naming the first bad byte."""
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise StudyError("study", f"cannot read {str(p)!r}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise StudyError(
            "study", f"{str(p)!r} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
            f"{e.start}); a study file is TOML, saved as UTF-8"
        ) from None
    if "\x00" in text:
        raise StudyError("study", f"{str(p)!r} is a binary file (NUL byte at offset "
                         f"{text.index(chr(0))}); a study file is TOML text")
    return text


def resolve_study_path(study: str) -> Path:
    """A study file path, or the built-in preset of that name."""
    p = Path(study)
    if p.is_file():
        return p
    preset = PRESET_DIR / f"{study}.toml"
    if preset.is_file():
        return preset
    names = ", ".join(sorted(x.stem for x in PRESET_DIR.glob("*.toml")))
    raise StudyError("study", f"no file {study!r} and no preset of that name (presets: {names})")


def parse_study(study: str | Path, overrides: list[str] | tuple = (), *,
                source: str | None = None, path: str | None = None) -> Study:
    """Parse a study file (or preset name, or `source` text) and apply `--set` overrides;
    nothing is checked beyond TOML syntax and the overrides themselves."""
    if source is None:
        p = resolve_study_path(str(study))
        source = read_study_text(p)
        path = str(p)
    path = path or "<study>"
    try:
        config = tomllib.loads(source)
    except tomllib.TOMLDecodeError as e:
        raise StudyError("toml", str(e), path) from None
    st = Study(config=config, source=source, path=path, lines=key_lines(source),
               overrides=tuple(overrides))
    for item in overrides:
        apply_override(st, item)
    return st


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b=v` -> (["a", "b"], v) with v parsed as a TOML value (bare words as strings)."""
    if "=" not in item:
        raise StudyError("--set", f"expected KEY=VALUE (e.g. run.seeds=100); got {item!r}")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or not all(re.fullmatch(r"[A-Za-z0-9_\-]+", p) for p in key.split(".")):
        raise StudyError("--set", f"bad key {key!r} in {item!r}")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", raw):
            value = raw  # bare word: a string (e.g. dynamics.solver=Heun)
        else:
            raise StudyError("--set", f"cannot parse value {raw!r} of {key} as TOML") from None
    return key.split("."), value


def apply_override(st: Study, item: str) -> None:
    parts, value = parse_override(item)
    if parts[0] == "sweep":  # sweep keys are dotted themselves: sweep.init.alpha=[...]
        if len(parts) < 3:
            raise StudyError("--set", f"sweep overrides look like sweep.init.alpha=[...]; got {item!r}")
        st.config.setdefault("sweep", {})[".".join(parts[1:])] = value
        return
    node = st.config
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise StudyError("--set", f"{'.'.join(parts)}: {p} is not a table")
        node = nxt
    node[parts[-1]] = value


# ---------------------------------------------------------------- validation


def check_structure(st: Study) -> None:
    """Check the structure of the whole study: keys, tables, `[run]`, `[sweep]`, analyses."""
    cfg = st.config
    for key in cfg:
        if key not in TOP_KEYS and key not in SECTIONS:
            raise st.error(key, f"unknown key; allowed: {', '.join(TOP_KEYS + SECTIONS)}")
    for key in ("name", "description"):
        if key in cfg and not isinstance(cfg[key], str):
            raise st.error(key, f"must be a string; got {cfg[key]!r}")
    for sec in SECTIONS:
        if sec in cfg and not isinstance(cfg[sec], dict):
            raise st.error(sec, f"must be a table [{sec}]; got {cfg[sec]!r}")
    for sec in ("model", "data", "init", "dynamics"):
        if sec not in cfg:
            raise st.error(sec, f"missing required table [{sec}]")
    _validate_run(st)
    _validate_sweep(st)
    analyses = cfg.get("analyses", list(DEFAULT_ANALYSES))
    if not isinstance(analyses, list) or not all(isinstance(a, str) for a in analyses):
        raise st.error("analyses", f"must be a list of names; got {analyses!r}")
    for a in analyses:
        if a in RENAMED:
            raise st.error("analyses", f"{a!r} was renamed: use {RENAMED[a]}")
        if a not in ANALYSES:
            raise st.error("analyses", f"unknown analysis {a!r}; choose from {', '.join(ANALYSES)}")


def _validate_run(st: Study) -> None:
    run = st.config.get("run", {})
    for key in run:
        if key not in RUN:
            raise st.error(f"run.{key}", f"unknown key; allowed: {', '.join(RUN)}")
    check_fields(RUN, run, lambda k, msg: st.error(f"run.{k}", msg))


def _validate_sweep(st: Study) -> None:
    mode = st.config.get("sweep", {}).get(SWEEP_MODE_KEY, "grid")
    if mode not in SWEEP_MODES:
        raise st.error(f"sweep.{SWEEP_MODE_KEY}", f"must be one of {', '.join(map(repr, SWEEP_MODES))}; "
                                                  f"got {mode!r}")
    sweep = st.sweep_keys()
    for name, values in sweep.items():
        field = f"sweep.{name}"
        section = name.split(".")[0]
        if section not in SWEEPABLE or "." not in name:
            raise st.error(
                field, f"sweep parameters are dotted paths into {', '.join(SWEEPABLE)} "
                "(e.g. \"init.std\")"
            )
        if not isinstance(values, list) or not values:
            raise st.error(field, f"must be a non-empty list of values; got {values!r}")
    lengths = {name: len(values) for name, values in sweep.items()}
    if mode == "zip" and len(set(lengths.values())) > 1:
        first = next(iter(sweep))
        other = next(n for n in sweep if lengths[n] != lengths[first])
        raise st.error(f"sweep.{other}", f"has {lengths[other]} values, but sweep.{first} has "
                                         f"{lengths[first]}: a zip sweep takes the i-th value "
                                         "of every list, so the lists must have one length")
    for item in st.overrides:  # a --set of a swept key would be silently ignored
        key = item.split("=", 1)[0].strip()
        if key in sweep:
            raise st.error(key, f"is swept (sweep.{key}); set the sweep instead, "
                                f"e.g. --set 'sweep.{key}=[...]'")


# The defaults of `[run]` (docs/studies.md is generated from them); `chunk_size`
# defaults to min(seeds, DEFAULT_MAX_CHUNK).
DEFAULT_MAX_CHUNK = 256
RUN_DEFAULTS = {"seeds": 100, "chunk_size": None, "key": 0, "precision": "float64",
                "save_conserved": False, "save_params": False}


def run_options(cfg: dict) -> dict:
    """Every `[run]` option of `cfg`, defaults filled in."""
    run = cfg.get("run", {})
    out = {k: run.get(k, v) for k, v in RUN_DEFAULTS.items()}
    if out["chunk_size"] is None:
        out["chunk_size"] = min(out["seeds"], DEFAULT_MAX_CHUNK)
    return out
