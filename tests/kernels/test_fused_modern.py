"""ModernBERT's fused kernels against their fp64 references, forward and backward: GeGLU (kernels/fused_geglu.py)
and rotary embeddings (kernels/fused_rotary.py). On CPU they run in Triton's interpreter at small shapes."""

import pytest
import torch
from cases import device

from xlmr_ds.kernels.fused_geglu import geglu
from xlmr_ds.kernels.fused_rotary import rotary
from xlmr_ds.kernels.reference import geglu_reference, rotary_reference
from xlmr_ds.model.modern_modeling import rotary_tables

# dtype -> (output, gradient) absolute tolerance against fp64.
TOLERANCE = {torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 4e-3)}


def _random(shape, dtype, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator).to(device(), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("rows,width", [(3, 8), (7, 100), (2, 1152), (5, 1)])
def test_geglu_matches_the_reference_forward_and_backward(rows, width, dtype):
    h = _random((rows, 2 * width), dtype, width).requires_grad_()
    y = geglu(h)
    grad = _random(y.shape, dtype, 1)
    y.backward(grad)
    h64 = h.detach().double().requires_grad_()
    expected = geglu_reference(h64)
    expected.backward(grad.double())
    out_tol, grad_tol = TOLERANCE[dtype]
    torch.testing.assert_close(y.double(), expected, rtol=0, atol=out_tol)
    torch.testing.assert_close(h.grad.double(), h64.grad, rtol=0, atol=grad_tol)


# (batch, heads, seq, head_dim, theta, view): contiguous, or q cut from a fused qkv projection (not dense)
ROTARY_CASES = [(2, 3, 17, 32, 10_000.0, "contiguous"), (1, 4, 40, 64, 160_000.0, "qkv view"),
                (2, 2, 5, 128, 10_000.0, "qkv view"), (1, 1, 3, 6, 500.0, "contiguous")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("batch,heads,seq,head_dim,theta,view", ROTARY_CASES)
def test_rotary_matches_the_reference_forward_and_backward(batch, heads, seq, head_dim, theta, view, dtype):
    if view == "qkv view":
        qkv = _random((batch, seq, 3, heads, head_dim), dtype, seq).transpose(1, 3)  # (b, h, 3, s, d)
        x = qkv.unbind(2)[0].detach().requires_grad_()
    else:
        x = _random((batch, heads, seq, head_dim), dtype, seq).requires_grad_()
    cos, sin = rotary_tables(seq, head_dim, theta, dtype, x.device)
    y = rotary(x, cos, sin)
    grad = _random(y.shape, dtype, 2)
    y.backward(grad)
    x64 = x.detach().double().requires_grad_()
    expected = rotary_reference(x64, cos.double(), sin.double())
    expected.backward(grad.double())
    out_tol, grad_tol = TOLERANCE[dtype]
    torch.testing.assert_close(y.double(), expected, rtol=0, atol=out_tol)
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=0, atol=grad_tol)


@pytest.mark.parametrize("bad,message", [
    (lambda: geglu(torch.zeros(2, 5)), "even last dimension"),
    (lambda: rotary(torch.zeros(1, 1, 4, 6), torch.zeros(3, 6), torch.zeros(3, 6)), "cos and sin of shape"),
    (lambda: rotary(torch.zeros(1, 1, 4, 5), torch.zeros(4, 5), torch.zeros(4, 5)), "even head_dim"),
])
def test_the_launchers_refuse_what_the_kernels_cannot_do(bad, message):
    with pytest.raises(ValueError, match=message):
        bad()
