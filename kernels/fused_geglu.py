"""GeGLU in one Triton pass, forward and backward: ModernBERT's feed-forward activation (Shazeer 2020).

The input projection gives h = (a, b), each `width` wide; the output is gelu(a) * b (exact erf GELU). Unfused,
PyTorch writes gelu(a), then the product, and keeps both for backward; here one kernel reads h and writes the
product, and the backward recomputes gelu(a) from the saved h. The reference is `reference.geglu_reference`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_SQRT_HALF = tl.constexpr(0.7071067811865476)
_INV_SQRT_2PI = tl.constexpr(0.3989422804014327)


@triton.jit
def _geglu_forward(H, Y, width, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = cols < width
    a = tl.load(H + row * 2 * width + cols, mask=inside, other=0.0).to(tl.float32)
    b = tl.load(H + row * 2 * width + width + cols, mask=inside, other=0.0).to(tl.float32)
    y = 0.5 * a * (1.0 + tl.math.erf(a * _SQRT_HALF)) * b
    tl.store(Y + row * width + cols, y.to(Y.dtype.element_ty), mask=inside)


@triton.jit
def _geglu_backward(H, DY, DH, width, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = cols < width
    a = tl.load(H + row * 2 * width + cols, mask=inside, other=0.0).to(tl.float32)
    b = tl.load(H + row * 2 * width + width + cols, mask=inside, other=0.0).to(tl.float32)
    dy = tl.load(DY + row * width + cols, mask=inside, other=0.0).to(tl.float32)
    cdf = 0.5 * (1.0 + tl.math.erf(a * _SQRT_HALF))
    pdf = tl.exp(-0.5 * a * a) * _INV_SQRT_2PI
    tl.store(DH + row * 2 * width + cols, (dy * b * (cdf + a * pdf)).to(DH.dtype.element_ty), mask=inside)
    tl.store(DH + row * 2 * width + width + cols, (dy * a * cdf).to(DH.dtype.element_ty), mask=inside)


def _grid(rows: int, width: int, block: int) -> tuple[int, int]:
    return (rows, triton.cdiv(width, block))


class _GeGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h):
        h = h.contiguous()
        width = h.shape[-1] // 2
        y = torch.empty((*h.shape[:-1], width), dtype=h.dtype, device=h.device)
        block = min(1024, triton.next_power_of_2(width))
        _geglu_forward[_grid(h.numel() // h.shape[-1], width, block)](h, y, width, BLOCK=block)
        ctx.save_for_backward(h)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        (h,) = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        width = h.shape[-1] // 2
        grad_h = torch.empty_like(h)
        block = min(1024, triton.next_power_of_2(width))
        _geglu_backward[_grid(h.numel() // h.shape[-1], width, block)](h, grad_y, grad_h, width, BLOCK=block)
        return grad_h


def geglu(h: torch.Tensor) -> torch.Tensor:
    """gelu(a) * b for h = cat(a, b) over the last dimension (even)."""
    if h.shape[-1] % 2:
        raise ValueError(f"geglu needs an even last dimension (the two halves a, b); got {h.shape[-1]}")
    return _GeGLU.apply(h)
