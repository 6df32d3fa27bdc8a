"""One logging set-up (xlmr_ds/logs.py): our lines on rank 0 only, the libraries' noise silenced where it
starts, everything back with -v / XLMR_DS_VERBOSE=1. Each case runs in a fresh interpreter, as a command does."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import logging, sys, warnings
from xlmr_ds.logs import configure_logging, log
configure_logging(rank=int(sys.argv[1]), verbose=sys.argv[2] == "1")
log("our line")
logging.getLogger("DeepSpeed").warning("Attempting to get learning rate from scheduler before it has started")
logging.getLogger("DeepSpeed").error("a DeepSpeed error")
warnings.warn("`torch.distributed.all_gather_into_tensor` is deprecated", FutureWarning)
warnings.warn("a warning of our own", UserWarning)
"""
NOISE = ("Attempting to get learning rate", "all_gather_into_tensor")

CASES = [
    # (id, rank, -v, XLMR_DS_VERBOSE, our line shown, noise shown)
    ("rank 0", 0, False, None, True, False),
    ("rank 1", 1, False, None, False, False),
    ("-v", 0, True, None, True, True),
    ("XLMR_DS_VERBOSE=1", 0, False, "1", True, True),
    ("XLMR_DS_VERBOSE=0", 0, False, "0", True, False),
]


@pytest.mark.parametrize("rank,verbose,env,ours,noise", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_our_lines_on_rank_0_and_the_libraries_noise_only_when_verbose(rank, verbose, env, ours, noise):
    environment = {k: v for k, v in os.environ.items() if k != "XLMR_DS_VERBOSE"}
    if env is not None:
        environment["XLMR_DS_VERBOSE"] = env
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(rank), "1" if verbose else "0"], capture_output=True,
                            text=True, timeout=60, env=environment)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert ("[xlmr-ds] our line" in result.stdout) == ours
    assert all((text in output) == noise for text in NOISE), output
    assert "a DeepSpeed error" in output and "a warning of our own" in output  # errors and our warnings: always
