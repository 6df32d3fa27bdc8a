"""The fused bias+GELU and dropout+residual+LayerNorm kernels against their fp64 references."""

import pytest
import torch
from cases import TOLERANCE, device

from xlmr_ds.kernels.fused_bias_gelu import bias_gelu
from xlmr_ds.kernels.fused_residual_layernorm import STREAM, dropout_add_layer_norm
from xlmr_ds.kernels.philox import threshold
from xlmr_ds.kernels.reference import bias_gelu_reference, dropout_add_layer_norm_reference, row_dropout_words


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
