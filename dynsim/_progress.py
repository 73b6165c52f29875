"""Progress of a run on stderr, drawn by tqdm: sweep points, seeds, rate and ETA.

On a terminal, one bar for the sweep point being computed and, for a study of more
than one point, one for all seeds of the run; both fit the terminal's width at every
redraw (tqdm trims them). A point's bar reads "compiling" from when its chunks are
handed to `simulate` until its program is compiled (`compiled`), then seeds done/total,
the chunk, and tqdm's smoothed rate (seeds/s, counted from the end of compilation) and
ETA. The run's bar counts the seeds computed in this run per second since it started,
compilations included (seeds found already stored when resuming count as done, not in
the rate); it shows "?" until a chunk is done, never a rate of 0.

Elsewhere (a file, a pipe, a cluster log) a redrawn bar would be one ever longer line,
so with `force` (set by `dynsim run` and `simulate(progress=True)`) `Progress` writes
plain lines instead, formatted by tqdm from the same counters: when a point starts
compiling, when it is compiled, after a chunk (at most one such line every `interval`
seconds) and when a point is done. `quiet` writes nothing.

The methods are called from the thread that computes (the study runner's worker) and
from the main thread (`close` after Ctrl-C); they hold a lock, and after `close` they
do nothing.
"""

import os
import shutil
import sys
import threading
import time

from tqdm import tqdm

_UNIT = " seeds"  # tqdm appends the unit to numbers: "12.5 seeds/s"
_POINT_FORMAT = ("{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} seeds "
                 "[{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]")
_COMPILING_FORMAT = "{desc}: compiling{postfix} [{elapsed}]"
_LINE_FORMAT = "{n_fmt}/{total_fmt} seeds [{elapsed}<{remaining}, {rate_noinv_fmt}]"


def columns(stream) -> int:
    """The width of the terminal `stream` writes to; else `$COLUMNS`, else 80."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return shutil.get_terminal_size().columns


class _Discard:
    """Where the bars draw when `Progress` writes plain lines (they only count)."""

    def write(self, s: str) -> None:
        pass

    def flush(self) -> None:
        pass


class _Bar(tqdm):
    """A tqdm bar that fits its stream's width at every redraw, without tqdm's
    monitor thread (nothing is left running after a Ctrl-C)."""

    monitor_interval = 0

    @staticmethod
    def status_printer(file):
        """Redraw a line in place, clearing the rest of it with an escape code (tqdm
        pads with spaces to the previous length, which wraps once the window shrank)."""
        def print_status(s: str) -> None:
            file.write(f"\r{s}\x1b[K")
            file.flush()

        return print_status

    @property
    def format_dict(self):
        d = super().format_dict
        if not isinstance(self.fp, _Discard):
            # one column spare: a line of exactly the width wraps on some terminals
            d["ncols"] = max(columns(self.fp) - 1, 10)
        return d

    def line(self) -> str:
        """The bar's counters as one plain line (no bar, no width limit)."""
        return self.format_meter(**{**self.format_dict, "bar_format": _LINE_FORMAT,
                                    "ncols": None})


