import os

import pytest
import torch

# Nothing may come from a model hub: tests build their models and data themselves.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; run on the GPU machine (benchmarks/GPU.md has the command)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
