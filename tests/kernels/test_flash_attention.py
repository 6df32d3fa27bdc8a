"""The fused Triton attention against the fp64 reference: outputs and gradients, masks, dropout, packed sequences.

On CPU these run in Triton's interpreter (TRITON_INTERPRET=1, set by tests/conftest.py) at small shapes; the
bf16 and full-size cases carry the gpu marker.
"""

import pytest
import torch
from cases import MASK_PATTERNS, TOLERANCE, attention_mask, device, qkv

from xlmr_ds.kernels.flash_attention import flash_attention, flash_attention_varlen
from xlmr_ds.kernels.philox import threshold
from xlmr_ds.kernels.reference import attention_reference, dropout_words, sample_dropout_words

SEED, OFFSET = 1234, 5

# (batch, heads, seq, head_dim): sequences that are and are not multiples of the CPU block (16), head dims
# 32 / 64 / 128, and a single-token sequence.
SHAPES = [(2, 2, 40, 32), (2, 1, 33, 64), (1, 2, 16, 128), (3, 1, 1, 32)]


def _reference(q, k, v, mask, dropout_p, scale, window=None):
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    keep = None
    if dropout_p > 0:
        batch, heads, seq, _ = q.shape
        keep = (dropout_words(SEED, OFFSET, batch, heads, seq, seq) >= threshold(dropout_p)).to(q.device)
    out = attention_reference(q64, k64, v64, mask, scale, keep, dropout_p, window)
    return out, (q64, k64, v64)


def _check_against_reference(shape, dtype, pattern, dropout_p, window=None):
    batch, heads, seq, dim = shape
    q, k, v = qkv(*shape, dtype)
    mask = attention_mask(pattern, batch, seq)
    out = flash_attention(q, k, v, mask, dropout_p=dropout_p, seed=SEED, offset=OFFSET, window=window)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(9)).to(out.device, dtype)
    out.backward(grad)
    expected, leaves = _reference(q, k, v, mask, dropout_p, dim ** -0.5, window)
    expected.backward(grad.double())
    out_tol, grad_tol = TOLERANCE[dtype]
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=out_tol)
    for name, tensor, leaf in zip("qkv", (q, k, v), leaves):
        torch.testing.assert_close(tensor.grad.double(), leaf.grad, rtol=0, atol=grad_tol, msg=f"d{name}")
    return out, mask


