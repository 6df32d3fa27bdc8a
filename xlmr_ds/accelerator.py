"""Which DeepSpeed accelerator to use, decided once before DeepSpeed is imported."""

from __future__ import annotations

import os


def select_deepspeed_accelerator() -> str:
    """Pick "cuda" when a GPU is visible, else "cpu" (gloo), unless DS_ACCELERATOR already says.

    Without this DeepSpeed probes on import and prints a warning to stdout on machines without a GPU,
    which would corrupt machine-readable output such as `xlmr-ds info --json`.
    """
    if "DS_ACCELERATOR" not in os.environ:
        import torch

        os.environ["DS_ACCELERATOR"] = "cuda" if torch.cuda.is_available() else "cpu"
    return os.environ["DS_ACCELERATOR"]
