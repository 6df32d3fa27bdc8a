"""A finished process leaves through exit_process: its exit code and everything it printed arrive."""

import subprocess
import sys

import pytest

PROGRAM = r"""
import logging, sys
from xlmr_ds.engine.teardown import exit_process
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
sys.stdout.write("no newline on stdout")  # block-buffered into a pipe: only a flush delivers it
sys.stderr.write("on stderr\n")
logging.info("through logging")
exit_process(int(sys.argv[1]))
print("never printed")
"""


@pytest.mark.parametrize("code", [0, 1, 3])
def test_exit_process_keeps_the_exit_code_and_flushes_what_was_written(code):
    result = subprocess.run([sys.executable, "-c", PROGRAM, str(code)], capture_output=True, text=True, timeout=60)
    assert result.returncode == code
    assert result.stdout == "no newline on stdout"
    assert result.stderr == "on stderr\nthrough logging\n"
