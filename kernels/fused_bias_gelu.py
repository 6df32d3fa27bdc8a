"""bias + exact (erf) GELU in one Triton pass, forward and backward: the FFN's first activation.

Unfused, `F.gelu(F.linear(x, W, b))` writes the (tokens x ffn) matmul output, reads it back for GELU and
writes the result; here the matmul runs without its bias and one kernel adds the bias and applies GELU.
The backward recomputes x + bias from the saved matmul output instead of saving the GELU input separately.
The reference is `reference.bias_gelu_reference`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_SQRT_HALF = tl.constexpr(0.7071067811865476)
_INV_SQRT_2PI = tl.constexpr(0.3989422804014327)


@triton.jit
def _bias_gelu_forward(X, BIAS, Y, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = cols < n_cols
    x = tl.load(X + row * n_cols + cols, mask=inside, other=0.0).to(tl.float32)
    x += tl.load(BIAS + cols, mask=inside, other=0.0).to(tl.float32)
    y = 0.5 * x * (1.0 + tl.math.erf(x * _SQRT_HALF))
    tl.store(Y + row * n_cols + cols, y.to(Y.dtype.element_ty), mask=inside)


@triton.jit
def _bias_gelu_backward(X, BIAS, DY, DX, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = cols < n_cols
    x = tl.load(X + row * n_cols + cols, mask=inside, other=0.0).to(tl.float32)
    x += tl.load(BIAS + cols, mask=inside, other=0.0).to(tl.float32)
    dy = tl.load(DY + row * n_cols + cols, mask=inside, other=0.0).to(tl.float32)
    # d/dx [x Phi(x)] = Phi(x) + x phi(x)
    cdf = 0.5 * (1.0 + tl.math.erf(x * _SQRT_HALF))
    pdf = tl.exp(-0.5 * x * x) * _INV_SQRT_2PI
    tl.store(DX + row * n_cols + cols, (dy * (cdf + x * pdf)).to(DX.dtype.element_ty), mask=inside)


def _grid(x: torch.Tensor, block: int) -> tuple[int, int]:
    return (x.numel() // x.shape[-1], triton.cdiv(x.shape[-1], block))


def _check(x: torch.Tensor, bias: torch.Tensor) -> None:
    if bias.dim() != 1 or bias.shape[0] != x.shape[-1]:
        raise ValueError(f"bias_gelu needs a bias of shape ({x.shape[-1]},); got {tuple(bias.shape)}")
    if bias.device != x.device:
        raise ValueError("bias_gelu needs x and bias on one device")


class _BiasGelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias):
        x = x.contiguous()
        y = torch.empty_like(x)
        block = min(1024, triton.next_power_of_2(x.shape[-1]))
        _bias_gelu_forward[_grid(x, block)](x, bias, y, x.shape[-1], BLOCK=block)
        ctx.save_for_backward(x, bias)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, bias = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        grad_x = torch.empty_like(x)
        block = min(1024, triton.next_power_of_2(x.shape[-1]))
        _bias_gelu_backward[_grid(x, block)](x, bias, grad_y, grad_x, x.shape[-1], BLOCK=block)
        grad_bias = grad_x.reshape(-1, x.shape[-1]).sum(0, dtype=torch.float32).to(bias.dtype)
        return grad_x, grad_bias


def bias_gelu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """gelu(x + bias) (exact erf form) over the last dimension of x."""
    _check(x, bias)
    return _BiasGelu.apply(x, bias)
