"""The `dynsim` command's entry point (also `python -m dynsim`).

It imports the command line (and with it JAX, 1–3 s) with a SIGINT handler of its own:
a Ctrl-C while Python is still importing ends the program at once with one line and exit
status 130, as an interrupt at any later moment does (`dynsim._cli.main`). A
KeyboardInterrupt raised inside the import would not do: it can land in JAX's garbage
collector callback, which prints it as "Exception ignored" and carries on.
"""

import os
import signal
import sys


def _interrupted_while_starting(signum, frame):
    print("\ndynsim: interrupted", file=sys.stderr)
    sys.stderr.flush()
    os._exit(130)  # nothing computed yet, and half-imported modules have nothing to clean


def main() -> int:
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.SIG_IGN:  # a background job keeps ignoring it
        signal.signal(signal.SIGINT, _interrupted_while_starting)
    try:
        from ._cli import main as cli_main
    finally:
        signal.signal(signal.SIGINT, previous)
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
