"""Smoke test: notebooks/07_differentiable_alpha.ipynb runs top to bottom at small size."""

from pathlib import Path

import numpy as np
from notebook_runner import run_notebook

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "07_differentiable_alpha.ipynb"


def test_notebook_07_small():
    ns = run_notebook(NOTEBOOK, {"DYNSIM_NOTEBOOK_SCALE": "small"})
    assert ns["SMALL"]
    sol = ns["sol"]
    assert sol.converged
    # The calibrated α reaches the target ℓ1 norm, and the implicit-bias dual solve agrees.
    assert abs(sol.value - ns["target"]) <= 1e-7 * ns["target"]
    assert abs(ns["l1_ref"] - ns["target"]) <= 1e-6 * ns["target"]
    # The sweep is increasing in α and brackets the target.
    assert np.all(np.diff(ns["sweep"]) > 0)
    assert ns["sweep"][0] < ns["target"] < ns["sweep"][-1]
