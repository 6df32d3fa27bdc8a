"""Which DeepSpeed accelerator to use, and where its just-in-time ops build, decided before DeepSpeed is imported.

`python -m xlmr_ds.accelerator` builds those ops once (the Makefile does it at installation), so that no
training, benchmark or test process has to compile them while others wait.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


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


def build_deepspeed_ops() -> None:
    """Compile the ops DeepSpeed builds when a process group starts on this accelerator (none on CUDA)."""
    select_deepspeed_accelerator()
    from deepspeed.comm.torch import build_shm_op

    build_shm_op()


if __name__ == "__main__":
    build_deepspeed_ops()
