"""A finished process leaves through exit_process: its exit code and everything it printed arrive."""

import os
import subprocess
import sys

import pytest

PROGRAM = r"""
import atexit, ctypes, logging, sys
from xlmr_ds.engine.guards.teardown import exit_process
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
atexit.register(lambda: print(" [atexit]", end=""))
sys.stdout.write("no newline on stdout")  # block-buffered into a pipe: only a flush delivers it
ctypes.CDLL(None).printf(b" [from C]")    # the C library's own buffer, as DeepSpeed's C++ ops print
sys.stderr.write("on stderr\n")
logging.info("through logging")
exit_process(int(sys.argv[1]))
print("never printed")
"""


@pytest.mark.parametrize("code", [0, 1, 3])
def test_exit_process_keeps_the_exit_code_and_flushes_what_was_written(code):
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as in a real job
    result = subprocess.run([sys.executable, "-c", PROGRAM, str(code)], capture_output=True, text=True, timeout=60,
                            env=environment)
    assert result.returncode == code
    # Python's buffer (with what the atexit handler added) is flushed first, the C library's after it.
    assert result.stdout == "no newline on stdout [atexit] [from C]"
    assert result.stderr == "on stderr\nthrough logging\n"
