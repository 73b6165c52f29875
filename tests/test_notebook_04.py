"""Smoke-and-science test of notebook 04 at DYNSIM_NOTEBOOK_SCALE=small.

The notebook is executed top to bottom (`tests/notebook_runner.py`) and its key numbers are
checked at the small size; tolerances come from the theory and the seed-to-seed spread, as in
`tests/test_notebooks_03_05.py`.
"""

from pathlib import Path

import numpy as np
import pytest
from notebook_runner import run_notebook

NB = Path(__file__).resolve().parent.parent / "notebooks"
SMALL = {"DYNSIM_NOTEBOOK_SCALE": "small"}


@pytest.fixture(scope="module")
def nb04():
    return run_notebook(NB / "04_teacher_student.ipynb", SMALL)



def test_04_teacher_student(nb04):
    s = nb04["summary"]
    ts, narrow = s["teacher_student"], s["narrow"]
    assert s["scale"] == "small" and ts["seeds_per_width"] >= 32
    widths = [str(m) for m in ts["widths"]]
    # Some seeds of every width reach near-zero loss ...
    assert all(ts["near_zero_fraction"][m] > 0 for m in widths)
    # ... and those recover the teacher's neurons (Zhou, Ge & Jin). Exact-width students that
    # reach zero loss recover both teacher neurons; over-parameterized ones are still in the slow
    # power-law phase at T, where the angles lag the loss (small size: 0.93 at m = 4, 0.79 at
    # m = 8), so the bound there is 0.7.
    rec = nb04["student"]
    k = ts["widths"][0]
    assert np.all(rec[k]["recovered"][rec[k]["reached"]] == 1.0)
    for m in ts["widths"][1:]:
        r = rec[m]
        assert np.mean(r["recovered"][r["reached"]]) >= 0.7
    # Over-parameterized students recover more teacher neurons than the exact-width student.
    assert ts["teacher_recovered_fraction"][widths[1]] > ts["teacher_recovered_fraction"][widths[0]]
    # Narrow net (m = 2n/d): J keeps full row rank along every path, and the Grönwall bound
    # L(t) ≤ e^{−2λ_t² t} L(0) holds at every save time for every seed (a deterministic
    # inequality, checked with relative slack 1e-9).
    assert narrow["full_rank_along_path_fraction"] == 1.0
    assert narrow["bound_holds_fraction"] == 1.0
    assert narrow["median_min_sigma_min_path"] > 0
