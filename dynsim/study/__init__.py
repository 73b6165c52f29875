"""Declarative studies: TOML study files, a resumable results store, reports.

`load(DIR)` reads a results directory written by `dynsim run` as an `xarray.Dataset`.
"""

from ._config import Study as Study
from ._errors import StoreError as StoreError
from ._errors import StudyError as StudyError
from ._load import load_study as load_study
from ._runner import run_study as run_study
from ._store import load as load

__all__ = ["Study", "StudyError", "StoreError", "load", "load_study", "run_study"]
