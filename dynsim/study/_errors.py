"""The errors a user fixes by changing a study file, a `--set` or a results directory.

The CLI reports either in one line (`dynsim: error: …`, exit status 2), with no
traceback. Both sit at the bottom of the study package: every module may raise them.
"""


class StudyError(ValueError):
    """An invalid study: the message names the field and, when known, the file line."""

    def __init__(self, field: str, message: str, location: str | None = None):
        self.field = field
        self.location = location
        where = f"{location}: " if location else ""
        super().__init__(f"{where}{field}: {message}")


class StoreError(ValueError):
    """A results directory that cannot be used as asked (missing, corrupt, or holding
    another study or a run that must be resumed)."""
