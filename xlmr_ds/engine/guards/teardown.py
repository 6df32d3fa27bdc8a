"""Ending a distributed process cleanly: shared memory, process groups, and the interpreter's own teardown.

Why a finished job must not go through the interpreter's normal exit: torch's gloo backend runs each process
group's collectives on its own worker threads, and a worker drops its reference to a finished collective
(and to the tensors it moved) some time after the caller's `wait()` has returned. DeepSpeed keeps references
to its process groups, so `destroy_process_group()` does not stop those threads. When the main thread is
already finalizing the interpreter, a worker releasing the last reference to a tensor cannot take the GIL,
CPython ends the thread with a forced unwind through a noexcept destructor, and the whole process aborts
("terminate called without an active exception", exit -6) after every file was written: about one run in
ten on a 2-core machine, after the run's last collective. `exit_process` flushes what Python buffers and
leaves with `os._exit`, which does not run finalization, so no worker can be caught halfway.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

import torch.distributed as dist


def release_shared_memory_buffer() -> None:
    """Unlink this rank's DeepSpeed CPU all-reduce buffer in /dev/shm.

    DeepSpeed's shm comm op (the CPU accelerator's fast local all-reduce) creates one ~70 MB segment per rank,
    named by user, master address, master port and rank, and never unlinks it: every CPU job would leave its
    segments behind in memory. Unlinking is safe once this rank is done: peers keep their mappings.
    """
    if not (dist.is_available() and dist.is_initialized()) or "MASTER_PORT" not in os.environ:
        return
    name = (f"deepspeed_allreduce_buffer_{os.getuid()}_{os.environ.get('MASTER_ADDR', '')}_"
            f"{os.environ['MASTER_PORT']}_{dist.get_rank()}")
    try:
        os.unlink(Path("/dev/shm") / name)
    except FileNotFoundError:
        pass


def shut_down_process_group() -> None:
    """Destroy the default process group (and the groups registered with it) once this rank is done."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def exit_process(code: int) -> NoReturn:
    """Leave with `code` without the interpreter's finalization (see the module docstring).

    Only for the end of a process's `__main__`: checkpoints and metrics are written and renamed by their own
    code by then. What os._exit would drop is done here first: the atexit handlers (monitors such as wandb
    finish their runs there; the interpreter is still whole, so gloo's threads can take the GIL), Python's
    logging and stdio buffers, and the C library's stdio buffers (DeepSpeed's C++ ops print with printf).
    """
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it anyway
            pass
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass
    os._exit(code)
