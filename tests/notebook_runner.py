"""Run a Jupyter notebook's code cells in one namespace (no Jupyter needed).

`run_notebook(path, env)` reads the `.ipynb` JSON, sets the environment variables in
`env` for the duration of the run (e.g. `{"DYNSIM_NOTEBOOK_SCALE": "small"}`), selects
matplotlib's non-interactive `Agg` backend, and `exec`s the code cells top to bottom in a
single namespace, which it returns so that tests can check the notebook's results.
IPython magics and shell escapes (lines starting with `%` or `!`) are skipped.
"""

import json
import os
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def _environ(env: Mapping[str, str] | None):
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def code_cells(path: str | os.PathLike) -> list[str]:
    """The source of every code cell of the notebook at `path`, in order."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cells = []
    for cell in nb["cells"]:
        if cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        lines = [ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        cells.append("\n".join(lines))
    return cells


def run_notebook(path: str | os.PathLike, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Execute the notebook's code cells in order in one namespace; return the namespace.

    An exception in a cell propagates with the cell index added to its notes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict[str, Any] = {"__name__": "__main__"}
    with _environ(env):
        try:
            for i, src in enumerate(code_cells(path)):
                code = compile(src, f"{Path(path).name}[cell {i}]", "exec")
                try:
                    exec(code, namespace)
                except Exception as e:
                    e.add_note(f"while running code cell {i} of {path}")
                    raise
        finally:
            plt.close("all")
    return namespace
