"""One logging set-up (xlmr_ds/logs.py): our lines on rank 0 only, the libraries' noise silenced where it
starts, everything back with -v / XLMR_DS_VERBOSE=1. Each case runs in a fresh interpreter, as a command does."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import logging, os, sys, warnings
from xlmr_ds.logs import configure_logging, library_output_silenced, log
configure_logging(rank=int(sys.argv[1]), verbose=sys.argv[2] == "1")
log("our line")
with library_output_silenced():
    print("DeepSpeed deepspeed.ops.comm.deepspeed_shm_comm_op built successfully")
with library_output_silenced(stderr=True):
    print("Processing zero checkpoint", file=sys.stderr)
print("hub progress bars:", "off" if os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") == "1" else "on")
logging.getLogger("DeepSpeed").warning("Attempting to get learning rate from scheduler before it has started")
logging.getLogger("DeepSpeed").error("a DeepSpeed error")
warnings.warn("`torch.distributed.all_gather_into_tensor` is deprecated", FutureWarning)
warnings.warn("a warning of our own", UserWarning)
"""
NOISE = ("Attempting to get learning rate", "all_gather_into_tensor", "built successfully", "Processing zero checkpoint")
# transformers' "Loading weights" bars are Hugging Face progress bars, off unless verbose.
BARS_OFF = "hub progress bars: off"

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
    # What configure_logging sets for the processes it starts (a test that ran it in pytest's process set them
    # there too): a command starts without them.
    set_by_logging = ("XLMR_DS_VERBOSE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY")
    environment = {k: v for k, v in os.environ.items() if k not in set_by_logging}
    if env is not None:
        environment["XLMR_DS_VERBOSE"] = env
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(rank), "1" if verbose else "0"], capture_output=True,
                            text=True, timeout=60, env=environment)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert ("[xlmr-ds] our line" in result.stdout) == ours
    assert all((text in output) == noise for text in NOISE), output
    assert (BARS_OFF in output) == (not noise), output
    assert "a DeepSpeed error" in output and "a warning of our own" in output  # errors and our warnings: always


# Two ranks writing lines to one pipe, as the ranks of a job write to their launcher's. Under PYTHONUNBUFFERED
# print() makes the newline a write of its own, and 30,000 printed lines each run together many times
# ("...line 0[xlmr-ds] rank 0 line 9297"); a line written whole never does.
RANK_WRITER = """
import sys
from xlmr_ds.logs import error_line, whole_line
write = {"whole_line": whole_line, "error_line": error_line}[sys.argv[1]]
for i in range(30000):
    write(f"[xlmr-ds] rank {sys.argv[2]} line {i}")
"""
WRITERS = [("whole_line", "stdout"), ("error_line", "stderr")]


@pytest.mark.parametrize("writer,stream", WRITERS, ids=[w for w, _ in WRITERS])
def test_lines_of_two_ranks_sharing_a_pipe_never_run_together(writer, stream):
    read_end, write_end = os.pipe()
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    ranks = [subprocess.Popen([sys.executable, "-c", RANK_WRITER, writer, str(rank)], env=environment,
                              **{stream: write_end}) for rank in (0, 1)]
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        lines = pipe.read().splitlines()
    assert [rank.wait() for rank in ranks] == [0, 0]
    assert len(lines) == 60000
    assert all(line.startswith("[xlmr-ds] rank ") and line.count("[") == 1 for line in lines)
    for rank in (0, 1):
        mine = [line for line in lines if line.startswith(f"[xlmr-ds] rank {rank} ")]
        assert mine == [f"[xlmr-ds] rank {rank} line {i}" for i in range(30000)]
