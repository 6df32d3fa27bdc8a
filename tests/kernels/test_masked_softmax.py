"""The fused Triton masked softmax against the fp64 reference, forward and backward."""

import pytest
import torch
from cases import TOLERANCE, device

from xlmr_ds.kernels.masked_softmax import masked_softmax
from xlmr_ds.kernels.reference import masked_softmax_reference

SHAPE = (2, 3, 5, 37)


def _mask(kind: str) -> torch.Tensor | None:
    generator = torch.Generator().manual_seed(4)
    batch, heads, rows, keys = SHAPE
    if kind == "none":
        return None
    if kind == "bool_keys":  # a key-padding mask broadcast over heads and rows; batch 1 fully masked
        mask = torch.rand(batch, 1, 1, keys, generator=generator) > 0.3
        mask[1] = False
    elif kind == "bool_full":
        mask = torch.rand(SHAPE, generator=generator) > 0.5
    elif kind == "additive_keys":
        mask = torch.where(torch.rand(batch, 1, 1, keys, generator=generator) > 0.3, 0.0, float("-inf"))
    elif kind == "additive_finite":  # a soft bias, as ALiBi-like or relative-position terms give
        mask = torch.randn(1, heads, rows, keys, generator=generator)
    else:
        raise ValueError(kind)
    return mask.to(device())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("kind", ["none", "bool_keys", "bool_full", "additive_keys", "additive_finite"])
@pytest.mark.parametrize("scale", [1.0, 0.125])
def test_forward_and_backward_match_the_fp64_reference(kind, scale, dtype):
    scores = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1)).to(device(), dtype).requires_grad_()
    mask = _mask(kind)
    probs = masked_softmax(scores, mask if mask is None or mask.dtype == torch.bool else mask.to(dtype), scale)
    grad = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2)).to(device(), dtype)
    probs.backward(grad)
    leaf = scores.detach().double().requires_grad_()
    expected = masked_softmax_reference(leaf, mask if mask is None or mask.dtype == torch.bool else mask.double(), scale)
    expected.backward(grad.double())
    out_tol, grad_tol = TOLERANCE[dtype]
    assert torch.isfinite(probs).all() and torch.isfinite(scores.grad).all()
    torch.testing.assert_close(probs.double(), expected, rtol=0, atol=out_tol)
    torch.testing.assert_close(scores.grad.double(), leaf.grad, rtol=0, atol=grad_tol)


def test_rows_with_nothing_to_attend_give_zeros():
    scores = torch.randn(SHAPE, device=device())
    mask = torch.zeros(SHAPE[0], 1, 1, SHAPE[3], dtype=torch.bool, device=device())
    mask[0] = True
    probs = masked_softmax(scores, mask)
    assert torch.equal(probs[1], torch.zeros_like(probs[1]))
    torch.testing.assert_close(probs[0].sum(-1), torch.ones_like(probs[0].sum(-1)))


@pytest.mark.parametrize("scores_shape,mask_shape,message", [
    ((2, 3, 37), None, "seq_q, seq_k"),
    (SHAPE, (3, 1, 1, 37), "does not broadcast"),
])
def test_bad_shapes_are_refused(scores_shape, mask_shape, message):
    mask = None if mask_shape is None else torch.ones(mask_shape, dtype=torch.bool)
    with pytest.raises(ValueError, match=message):
        masked_softmax(torch.randn(scores_shape), mask)


@pytest.mark.gpu
@pytest.mark.parametrize("keys", [512, 1000, 4096])
def test_gpu_long_rows_in_bf16(keys):
    scores = torch.randn(4, 16, 8, keys, device="cuda", dtype=torch.bfloat16)
    mask = torch.rand(4, 1, 1, keys, device="cuda") > 0.15
    expected = masked_softmax_reference(scores.double(), mask, 0.125)
    torch.testing.assert_close(masked_softmax(scores, mask, 0.125).double(), expected, rtol=0, atol=TOLERANCE[torch.bfloat16][0])
