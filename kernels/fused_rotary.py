"""Rotary position embeddings (RoPE, Su et al. 2021) in one Triton pass, forward and backward.

For x of shape (batch, heads, seq, head_dim) (any strides whose last is 1) and the angle tables cos, sin of
shape (seq, head_dim), the output is x * cos + rotate_half(x) * sin, computed in fp32 and stored in x's dtype,
where rotate_half(x) = cat(-x[d/2:], x[:d/2]): ModernBERT's (and transformers') RoPE. The backward is the
rotation by the opposite angle: dx = dy * cos + rotate_half^T(dy * sin), rotate_half^T(z) = cat(z[d/2:], -z[:d/2]).
One program handles one (batch, head, position) row of both halves, so nothing is written twice. Packed
sequences (positions restarting at each sequence) pass the tables gathered by position, one row per token,
with x as (tokens, heads, head_dim) viewed as (1, heads, tokens, head_dim).
The reference is `reference.rotary_reference`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rotary(X, COS, SIN, Y, stride_xb, stride_xh, stride_xs, stride_yb, stride_yh, stride_ys, heads, seq,
            HALF: tl.constexpr, BLOCK: tl.constexpr, BACKWARD: tl.constexpr):
    program = tl.program_id(0).to(tl.int64)
    position = program % seq
    bh = program // seq
    b, h = bh // heads, bh % heads
    cols = tl.arange(0, BLOCK)
    inside = cols < HALF
    x_row = X + b * stride_xb + h * stride_xh + position * stride_xs
    y_row = Y + b * stride_yb + h * stride_yh + position * stride_ys
    first = tl.load(x_row + cols, mask=inside, other=0.0).to(tl.float32)
    second = tl.load(x_row + HALF + cols, mask=inside, other=0.0).to(tl.float32)
    # The tables repeat each frequency in both halves (transformers' layout); read each half's own entries.
    cos1 = tl.load(COS + position * 2 * HALF + cols, mask=inside, other=0.0).to(tl.float32)
    cos2 = tl.load(COS + position * 2 * HALF + HALF + cols, mask=inside, other=0.0).to(tl.float32)
    sin1 = tl.load(SIN + position * 2 * HALF + cols, mask=inside, other=0.0).to(tl.float32)
    sin2 = tl.load(SIN + position * 2 * HALF + HALF + cols, mask=inside, other=0.0).to(tl.float32)
    if BACKWARD:
        out_first = first * cos1 + second * sin2
        out_second = second * cos2 - first * sin1
    else:
        out_first = first * cos1 - second * sin1
        out_second = second * cos2 + first * sin2
    tl.store(y_row + cols, out_first.to(Y.dtype.element_ty), mask=inside)
    tl.store(y_row + HALF + cols, out_second.to(Y.dtype.element_ty), mask=inside)


def _launch(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, backward: bool) -> torch.Tensor:
    x = x if x.stride(-1) == 1 else x.contiguous()
    batch, heads, seq, head_dim = x.shape
    y = torch.empty((batch, heads, seq, head_dim), dtype=x.dtype, device=x.device)
    half = head_dim // 2
    _rotary[(batch * heads * seq,)](x, cos.contiguous(), sin.contiguous(), y, x.stride(0), x.stride(1), x.stride(2),
                                    y.stride(0), y.stride(1), y.stride(2), heads, seq, HALF=half,
                                    BLOCK=triton.next_power_of_2(half), BACKWARD=backward)
    return y


class _Rotary(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin):
        ctx.save_for_backward(cos, sin)
        return _launch(x, cos, sin, backward=False)

    @staticmethod
    def backward(ctx, grad_y):
        cos, sin = ctx.saved_tensors
        return _launch(grad_y, cos, sin, backward=True), None, None


def rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (batch, heads, seq, head_dim) rotated by RoPE with tables cos, sin (seq, head_dim)."""
    batch, heads, seq, head_dim = x.shape
    if head_dim % 2:
        raise ValueError(f"rotary needs an even head_dim (it rotates pairs); got {head_dim}")
    if tuple(cos.shape) != (seq, head_dim) or tuple(sin.shape) != (seq, head_dim):
        raise ValueError(f"rotary needs cos and sin of shape {(seq, head_dim)}; got {tuple(cos.shape)}, "
                         f"{tuple(sin.shape)}")
    return _Rotary.apply(x, cos, sin)
