"""The fused bias+GELU and dropout+residual+LayerNorm kernels against their fp64 references."""

import pytest
import torch
from cases import TOLERANCE, device

from xlmr_ds.kernels.fused_bias_gelu import bias_gelu
from xlmr_ds.kernels.fused_residual_layernorm import STREAM, dropout_add_layer_norm
from xlmr_ds.kernels.philox import threshold
from xlmr_ds.kernels.reference import (
    bias_gelu_reference,
    dropout_add_layer_norm_reference,
    row_dropout_words,
    sample_row_dropout_words,
)


def _tensor(shape, dtype, seed, scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=generator) * scale).to(device(), dtype).requires_grad_()


def _fp64(*tensors):
    return [t.detach().double().requires_grad_() for t in tensors]


# (rows shape, width): widths that are and are not powers of two, a row count beyond one backward program.
SHAPES = [((3, 7), 64), ((2, 20), 100), ((37,), 512)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("rows,width", SHAPES, ids=lambda v: str(v))
def test_bias_gelu_matches_the_reference_forward_and_backward(rows, width, dtype):
    x, bias = _tensor((*rows, width), dtype, 1, 2.0), _tensor((width,), dtype, 2)
    y = bias_gelu(x, bias)
    grad = torch.randn(y.shape, generator=torch.Generator().manual_seed(3)).to(device(), dtype)
    y.backward(grad)
    x64, bias64 = _fp64(x, bias)
    expected = bias_gelu_reference(x64, bias64)
    expected.backward(grad.double())
    out_tol, grad_tol = TOLERANCE[dtype]
    torch.testing.assert_close(y.double(), expected, rtol=0, atol=out_tol)
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=0, atol=grad_tol)
    # The bias gradient sums over all rows: its tolerance grows with their number.
    torch.testing.assert_close(bias.grad.double(), bias64.grad, rtol=0, atol=grad_tol * x.numel() / width)


@pytest.mark.parametrize("dropout_p", [0.0, 0.1], ids=["no_dropout", "dropout"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("rows,width", SHAPES, ids=lambda v: str(v))
def test_dropout_add_layer_norm_matches_the_reference_forward_and_backward(rows, width, dtype, dropout_p):
    x, residual = _tensor((*rows, width), dtype, 1), _tensor((*rows, width), dtype, 2, 3.0)
    weight, bias = _tensor((width,), dtype, 3), _tensor((width,), dtype, 4)
    y = dropout_add_layer_norm(x, residual, weight, bias, dropout_p, 1e-5, seed=77, offset=2)
    grad = torch.randn(y.shape, generator=torch.Generator().manual_seed(5)).to(device(), dtype)
    y.backward(grad)
    leaves = _fp64(x, residual, weight, bias)
    n_rows = x.numel() // width
    keep = None
    if dropout_p:
        keep = (row_dropout_words(77, 2, n_rows, width, STREAM) >= threshold(dropout_p)).reshape(x.shape)
        keep = keep.to(device())
    expected = dropout_add_layer_norm_reference(*leaves, 1e-5, keep, dropout_p)
    expected.backward(grad.double())
    out_tol, grad_tol = TOLERANCE[dtype]
    torch.testing.assert_close(y.double(), expected, rtol=0, atol=out_tol * 4)
    for name, ours, leaf in zip(("x", "residual"), (x, residual), leaves):
        torch.testing.assert_close(ours.grad.double(), leaf.grad, rtol=0, atol=grad_tol * 4, msg=name)
    for name, ours, leaf in zip(("weight", "bias"), (weight, bias), leaves[2:]):
        torch.testing.assert_close(ours.grad.double(), leaf.grad, rtol=0, atol=grad_tol * n_rows, msg=name)


def test_layer_norm_dropout_keeps_1_minus_p_and_depends_on_the_seed():
    x = torch.ones(64, 256, device=device())
    zeros, ones = torch.zeros(256, device=device()), torch.ones(256, device=device())
    # residual 0, x 1: the sum is 1/(1-p) where kept and 0 where dropped; weight 1 and bias 0 keep its sign.
    y = dropout_add_layer_norm(x, torch.zeros_like(x), ones, zeros, 0.25, seed=5)
    kept = y > 0
    assert abs(kept.float().mean().item() - 0.75) < 0.01
    expected = row_dropout_words(5, 0, 64, 256, STREAM) >= threshold(0.25)
    assert torch.equal(kept.cpu(), expected)
    other = dropout_add_layer_norm(x, torch.zeros_like(x), ones, zeros, 0.25, seed=6) > 0
    assert not torch.equal(kept, other)


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_layer_norm_dropout_keyed_by_sequence_and_position_matches_the_reference(layout):
    # Three sequences of 5, 9 and 3 tokens, width 64: padded to 9 rows each, or packed back to back. The mask of
    # a token depends only on its sequence's seed and its position: the same in both layouts.
    lengths, width, p, seeds = [5, 9, 3], 64, 0.3, [3, 2**50 + 1, 77]
    if layout == "padded":
        row_sample = torch.arange(3).repeat_interleave(9)
        row_position = torch.arange(9).repeat(3)
        real = (row_position < torch.tensor(lengths)[row_sample])
    else:
        row_sample = torch.arange(3).repeat_interleave(torch.tensor(lengths))
        row_position = torch.cat([torch.arange(n) for n in lengths])
        real = torch.ones(len(row_sample), dtype=torch.bool)
    rows = len(row_sample)
    x, residual = _tensor((rows, width), torch.float32, 1), _tensor((rows, width), torch.float32, 2)
    weight, bias = _tensor((width,), torch.float32, 3), _tensor((width,), torch.float32, 4)
    keys = (torch.tensor(seeds, dtype=torch.int64), row_sample.int(), row_position.int())
    y = dropout_add_layer_norm(x, residual, weight, bias, p, 1e-5, offset=1, row_keys=keys)
    grad = torch.randn(y.shape, generator=torch.Generator().manual_seed(5)).to(device())
    y.backward(grad)
    keep = torch.ones(rows, width, dtype=torch.bool)
    keep[real] = sample_row_dropout_words(seeds, 1, lengths, width, STREAM) >= threshold(p)
    leaves = _fp64(x, residual, weight, bias)
    expected = dropout_add_layer_norm_reference(*leaves, 1e-5, keep.to(device()), p)
    expected.backward(grad.double())
    out_tol, grad_tol = TOLERANCE[torch.float32]
    real = real.to(device())
    torch.testing.assert_close(y.double()[real], expected[real], rtol=0, atol=out_tol * 4)
    torch.testing.assert_close(x.grad.double()[real], leaves[0].grad[real], rtol=0, atol=grad_tol * 4)
