"""The `dynsim` command's entry point (`dynsim/__main__.py`): `import dynsim` does not
import JAX, and a Ctrl-C while the command is still importing JAX ends it with one line
and exit status 130, no traceback."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_import_dynsim_does_not_import_jax_until_a_name_is_used():
    code = ("import sys, dynsim; assert 'jax' not in sys.modules; "
            "dynsim.simulate; assert 'jax' in sys.modules; "
            "assert set(dynsim.__all__) <= set(dir(dynsim)); "
            "[getattr(dynsim, n) for n in dynsim.__all__]")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, check=True, timeout=120)


def test_unknown_attribute_is_an_attribute_error():
    import dynsim

    with pytest.raises(AttributeError, match="no attribute 'simulat'"):
        dynsim.simulat  # noqa: B018


@pytest.mark.parametrize("delay", [0.3, 0.8])
def test_ctrl_c_while_importing_jax_is_one_line(delay):
    # SIGINT raising KeyboardInterrupt as at a terminal (a background test run inherits it
    # ignored); the command is `python -m dynsim info`, whose imports take 1.5-3 s
    launch = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
              "runpy.run_module('dynsim', run_name='__main__', alter_sys=True)")
    proc = subprocess.Popen([sys.executable, "-c", launch, "info"], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    assert proc.poll() is None, "the command ended before the interrupt: " + str(proc.communicate())
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # a second, impatient Ctrl-C
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == ["dynsim: interrupted"]
