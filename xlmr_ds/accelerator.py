"""Which DeepSpeed accelerator to use, and where its just-in-time ops build, decided before DeepSpeed is imported.

`python -m xlmr_ds.accelerator` builds those ops once (the Makefile does it at installation), so that no
training, benchmark or test process has to compile them while others wait.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from xlmr_ds.logs import error_line

# A lock older than this that no process holds open was left by a killed process. Loading an op that is built
# already holds the lock for about a second, a full compile of the CPU op about a minute here.
STALE_LOCK_SECONDS = 300


def select_deepspeed_accelerator() -> str:
    """Pick "cuda" when a GPU is visible, else "cpu" (gloo), unless DS_ACCELERATOR already says.

    Without this DeepSpeed probes on import and prints a warning to stdout on machines without a GPU,
    which would corrupt machine-readable output such as `xlmr-ds info --json`.
    """
    keep_op_builds_in_environment()
    if "DS_ACCELERATOR" not in os.environ:
        import torch

        os.environ["DS_ACCELERATOR"] = "cuda" if torch.cuda.is_available() else "cpu"
    return os.environ["DS_ACCELERATOR"]


def op_build_root() -> Path | None:
    """Where this Python environment's DeepSpeed ops build: `<venv>/torch_extensions`; None outside a venv."""
    if sys.prefix == sys.base_prefix:
        return None
    return Path(sys.prefix) / "torch_extensions"


def keep_op_builds_in_environment() -> None:
    """Point TORCH_EXTENSIONS_DIR at this virtual environment, unless it is set already.

    On CPU DeepSpeed compiles its shared-memory allreduce (deepspeed_shm_comm) when the first process group
    starts, by default into ~/.cache/torch_extensions under a lock file. That cache outlives the environment:
    a compile killed midway leaves its lock behind, and from then on every start, from any environment of
    the machine, waits on it forever without a word; environments at different paths also rebuild over each
    other. Inside the venv the build belongs to the packages it was compiled against.
    """
    root = op_build_root()
    if root is not None and "TORCH_EXTENSIONS_DIR" not in os.environ:
        os.environ["TORCH_EXTENSIONS_DIR"] = str(root)
    if "TORCH_EXTENSIONS_DIR" in os.environ:
        remove_stale_op_build_locks(Path(os.environ["TORCH_EXTENSIONS_DIR"]))


def remove_stale_op_build_locks(build_root: Path, stale_after: float = STALE_LOCK_SECONDS) -> list[Path]:
    """Delete the lock files of op builds under `build_root` that a killed process left; return them.

    Torch takes `<build_root>/<op>/lock` each time a process loads an op, even one that is built already, and
    deletes it after. A process killed inside that window (a job cancelled while its ranks start, a fault test)
    leaves the lock, and every later start waits on it forever without a word. The holder keeps the lock file
    open, so a lock that no process here has open and that is older than any build is stale. A lock held on another
    host sharing the folder is not visible here, but it is young: a build takes minutes, not `stale_after`.
    """
    removed = []
    for lock in sorted(build_root.glob("*/lock")) + sorted(build_root.glob("*/*/lock")):
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            continue
        if age < stale_after or held_open(lock):
            continue
        try:
            lock.unlink()
        except FileNotFoundError:
            continue  # another rank removed it first
        removed.append(lock)
        error_line(f"[xlmr-ds] removed a stale lock of DeepSpeed's op build, {age / 60:.0f} min old and held by "
                   f"no process (a process killed while loading the op leaves one): {lock}")
    return removed


def held_open(path: Path) -> bool:
    """Whether a process of this machine has `path` open (Linux /proc; elsewhere assume it does)."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return True
    target = str(path.resolve())
    for fd_folder in proc.glob("[0-9]*/fd"):
        try:
            descriptors = list(fd_folder.iterdir())
        except OSError:
            continue  # the process ended, or is not ours to read
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) == target:
                    return True
            except OSError:
                continue
    return False


def build_deepspeed_ops() -> None:
    """Compile the ops DeepSpeed builds when a process group starts on this accelerator (none on CUDA)."""
    select_deepspeed_accelerator()
    from deepspeed.comm.torch import build_shm_op

    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # "... built successfully"
        op = build_shm_op()
    if op is not None:
        where = os.environ.get("TORCH_EXTENSIONS_DIR", "torch's extension cache")
        print(f"[xlmr-ds] DeepSpeed's shared-memory collectives for CPU runs are built, in {where}")


if __name__ == "__main__":
    build_deepspeed_ops()