@pytest.mark.parametrize("dropout_p", [0.0, 0.1], ids=["no_dropout", "dropout"])
@pytest.mark.parametrize("pattern", MASK_PATTERNS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_fp32_outputs_and_gradients_match_the_fp64_reference(shape, pattern, dropout_p):
    _check_against_reference(shape, torch.float32, pattern, dropout_p)


@pytest.mark.parametrize("dropout_p", [0.0, 0.1], ids=["no_dropout", "dropout"])
@pytest.mark.parametrize("pattern", ["random_padding", "one_sequence_fully_padded"])
@pytest.mark.parametrize("shape", SHAPES[:2], ids=lambda s: "x".join(map(str, s)))
def test_fp16_outputs_and_gradients_match_the_fp64_reference(shape, pattern, dropout_p):
    _check_against_reference(shape, torch.float16, pattern, dropout_p)


# (shape, window): windows narrower than a CPU block (16), spanning several, and wider than the sequence;
# sequences that are and are not multiples of the block.
WINDOW_CASES = [((2, 2, 70, 32), 3), ((1, 2, 53, 64), 8), ((2, 1, 40, 32), 20), ((1, 1, 33, 32), 0),
                ((2, 1, 24, 128), 64)]


@pytest.mark.parametrize("dropout_p", [0.0, 0.1], ids=["no_dropout", "dropout"])
@pytest.mark.parametrize("pattern", ["none", "random_padding"])
@pytest.mark.parametrize("shape,window", WINDOW_CASES, ids=lambda c: str(c))
def test_a_sliding_window_matches_the_fp64_reference(shape, window, pattern, dropout_p):
    """ModernBERT's local layers: query i sees keys j with |i - j| <= window; the kernels skip the key blocks
    (and, backward, the query blocks) wholly outside it."""
    _check_against_reference(shape, torch.float32, pattern, dropout_p, window)


@pytest.mark.parametrize("shape,window", WINDOW_CASES[:2], ids=lambda c: str(c))
def test_a_sliding_window_in_fp16_matches_the_fp64_reference(shape, window):
    _check_against_reference(shape, torch.float16, "random_padding", 0.0, window)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("shape,window", [((2, 12, 2048, 64), 64), ((1, 6, 8192, 64), 64), ((2, 4, 1000, 128), 100)],
                         ids=lambda c: str(c))
def test_gpu_a_sliding_window_at_modernberts_lengths_matches_the_fp64_reference(shape, window, dtype):
    _check_against_reference(shape, dtype, "random_padding", 0.1, window)


def test_a_sliding_window_on_packed_sequences_equals_the_padded_kernel():
    """Positions count from each sequence's start in the packed layout, as in the padded one."""
    lengths = [37, 5, 20]
    heads, dim, window = 2, 32, 6
    q, k, v = qkv(len(lengths), heads, max(lengths), dim, torch.float32)
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    padded = flash_attention(q, k, v, mask.to(q.device), window=window)
    packed = [torch.cat([t[row, :, :length].transpose(0, 1) for row, length in enumerate(lengths)]) for t in (q, k, v)]
    cu_seqlens = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device=q.device)
    out = flash_attention_varlen(*packed, cu_seqlens, max(lengths), window=window)
    expected = torch.cat([padded[row, :, :length].transpose(0, 1) for row, length in enumerate(lengths)])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_a_fully_padded_sequence_gives_zeros_and_zero_gradients():
    q, k, v = qkv(2, 2, 20, 32, torch.float32)
    mask = attention_mask("one_sequence_fully_padded", 2, 20)
    out = flash_attention(q, k, v, mask)
    out.sum().backward()
    assert torch.equal(out[-1], torch.zeros_like(out[-1]))
    for tensor in (q, k, v):
        assert torch.equal(tensor.grad[-1], torch.zeros_like(tensor.grad[-1]))
    assert out[0].abs().sum() > 0


def test_dropout_is_a_function_of_seed_and_offset():
    q, k, v = qkv(1, 2, 24, 32, torch.float32)
    mask = attention_mask("random_padding", 1, 24)
    run = lambda seed, offset: flash_attention(q, k, v, mask, dropout_p=0.2, seed=seed, offset=offset)  # noqa: E731
    assert torch.equal(run(7, 0), run(7, 0))
    assert not torch.equal(run(7, 0), run(8, 0))
    assert not torch.equal(run(7, 0), run(7, 1))


@pytest.mark.parametrize("dropout_p", [0.1, 0.5])
def test_the_kernels_dropout_mask_is_the_reference_pattern_and_keeps_1_minus_p(dropout_p):
    # q = 0 makes every probability 1/S and v = identity makes output[i, j] = keep[i, j] / ((1 - p) S): the
    # kernel's mask can be read off its output exactly.
    batch, heads, seq = 2, 4, 32
    q = torch.zeros(batch, heads, seq, seq, device=device())
    v = torch.eye(seq, device=device()).expand(batch, heads, seq, seq).contiguous()
    out = flash_attention(q, torch.randn_like(q), v, dropout_p=dropout_p, seed=SEED, offset=OFFSET)
    kept = (out * (1 - dropout_p) * seq).round()
    assert set(kept.unique().tolist()) <= {0.0, 1.0}
    expected = dropout_words(SEED, OFFSET, batch, heads, seq, seq) >= threshold(dropout_p)
    assert torch.equal(kept.bool().cpu(), expected)
    big = dropout_words(SEED, OFFSET, 4, 16, 128, 128) >= threshold(dropout_p)  # 1M elements
    assert abs(big.float().mean().item() - (1 - dropout_p)) < 0.003


