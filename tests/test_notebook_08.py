"""Smoke test: notebooks/08_stochastic_sparsity.ipynb runs top to bottom at small size,
and its measures are consistent with their definitions."""

from pathlib import Path

import numpy as np
from notebook_runner import run_notebook

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "08_stochastic_sparsity.ipynb"


def test_notebook_08_small():
    ns = run_notebook(NOTEBOOK, {"DYNSIM_NOTEBOOK_SCALE": "small"})
    assert not ns["FULL"]
    gf = ns["rows"][0]
    # GF conserves u⊙v exactly, so its effective init is α itself.
    assert gf["label"] == "GF" and abs(gf["alpha_ratio_q"][1] - 1.0) < 1e-6
    # SGD shrinks u⊙v every step: α∞ < α for every stochastic run.
    for r in ns["rows"]:
        if r["label"] in ("SGD", "SGD-SDE"):
            assert r["ok"] == r["seeds"] and r["alpha_ratio_q"][2] < 1.0
    assert set(ns["label_runs"]) == {0.0, *ns["LABEL_DELTAS"]}
    sharp = np.asarray(ns["label_runs"][0.0].metrics["sharpness"])
    assert np.all(np.isfinite(sharp)) and np.all(sharp > 0)
