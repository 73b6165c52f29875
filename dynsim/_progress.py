"""A live progress bar on stderr: sweep points, chunks, trajectories/s and ETA."""

import sys
import time


def _fmt_time(s: float) -> str:
    if s != s or s == float("inf"):
        return "--:--"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Progress over `total` trajectories in `n_points` sweep points.

    Redraws one line in place when `stream` is a terminal; otherwise (`--quiet`, CI,
    redirected stderr) prints nothing unless `force` is set (as `dynsim run` does), in
    which case it prints a line when a point starts computing (`start_compute`, before
    it is compiled) and one when it is done.
    """

    def __init__(self, total: int, n_points: int, *, quiet: bool = False, stream=None,
                 force: bool = False, width: int = 28):
        self.stream = stream if stream is not None else sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.live = tty and not quiet
        self.lines = force and not quiet and not tty
        self.total = max(int(total), 1)
        self.n_points = n_points
        self.width = width
        self.done = 0
        self.computed = 0  # trajectories computed in this run (the rate's basis)
        self.t0 = time.perf_counter()
        self.point = 0
        self.label = ""
        self.chunk = (0, 0)

    def start_point(self, p: int, label: str) -> None:
        self.point, self.label = p, label
        self.draw()

    def start_compute(self, n_chunks: int) -> None:
        """The current point has `n_chunks` chunks to compute (compilation comes first)."""
        self.chunk = (0, n_chunks)
        if self.lines:
            self.stream.write(
                f"point {self.point + 1}/{self.n_points} ({self.label}): computing "
                f"{n_chunks} chunk(s)\n"
            )
            self.stream.flush()
        self.draw()

    def skip(self, n: int) -> None:
        """Count `n` trajectories found already done in the store (resume)."""
        self.done += n
        self.draw()

    def advance(self, n: int, chunk: tuple[int, int] = (0, 0)) -> None:
        self.done += n
        self.computed += n
        self.chunk = chunk
        self.draw()

    def rate(self) -> float:
        dt = time.perf_counter() - self.t0
        return self.computed / dt if dt > 0 else 0.0

    def eta(self) -> float:
        r = self.rate()
        return (self.total - self.done) / r if r > 0 else float("nan")

    def draw(self) -> None:
        if not self.live:
            return
        frac = min(self.done / self.total, 1.0)
        filled = int(frac * self.width)
        bar = "█" * filled + "░" * (self.width - filled)
        c, nc = self.chunk
        chunk = f" chunk {c}/{nc}" if nc else ""
        msg = (
            f"\rpoint {self.point + 1}/{self.n_points}{chunk} {bar} {frac:6.1%} "
            f"{self.done}/{self.total} traj  {self.rate():7.1f} traj/s  ETA {_fmt_time(self.eta())}"
            f"  {self.label}"
        )
        cols = 160
        self.stream.write(msg[:cols].ljust(min(len(msg), cols)) + "\x1b[K")
        self.stream.flush()

    def end_point(self) -> None:
        if self.lines:
            self.stream.write(
                f"point {self.point + 1}/{self.n_points} done ({self.label}); "
                f"{self.done}/{self.total} traj, {self.rate():.1f} traj/s\n"
            )
            self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write(
                f"\r{self.done}/{self.total} trajectories in "
                f"{_fmt_time(time.perf_counter() - self.t0)} ({self.rate():.1f} traj/s)\x1b[K\n"
            )
            self.stream.flush()