def _pack(q, k, v, lengths):
    """(batch, heads, seq, dim) right-padded -> (tokens, heads, dim) packed, with cu_seqlens."""
    pieces = [[t[b, :, :n].transpose(0, 1) for b, n in enumerate(lengths)] for t in (q, k, v)]
    cu = torch.tensor([0] + list(torch.tensor(lengths).cumsum(0)), dtype=torch.int32, device=q.device)
    return [torch.cat(p).detach().requires_grad_() for p in pieces], cu


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("dropout_p", [0.0, 0.1], ids=["no_dropout", "dropout"])
def test_packed_sequences_equal_the_padded_kernel_on_real_tokens(dtype, dropout_p):
    lengths = [21, 5, 16, 1]
    batch, heads, seq, dim = len(lengths), 2, max(lengths), 32
    q, k, v = qkv(batch, heads, seq, dim, dtype)
    mask = (torch.arange(seq)[None, :] < torch.tensor(lengths)[:, None]).long().to(device())
    padded = flash_attention(q, k, v, mask, dropout_p=dropout_p, seed=SEED, offset=OFFSET)
    (pq, pk, pv), cu = _pack(q, k, v, lengths)
    packed = flash_attention_varlen(pq, pk, pv, cu, seq, dropout_p=dropout_p, seed=SEED, offset=OFFSET)
    grad = torch.randn(packed.shape, generator=torch.Generator().manual_seed(3)).to(packed.device, dtype)
    packed.backward(grad)
    # The same gradient through the padded kernel, zero on the padding rows.
    padded_grad = torch.zeros_like(padded)
    for b, n in enumerate(lengths):
        padded_grad[b, :, :n] = grad[cu[b]:cu[b + 1]].transpose(0, 1)
    padded.backward(padded_grad)
    for b, n in enumerate(lengths):
        rows = slice(int(cu[b]), int(cu[b + 1]))
        torch.testing.assert_close(packed[rows], padded[b, :, :n].transpose(0, 1), rtol=0, atol=1e-6)
        for packed_leaf, padded_leaf in ((pq, q), (pk, k), (pv, v)):
            torch.testing.assert_close(packed_leaf.grad[rows], padded_leaf.grad[b, :, :n].transpose(0, 1),
                                       rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad,message", [
    ({"k_shape": (1, 2, 9, 16)}, "one shape"),
    ({"dtype_k": torch.float64}, "one dtype"),
    ({"head_dim": 24}, "head_dim"),
    ({"mask_shape": (1, 7)}, "attention_mask must be"),
])
def test_the_launcher_refuses_what_the_kernels_cannot_do(bad, message):
    dim = bad.get("head_dim", 16)
    q = torch.randn(1, 2, 8, dim)
    k = torch.randn(*bad.get("k_shape", q.shape), dtype=bad.get("dtype_k", torch.float32))
    mask = torch.ones(*bad.get("mask_shape", (1, 8)))
    with pytest.raises(ValueError, match=message):
        flash_attention(q, k, torch.randn_like(q), mask)