class Progress:
    """Progress over `total` seeds in `n_points` sweep points of `total / n_points`
    seeds each (see the module docstring).

    The caller reports, for each point `p`: `start_point(p, label)`; `skip(n)` for
    seeds already stored; `start_compute(n_chunks)` before its program is traced and
    compiled; `compiled()` once it is (`simulate` calls it); `advance(n, (c, n_chunks))`
    after each chunk; `end_point()`. Then `close()`, also after an error or Ctrl-C.
    `desc` names the bar of a single point (e.g. "simulate").
    """

    def __init__(self, total: int, n_points: int = 1, *, quiet: bool = False, stream=None,
                 force: bool = False, interval: float | int = 10.0, desc: str | None = None):
        self.stream = stream if stream is not None else sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.live = tty and not quiet
        self.lines = force and not quiet and not tty
        self.total = max(int(total), 1)
        self.n_points = max(int(n_points), 1)
        self.per_point = max(self.total // self.n_points, 1)
        self.interval = float(interval)
        self.desc = desc
        self.done = 0  # seeds done in the run, stored ones included
        self.computed = 0  # seeds computed in this run
        self.point, self.label = 0, ""
        self._point_done = 0
        self._chunk = (0, 0)
        self._phase = "idle"  # "compiling", "running"
        self._t_compile = time.perf_counter()
        self._last_line = float("-inf")
        self._lock = threading.Lock()
        self._closed = False
        self._bar = None  # the current point's
        self._all = None  # the run's (more than one point)
        if (self.live or self.lines) and self.n_points > 1:
            self._all = self._new_bar(self.total, 0, "all points", position=0, smoothing=0)

    # ------------------------------------------------------------ events

    def start_point(self, p: int, label: str) -> None:
        with self._lock:
            if self._closed:
                return
            self._close_point_bar()
            self.point, self.label = p, label
            self._point_done = 0
            self._chunk = (0, 0)
            self._phase = "idle"

    def skip(self, n: int) -> None:
        """Count `n` seeds found already done in the store (resume)."""
        with self._lock:
            if self._closed:
                return
            self.done += n
            self._point_done += n
            if self._all is not None:
                self._all.initial += n  # done, but not computed: not in the rate
                self._all.update(n)

    def start_compute(self, n_chunks: int | None = None) -> None:
        """The current point has `n_chunks` chunks to compute; its program is compiled
        first."""
        with self._lock:
            if self._closed:
                return
            self._phase = "compiling"
            self._chunk = (0, n_chunks or 0)
            self._t_compile = time.perf_counter()
            if self.lines:
                todo = f"; {n_chunks} chunk(s) to compute" if n_chunks else ""
                self._write(f"{self._head()}{self._label()}: compiling{todo}")
            if self.live or self.lines:
                self._close_point_bar()
                self._bar = self._new_bar(
                    self.per_point, self._point_done, self._head(),
                    position=1 if self._all is not None else 0,
                    bar_format=_COMPILING_FORMAT, leave=self._all is None,
                    postfix=self._postfix())

    def compiled(self) -> None:
        """The current point's program is compiled: its rate is counted from now."""
        with self._lock:
            if self._closed or self._phase != "compiling":
                return
            self._running(restart=True)
            if self.lines:
                self._write(f"{self._head()}: compiled in "
                            f"{time.perf_counter() - self._t_compile:.1f} s")

    def advance(self, n: int, chunk: tuple[int, int] = (0, 0)) -> None:
        """`n` more seeds of the current point are done (in chunk `chunk[0]` of
        `chunk[1]`)."""
        with self._lock:
            if self._closed:
                return
            if self._phase == "compiling":  # no `compiled()` came: count from the start
                self._running(restart=False)
            self.done += n
            self.computed += n
            self._point_done += n
            self._chunk = chunk
            if self._bar is not None:
                self._bar.set_postfix_str(self._postfix(), refresh=False)
                self._bar.update(n)
            if self._all is not None:
                self._all.update(n)
            now = time.perf_counter()
            if self.lines and now - self._last_line >= self.interval:
                c, nc = chunk
                where = f" chunk {c}/{nc}" if nc else ""
                self._write(f"{self._head()}{where}: {self._counts()}")
                self._last_line = now

    def end_point(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self.lines:
                if self._phase == "idle":
                    self._write(f"{self._head()}{self._label()}: all {self._point_done} "
                                "seeds already stored")
                else:
                    self._write(f"{self._head()} done{self._label()}: {self._counts()}")
            if self._all is not None:
                self._close_point_bar()
            self._phase = "idle"

    def close(self) -> None:
        """Close the bars (the run's is left on screen, ending its line); idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_point_bar(leave=self._all is None)
            if self._all is not None:
                self._all.close()
                self._all = None

    # ------------------------------------------------------------ helpers

    def _new_bar(self, total, initial, desc, *, position, smoothing=0.3,
                 bar_format=_POINT_FORMAT, leave=True, postfix=None) -> _Bar:
        return _Bar(total=total, initial=initial, desc=desc, unit=_UNIT, position=position,
                    postfix=postfix or None,
                    file=self.stream if self.live else _Discard(), leave=leave,
                    bar_format=bar_format, smoothing=smoothing, dynamic_ncols=False,
                    mininterval=0.1 if self.live else 0.0, miniters=0)

    def _running(self, *, restart: bool) -> None:
        """Switch the point's bar from compiling to running; with `restart`, its rate
        counts from now (tqdm's timers restarted: no seed was counted since it began)."""
        self._phase = "running"
        bar = self._bar
        if bar is None:
            return
        if restart:
            bar.start_t = bar.last_print_t = bar._time()
            bar.last_print_n = bar.n
        bar.bar_format = _POINT_FORMAT
        bar.set_postfix_str(self._postfix(), refresh=False)
        if self.live:
            bar.refresh()

    def _close_point_bar(self, leave: bool = False) -> None:
        if self._bar is not None:
            self._bar.leave = leave
            self._bar.close()
            self._bar = None

    def _head(self) -> str:
        if self.n_points == 1 and self.desc:
            return self.desc
        return f"point {self.point + 1}/{self.n_points}"

    def _label(self) -> str:
        return f" ({self.label})" if self.label else ""

    def _postfix(self) -> str:
        c, nc = self._chunk
        chunk = (f"{nc} chunk(s) to compute" if self._phase == "compiling" else
                 f"chunk {c}/{nc}")
        parts = ([chunk] if nc else []) + ([self.label] if self.label else [])
        return ", ".join(parts)

    def _counts(self) -> str:
        point = self._bar.line() if self._bar is not None else ""
        if self._all is None:
            return point
        return f"{point} | all points: {self._all.line()}"

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()
