"""Loading a study: parse it, check its structure, then build every sweep point (dry run).

A study that loads has been checked completely, before anything runs: the structure by
`_config.check_structure`, every field of every point by building the point's objects
(`_build.build_point`, which also checks that the initializer fits the model).
"""

from pathlib import Path

from ._build import build_point
from ._config import Study, check_structure, parse_study


def validate(st: Study) -> None:
    """Check the structure of the whole study, then build every point (dry run)."""
    check_structure(st)
    for point in st.points():
        build_point(st, point["config"], dry_run=True)


def load_study(study: str | Path, overrides: list[str] | tuple = (), *, source: str | None = None,
               path: str | None = None) -> Study:
    """Parse and validate a study file (or preset name), applying `--set` overrides."""
    st = parse_study(study, overrides, source=source, path=path)
    validate(st)
    return st