@pytest.mark.gpu
@pytest.mark.parametrize("dropout_p", [0.0, 0.1], ids=["no_dropout", "dropout"])
@pytest.mark.parametrize("pattern", MASK_PATTERNS)
@pytest.mark.parametrize("shape", [(2, 2, 40, 32), (2, 4, 512, 64), (1, 2, 300, 128)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=["bf16", "fp16", "fp32"])
def test_gpu_full_shapes_and_bf16_match_the_fp64_reference(dtype, shape, pattern, dropout_p):
    _check_against_reference(shape, dtype, pattern, dropout_p)


# ---- one dropout key per sequence (kernels/keyed_dropout.py) ----------------------------------------------

SAMPLE_SEEDS = [11, 2**40 + 5, 987654321]


def _sample_seeds(values):
    return torch.tensor(values, dtype=torch.int64, device=device())


def test_with_per_sequence_seeds_the_mask_is_the_reference_pattern():
    batch, heads, seq, p = 3, 2, 32, 0.3
    q = torch.zeros(batch, heads, seq, seq, device=device())
    v = torch.eye(seq, device=device()).expand(batch, heads, seq, seq).contiguous()
    out = flash_attention(q, torch.randn_like(q), v, dropout_p=p, offset=OFFSET, sample_seeds=_sample_seeds(SAMPLE_SEEDS))
    kept = (out * (1 - p) * seq).round().bool().cpu()
    assert torch.equal(kept, sample_dropout_words(SAMPLE_SEEDS, OFFSET, heads, seq, seq) >= threshold(p))


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_with_per_sequence_seeds_outputs_and_gradients_match_the_reference(layout):
    lengths, heads, dim, p = [21, 5, 16], 2, 32, 0.2
    batch, seq = len(lengths), max(lengths)
    q, k, v = qkv(batch, heads, seq, dim, torch.float32)
    mask = (torch.arange(seq)[None, :] < torch.tensor(lengths)[:, None]).long().to(device())
    seeds = _sample_seeds(SAMPLE_SEEDS)
    grad = torch.randn(q.shape, generator=torch.Generator().manual_seed(4)).to(device()) * mask[:, None, :, None]
    if layout == "padded":
        out = flash_attention(q, k, v, mask, dropout_p=p, offset=OFFSET, sample_seeds=seeds)
        out.backward(grad)
        leaves_grad = [t.grad for t in (q, k, v)]
    else:
        (pq, pk, pv), cu = _pack(q, k, v, lengths)
        packed = flash_attention_varlen(pq, pk, pv, cu, seq, dropout_p=p, offset=OFFSET, sample_seeds=seeds)
        packed.backward(_pack(grad, grad, grad, lengths)[0][0])
        out = torch.zeros_like(q)
        leaves_grad = [torch.zeros_like(q) for _ in range(3)]
        for b, n in enumerate(lengths):
            rows = slice(int(cu[b]), int(cu[b + 1]))
            out[b, :, :n] = packed[rows].transpose(0, 1).detach()
            for full, leaf in zip(leaves_grad, (pq, pk, pv)):
                full[b, :, :n] = leaf.grad[rows].transpose(0, 1)
    keep = (sample_dropout_words(SAMPLE_SEEDS, OFFSET, heads, seq, seq) >= threshold(p)).to(device())
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    expected = attention_reference(q64, k64, v64, mask, dim ** -0.5, keep, p)
    expected.backward(grad.double())
    real = mask.bool()[:, None, :, None]
    torch.testing.assert_close((out.double() * real), expected * real, rtol=0, atol=TOLERANCE[torch.float32][0])
    for name, ours, leaf in zip("qkv", leaves_grad, (q64, k64, v64)):
        torch.testing.assert_close(ours.double() * real, leaf.grad * real, rtol=0, atol=TOLERANCE[torch.float32][1],
                                   msg=f"d{name}")


def test_with_per_sequence_seeds_a_sequence_gives_the_same_output_in_any_row_and_with_any_padding():
    heads, dim, n = 2, 32, 19
    q, k, v = qkv(2, heads, 24, dim, torch.float32)
    seeds = _sample_seeds([5, 6])
    mask = torch.ones(2, 24, dtype=torch.long, device=device())
    mask[1, n:] = 0
    together = flash_attention(q, k, v, mask, dropout_p=0.3, sample_seeds=seeds)
    alone = flash_attention(q[1:, :, :n], k[1:, :, :n], v[1:, :, :n], dropout_p=0.3, sample_seeds=seeds[1:])
    torch.testing.assert_close(together[1, :, :n], alone[0], rtol=0, atol=1e-6)
    swapped = flash_attention(q.flip(0), k.flip(0), v.flip(0), mask.flip(0), dropout_p=0.3, sample_seeds=seeds.flip(0))
    torch.testing.assert_close(swapped.flip(0), together, rtol=0, atol=0)
