"""Fused scale + mask + softmax in Triton, forward and backward, for the paths that materialize scores.

One program per row: the row is read once, scaled, masked, normalized in fp32 and written once, where the
unfused PyTorch sequence (mul, add, softmax) reads and writes the full score tensor three times.
The reference is `reference.masked_softmax_reference`.

Scores are (batch, heads, seq_q, seq_k). The mask broadcasts to them: boolean (True = takes part, as in
torch's SDPA) or additive float (0 / -inf or finite negatives). Rows where nothing takes part give zeros.
Backward: d scores = scale * y * (dy - sum(dy * y)), from the saved output y.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

MAX_ROW = 16384


@triton.jit
def _masked_softmax_forward(
    X, MASK, Y, seq_k, heads, seq_q,
    stride_xb, stride_xh, stride_xq,
    stride_mb, stride_mh, stride_mq, stride_mk,
    scale,
    BLOCK: tl.constexpr, MASK_KIND: tl.constexpr,
):
    row = tl.program_id(0)
    i = row % seq_q
    h = (row // seq_q) % heads
    b = row // (seq_q * heads)
    cols = tl.arange(0, BLOCK)
    inside = cols < seq_k
    x_offsets = b * stride_xb + h * stride_xh + i * stride_xq + cols
    logits = tl.load(X + x_offsets, mask=inside, other=0.0).to(tl.float32) * scale
    mask_offsets = b * stride_mb + h * stride_mh + i * stride_mq + cols * stride_mk
    if MASK_KIND == 1:  # boolean: nonzero takes part
        inside = inside & (tl.load(MASK + mask_offsets, mask=inside, other=0) != 0)
    elif MASK_KIND == 2:  # additive
        logits += tl.load(MASK + mask_offsets, mask=inside, other=0.0).to(tl.float32)
    logits = tl.where(inside, logits, float("-inf"))
    row_max = tl.max(logits, 0)
    # All -inf: subtract 0 instead of -inf so that exp gives 0, not NaN; the sum is then 0 and so is the row.
    row_max = tl.where(row_max == float("-inf"), 0.0, row_max)
    numerators = tl.exp(logits - row_max)
    total = tl.sum(numerators, 0)
    probs = numerators / tl.where(total == 0.0, 1.0, total)
    tl.store(Y + x_offsets, probs.to(Y.dtype.element_ty), mask=cols < seq_k)


@triton.jit
def _masked_softmax_backward(
    Y, DY, DX, seq_k, heads, seq_q,
    stride_xb, stride_xh, stride_xq,
    scale,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0)
    i = row % seq_q
    h = (row // seq_q) % heads
    b = row // (seq_q * heads)
    cols = tl.arange(0, BLOCK)
    inside = cols < seq_k
    offsets = b * stride_xb + h * stride_xh + i * stride_xq + cols
    y = tl.load(Y + offsets, mask=inside, other=0.0).to(tl.float32)
    dy = tl.load(DY + offsets, mask=inside, other=0.0).to(tl.float32)
    dx = scale * y * (dy - tl.sum(dy * y, 0))
    tl.store(DX + offsets, dx.to(DX.dtype.element_ty), mask=inside)


def _mask_kind_and_view(mask: torch.Tensor | None, scores: torch.Tensor) -> tuple[int, torch.Tensor, tuple]:
    """0 no mask, 1 boolean, 2 additive; the mask expanded to the scores' shape (stride 0 where it broadcasts)."""
    if mask is None:
        return 0, scores, (0, 0, 0, 0)
    try:
        expanded = mask.expand(scores.shape)
    except RuntimeError:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to scores "
                         f"{tuple(scores.shape)}") from None
    if mask.dtype == torch.bool:
        expanded = expanded.view(torch.int8)
        return 1, expanded, expanded.stride()
    return 2, expanded, expanded.stride()


def masked_softmax_forward(scores: torch.Tensor, mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    if scores.dim() != 4:
        raise ValueError(f"masked_softmax needs (batch, heads, seq_q, seq_k) scores; got shape {tuple(scores.shape)}")
    if scores.shape[-1] > MAX_ROW:
        raise ValueError(f"masked_softmax handles rows up to {MAX_ROW} keys; got {scores.shape[-1]}")
    if mask is not None and mask.device != scores.device:
        raise ValueError("masked_softmax needs the mask on the scores' device")
    scores = scores if scores.stride(-1) == 1 else scores.contiguous()
    kind, mask_view, mask_strides = _mask_kind_and_view(mask, scores)
    batch, heads, seq_q, seq_k = scores.shape
    output = torch.empty_like(scores)
    block = triton.next_power_of_2(seq_k)
    _masked_softmax_forward[(batch * heads * seq_q,)](
        scores, mask_view, output, seq_k, heads, seq_q, *scores.stride()[:3], *mask_strides, scale,
        BLOCK=block, MASK_KIND=kind, num_warps=4 if block <= 2048 else 8,
    )
    return output


def masked_softmax_backward(output: torch.Tensor, grad_output: torch.Tensor, scale: float) -> torch.Tensor:
    grad_output = grad_output if grad_output.stride() == output.stride() else grad_output.contiguous()
    if grad_output.stride() != output.stride():
        output = output.contiguous()
    batch, heads, seq_q, seq_k = output.shape
    grad_scores = torch.empty_like(output)
    block = triton.next_power_of_2(seq_k)
    _masked_softmax_backward[(batch * heads * seq_q,)](
        output, grad_output, grad_scores, seq_k, heads, seq_q, *output.stride()[:3], scale,
        BLOCK=block, num_warps=4 if block <= 2048 else 8,
    )
    return grad_scores


class _MaskedSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, mask, scale):
        output = masked_softmax_forward(scores, mask, scale)
        ctx.save_for_backward(output)
        ctx.scale = scale
        return output

    @staticmethod
    def backward(ctx, grad_output):
        (output,) = ctx.saved_tensors
        return masked_softmax_backward(output, grad_output, ctx.scale), None, None


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None, scale: float = 1.0) -> torch.Tensor:
    """softmax(scale * scores + mask) over the last dimension of (batch, heads, seq_q, seq_k) scores."""
    return _MaskedSoftmax.apply(scores, mask, scale)
