"""Shared inputs for the kernel tests: deterministic tensors and the mask patterns the tables name."""

from __future__ import annotations

import torch

MASK_PATTERNS = ("none", "right_padding", "random_padding", "one_sequence_fully_padded")

# Absolute tolerances against an fp64 reference, for O(1) inputs: output / gradients.
TOLERANCE = {torch.float32: (2e-5, 5e-5), torch.float16: (3e-3, 6e-3), torch.bfloat16: (2e-2, 4e-2)}


def device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def qkv(batch, heads, seq, dim, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, seq, dim, generator=generator).to(device(), dtype).requires_grad_()
            for _ in range(3)]


def attention_mask(pattern: str, batch: int, seq: int, seed: int = 0) -> torch.Tensor | None:
    """(batch, seq) with 1 for real tokens; every pattern but the last keeps at least one key per sequence."""
    generator = torch.Generator().manual_seed(seed + 1)
    if pattern == "none":
        return None
    mask = torch.ones(batch, seq, dtype=torch.long)
    if pattern == "right_padding":
        lengths = torch.randint(1, seq + 1, (batch,), generator=generator)
        lengths[0] = seq  # one full-length sequence: the tile loop runs to the end
        mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
    elif pattern == "random_padding":
        mask = (torch.rand(batch, seq, generator=generator) > 0.3).long()
        mask[:, 0] = 1
    elif pattern == "one_sequence_fully_padded":
        mask[-1] = 0
        mask[0, seq // 2:] = 0
    else:
        raise ValueError(pattern)
    return mask.to(device())
