"""Ctrl-C during a run: one SIGINT stops it cleanly, wherever the program is.

Python raises `KeyboardInterrupt` at whatever bytecode the main thread runs when SIGINT
arrives. During a run that is mostly JAX: its tracing and lowering, or a `gc` callback
JAX registers (`_xla_gc_callback`), where the exception is printed as "Exception ignored
in …" and lost, and the run goes on; an interrupt in the middle of lowering can also
make the interpreter crash at exit (a segmentation fault). So while a run is in
progress (`Interrupts` as a context manager, main thread only), SIGINT only records the
request; the JAX work (compilation and chunks, i.e. `simulate`) runs in a worker thread
(`Interrupts.run`), the main thread waits for it, sees the request within `POLL`
seconds and raises `KeyboardInterrupt` from the runner's own code. A chunk whose commit
has begun is finished first (`lock`); none is committed after the request (`stopping`).

The worker cannot be stopped inside XLA: it finishes the computation it is in, then
stops at its next chunk. A program that ends on the interrupt (the CLI) leaves with
`os._exit` while `busy()`, rather than waiting or finalizing under a running thread.

A second Ctrl-C soon after the first (the user presses it twice) would otherwise land in
whatever runs next: the program's last message, or JAX's `atexit` clean-up, which prints
"Exception ignored in atexit callback … Traceback … KeyboardInterrupt". A guard made
with `final=True` (for a program that ends on the interrupt) therefore leaves SIGINT
ignored, not restored, when it exits after an interrupt.
"""

import signal
import threading
import weakref

POLL = 0.05  # seconds between checks of the main thread while the worker runs
_WORKERS: "weakref.WeakSet[threading.Thread]" = weakref.WeakSet()


class Stopped(Exception):
    """Raised in the worker thread at its next chunk after an interrupt was requested."""


class Interrupts:
    """Defers SIGINT while a run is in progress; see the module docstring."""

    def __init__(self, *, final: bool = False):
        self.final = final  # after an interrupt, leave SIGINT ignored (module docstring)
        self.requested = threading.Event()
        self.lock = threading.Lock()  # held while a chunk is committed
        self.stopping = False
        self._old = None
        self._depth = 0  # re-entrant: the CLI holds it around validation and the run

    def __enter__(self) -> "Interrupts":
        self._depth += 1
        if self._depth == 1 and threading.current_thread() is threading.main_thread():
            old = signal.getsignal(signal.SIGINT)
            # an ignored SIGINT (background job) stays ignored; a handler installed
            # outside Python (None) is left alone
            if old is not signal.SIG_IGN and old is not None:
                self._old = old
                signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._depth -= 1
        if self._depth == 0 and self._old is not None:
            interrupted = self.requested.is_set() or (
                exc_type is not None and issubclass(exc_type, KeyboardInterrupt))
            signal.signal(signal.SIGINT,
                          signal.SIG_IGN if self.final and interrupted else self._old)
            self._old = None
        return False

    def _handler(self, signum, frame) -> None:
        self.requested.set()

    def stop(self) -> None:
        """Mark the run as stopping (after any commit in progress) and raise
        `KeyboardInterrupt`."""
        with self.lock:
            self.stopping = True
        raise KeyboardInterrupt

    def check(self) -> None:
        """`KeyboardInterrupt` (via `stop`) if SIGINT was received."""
        if self.requested.is_set():
            self.stop()

    def run(self, fn):
        """`fn()` in a worker thread; its result or exception. `KeyboardInterrupt` here
        within `POLL` seconds of a SIGINT, while the worker may still be running."""
        self.check()
        box: dict = {}

        def target():
            try:
                box["value"] = fn()
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                box["error"] = e

        worker = threading.Thread(target=target, name="dynsim-run", daemon=True)
        _WORKERS.add(worker)
        worker.start()
        while True:
            worker.join(POLL)
            self.check()
            if not worker.is_alive():
                break
        if "error" in box:
            raise box["error"]
        return box.get("value")


def busy() -> bool:
    """Whether a run's worker thread is still computing (e.g. after an interrupt)."""
    return any(t.is_alive() for t in list(_WORKERS))
