"""Fused attention in Triton, FlashAttention-2 style: tiled, online softmax, no (seq x seq) matrix in memory.

Three layers, as for every kernel here:
- the kernels: `_attention_forward`, `_attention_backward_dkdv`, `_attention_backward_dq`;
- the launchers `attention_forward` / `attention_backward`, which check shapes, dtypes and devices and pick
  the grid and block sizes;
- the autograd Functions behind `flash_attention` (padded batch, key mask) and `flash_attention_varlen`
  (sequences packed back to back, described by cumulative lengths).
The reference is `reference.eager_attention` (and `reference.dropout_words` / `reference.sample_dropout_words`
for the dropout pattern).

Semantics: softmax(scale * q k^T over the valid keys) v, with dropout on the probabilities. A query row
with no valid key (a fully padded sequence) gives zeros and zero gradients, not NaN. Dropout keeps an
element (b, h, i, j) when Philox word 0 of counter (j, i, b * heads + h, offset) under key `seed` is at
least threshold(dropout_p), or, given per-sequence seeds, of counter (j, i, h, offset) under key
sample_seeds[b] (i and j count from the sequence's first token, so the mask of a sequence does not depend on
its row, its padding or the packing): the backward pass regenerates the same mask, nothing is stored.

Numerics: inputs fp16, bf16 or fp32, accumulation in fp32 (fp32 dots in IEEE precision, not TF32). The
softmax runs in base 2 (exp2 with log2(e) folded into the scale); the saved row statistic is
lse2 = max + log2(sum), +inf for rows without valid keys so that the backward's exp2(s - lse2) is 0 there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from xlmr_ds.kernels.philox import threshold

LOG2_E = math.log2(math.e)
HEAD_DIMS = (16, 32, 64, 128)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@triton.jit
def _dropout_keep(seed, offset, word2, query_index, key_index, drop_threshold):
    """Booleans of the broadcast shape of query_index and key_index: True where the element survives."""
    c0 = (key_index + query_index * 0).to(tl.uint32)
    c1 = (query_index + key_index * 0).to(tl.uint32)
    c2 = c0 * 0 + word2.to(tl.uint32)
    c3 = c0 * 0 + offset.to(tl.uint32)
    word, _, _, _ = tl.philox(seed, c0, c1, c2, c3)
    return word.to(tl.int64) >= drop_threshold


@triton.jit
def _valid_keys(KEY_MASK, row_offset, cols, col_in, HAS_KEY_MASK: tl.constexpr):
    """Keys that take part: inside the sequence and, with a key mask, marked real (nonzero)."""
    if HAS_KEY_MASK:
        return col_in & (tl.load(KEY_MASK + row_offset + cols, mask=col_in, other=0) != 0)
    return col_in


@triton.jit
def _window_span(first_row, rows_per_block, length, window, step, HAS_WINDOW: tl.constexpr):
    """[lo, hi): the positions a block of `rows_per_block` positions from `first_row` can see, lo a multiple of
    `step` (the other side's block size): all of them without a window, else those within `window` of the block.
    Blocks wholly outside are never loaded: the window's saving."""
    lo = first_row * 0
    hi = lo + length
    if HAS_WINDOW:
        lo = tl.maximum(first_row - window, 0) // step * step
        hi = tl.minimum(first_row + rows_per_block + window, length)
    return lo, hi


@triton.jit
def _in_window(rows, cols, window, HAS_WINDOW: tl.constexpr):
    """(rows, cols) pairs within `window` of each other (all of them without a window)."""
    if HAS_WINDOW:
        distance = rows[:, None] - cols[None, :]
        return (distance <= window) & (distance >= -window)
    return (rows[:, None] >= 0) & (cols[None, :] >= 0)


@triton.jit
def _sequence_bounds(CU_SEQLENS, b, seq_len, IS_VARLEN: tl.constexpr):
    """(first token, length) of sequence b: rows of a padded batch, or a slice of the packed tokens."""
    if IS_VARLEN:
        start = tl.load(CU_SEQLENS + b).to(tl.int64)
        length = (tl.load(CU_SEQLENS + b + 1) - start).to(tl.int32)
    else:
        start = tl.zeros((), dtype=tl.int64)
        length = seq_len
    return start, length


@triton.jit(do_not_specialize=["drop_threshold", "seed", "offset"])
def _attention_forward(
    Q, K, V, O, LSE, KEY_MASK, CU_SEQLENS, SEEDS,
    stride_qb, stride_qh, stride_qs,
    stride_kb, stride_kh, stride_ks,
    stride_vb, stride_vh, stride_vs,
    stride_ob, stride_oh, stride_os,
    stride_lb, stride_lh, stride_mb,
    num_heads, seq_len, scale_log2, keep_scale, drop_threshold, seed, offset, window,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_KEY_MASK: tl.constexpr, IS_VARLEN: tl.constexpr, HAS_DROPOUT: tl.constexpr, DOT_PRECISION: tl.constexpr,
    PER_SAMPLE_SEEDS: tl.constexpr, HAS_WINDOW: tl.constexpr,
):
    block_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // num_heads
    h = bh % num_heads
    philox_key, word2 = seed, bh
    if PER_SAMPLE_SEEDS:  # one key per sequence: its mask does not depend on where it sits in the batch
        philox_key, word2 = tl.load(SEEDS + b), h
    start, length = _sequence_bounds(CU_SEQLENS, b, seq_len, IS_VARLEN)
    if block_m * BLOCK_M >= length:
        return
    rows = block_m * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, HEAD_DIM)
    row_ok = rows < length
    q = tl.load(Q + b * stride_qb + h * stride_qh + (start + rows)[:, None] * stride_qs + dims[None, :],
                mask=row_ok[:, None], other=0.0)
    k_base = K + b * stride_kb + h * stride_kh + start * stride_ks
    v_base = V + b * stride_vb + h * stride_vh + start * stride_vs

    row_max = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    row_sum = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    lo, hi = _window_span(block_m * BLOCK_M, BLOCK_M, length, window, BLOCK_N, HAS_WINDOW)
    for first in range(lo, hi, BLOCK_N):
        cols = first + tl.arange(0, BLOCK_N)
        col_ok = _valid_keys(KEY_MASK, b * stride_mb, cols, cols < length, HAS_KEY_MASK)
        k_t = tl.load(k_base + cols[None, :] * stride_ks + dims[:, None], mask=col_ok[None, :], other=0.0)
        scores = tl.dot(q, k_t, input_precision=DOT_PRECISION) * scale_log2
        scores = tl.where(col_ok[None, :] & _in_window(rows, cols, window, HAS_WINDOW), scores, float("-inf"))
        new_max = tl.maximum(row_max, tl.max(scores, 1))
        # A row that has seen no valid key yet keeps max -inf; subtracting 0 instead keeps exp2 at 0, not NaN.
        safe_max = tl.where(new_max == float("-inf"), 0.0, new_max)
        probs = tl.math.exp2(scores - safe_max[:, None])
        rescale = tl.math.exp2(row_max - safe_max)
        row_sum = row_sum * rescale + tl.sum(probs, 1)
        if HAS_DROPOUT:
            keep = _dropout_keep(philox_key, offset, word2, rows[:, None], cols[None, :], drop_threshold)
            probs = tl.where(keep, probs, 0.0)
        v = tl.load(v_base + cols[:, None] * stride_vs + dims[None, :], mask=col_ok[:, None], other=0.0)
        acc = acc * rescale[:, None] + tl.dot(probs.to(v.dtype), v, input_precision=DOT_PRECISION)
        row_max = new_max

    empty = row_sum == 0.0
    acc = acc * (keep_scale / tl.where(empty, 1.0, row_sum))[:, None]
    tl.store(O + b * stride_ob + h * stride_oh + (start + rows)[:, None] * stride_os + dims[None, :],
             acc.to(O.dtype.element_ty), mask=row_ok[:, None])
    lse2 = tl.where(empty, float("inf"), row_max + tl.math.log2(tl.where(empty, 1.0, row_sum)))
    tl.store(LSE + b * stride_lb + h * stride_lh + start + rows, lse2, mask=row_ok)


@triton.jit(do_not_specialize=["drop_threshold", "seed", "offset"])
def _attention_backward_dkdv(
    Q, K, V, DO, LSE, DELTA, DK, DV, KEY_MASK, CU_SEQLENS, SEEDS,
    stride_qb, stride_qh, stride_qs,
    stride_kb, stride_kh, stride_ks,
    stride_vb, stride_vh, stride_vs,
    stride_ob, stride_oh, stride_os,
    stride_lb, stride_lh, stride_mb,
    num_heads, seq_len, scale, scale_log2, keep_scale, drop_threshold, seed, offset, window,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_KEY_MASK: tl.constexpr, IS_VARLEN: tl.constexpr, HAS_DROPOUT: tl.constexpr, DOT_PRECISION: tl.constexpr,
    PER_SAMPLE_SEEDS: tl.constexpr, HAS_WINDOW: tl.constexpr,
):
    """One block of keys: loops over all query blocks and writes dK, dV (no atomics). dO shares O's strides."""
    block_n = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // num_heads
    h = bh % num_heads
    philox_key, word2 = seed, bh
    if PER_SAMPLE_SEEDS:  # one key per sequence: its mask does not depend on where it sits in the batch
        philox_key, word2 = tl.load(SEEDS + b), h
    start, length = _sequence_bounds(CU_SEQLENS, b, seq_len, IS_VARLEN)
    if block_n * BLOCK_N >= length:
        return
    cols = block_n * BLOCK_N + tl.arange(0, BLOCK_N)
    dims = tl.arange(0, HEAD_DIM)
    col_in = cols < length
    col_ok = _valid_keys(KEY_MASK, b * stride_mb, cols, col_in, HAS_KEY_MASK)
    k = tl.load(K + b * stride_kb + h * stride_kh + (start + cols)[:, None] * stride_ks + dims[None, :],
                mask=col_in[:, None], other=0.0)
    v = tl.load(V + b * stride_vb + h * stride_vh + (start + cols)[:, None] * stride_vs + dims[None, :],
                mask=col_in[:, None], other=0.0)
    q_base = Q + b * stride_qb + h * stride_qh + start * stride_qs
    do_base = DO + b * stride_ob + h * stride_oh + start * stride_os
    stat_base = b * stride_lb + h * stride_lh + start

    dk = tl.zeros((BLOCK_N, HEAD_DIM), dtype=tl.float32)
    dv = tl.zeros((BLOCK_N, HEAD_DIM), dtype=tl.float32)
    lo, hi = _window_span(block_n * BLOCK_N, BLOCK_N, length, window, BLOCK_M, HAS_WINDOW)
    for first in range(lo, hi, BLOCK_M):
        rows = first + tl.arange(0, BLOCK_M)
        row_ok = rows < length
        q = tl.load(q_base + rows[:, None] * stride_qs + dims[None, :], mask=row_ok[:, None], other=0.0)
        do = tl.load(do_base + rows[:, None] * stride_os + dims[None, :], mask=row_ok[:, None], other=0.0)
        # Rows past the end load lse2 = +inf: their probabilities are exactly 0.
        lse2 = tl.load(LSE + stat_base + rows, mask=row_ok, other=float("inf"))
        delta = tl.load(DELTA + stat_base + rows, mask=row_ok, other=0.0)
        scores_t = tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION) * scale_log2
        allowed_t = col_ok[:, None] & _in_window(cols, rows, window, HAS_WINDOW)
        probs_t = tl.where(allowed_t, tl.math.exp2(scores_t - lse2[None, :]), 0.0)
        dprobs_t = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)
        if HAS_DROPOUT:
            keep_t = _dropout_keep(philox_key, offset, word2, rows[None, :], cols[:, None], drop_threshold)
            kept_t = tl.where(keep_t, probs_t * keep_scale, 0.0)
            dprobs_t = tl.where(keep_t, dprobs_t * keep_scale, 0.0)
        else:
            kept_t = probs_t
        dv += tl.dot(kept_t.to(do.dtype), do, input_precision=DOT_PRECISION)
        dscores_t = probs_t * (dprobs_t - delta[None, :])
        dk += tl.dot(dscores_t.to(q.dtype), q, input_precision=DOT_PRECISION)

    tl.store(DK + b * stride_kb + h * stride_kh + (start + cols)[:, None] * stride_ks + dims[None, :],
             (dk * scale).to(DK.dtype.element_ty), mask=col_in[:, None])
    tl.store(DV + b * stride_vb + h * stride_vh + (start + cols)[:, None] * stride_vs + dims[None, :],
             dv.to(DV.dtype.element_ty), mask=col_in[:, None])


@triton.jit(do_not_specialize=["drop_threshold", "seed", "offset"])
def _attention_backward_dq(
    Q, K, V, DO, LSE, DELTA, DQ, KEY_MASK, CU_SEQLENS, SEEDS,
    stride_qb, stride_qh, stride_qs,
    stride_kb, stride_kh, stride_ks,
    stride_vb, stride_vh, stride_vs,
    stride_ob, stride_oh, stride_os,
    stride_lb, stride_lh, stride_mb,
    num_heads, seq_len, scale, scale_log2, keep_scale, drop_threshold, seed, offset, window,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_KEY_MASK: tl.constexpr, IS_VARLEN: tl.constexpr, HAS_DROPOUT: tl.constexpr, DOT_PRECISION: tl.constexpr,
    PER_SAMPLE_SEEDS: tl.constexpr, HAS_WINDOW: tl.constexpr,
):
    """One block of queries: loops over all key blocks and writes dQ. dQ shares Q's strides."""
    block_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // num_heads
    h = bh % num_heads
    philox_key, word2 = seed, bh
    if PER_SAMPLE_SEEDS:  # one key per sequence: its mask does not depend on where it sits in the batch
        philox_key, word2 = tl.load(SEEDS + b), h
    start, length = _sequence_bounds(CU_SEQLENS, b, seq_len, IS_VARLEN)
    if block_m * BLOCK_M >= length:
        return
    rows = block_m * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, HEAD_DIM)
    row_ok = rows < length
    q_offsets = b * stride_qb + h * stride_qh + (start + rows)[:, None] * stride_qs + dims[None, :]
    q = tl.load(Q + q_offsets, mask=row_ok[:, None], other=0.0)
    do = tl.load(DO + b * stride_ob + h * stride_oh + (start + rows)[:, None] * stride_os + dims[None, :],
                 mask=row_ok[:, None], other=0.0)
    stat_offsets = b * stride_lb + h * stride_lh + start + rows
    lse2 = tl.load(LSE + stat_offsets, mask=row_ok, other=float("inf"))
    delta = tl.load(DELTA + stat_offsets, mask=row_ok, other=0.0)
    k_base = K + b * stride_kb + h * stride_kh + start * stride_ks
    v_base = V + b * stride_vb + h * stride_vh + start * stride_vs

    dq = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    lo, hi = _window_span(block_m * BLOCK_M, BLOCK_M, length, window, BLOCK_N, HAS_WINDOW)
    for first in range(lo, hi, BLOCK_N):
        cols = first + tl.arange(0, BLOCK_N)
        col_in = cols < length
        col_ok = _valid_keys(KEY_MASK, b * stride_mb, cols, col_in, HAS_KEY_MASK)
        k = tl.load(k_base + cols[:, None] * stride_ks + dims[None, :], mask=col_in[:, None], other=0.0)
        v = tl.load(v_base + cols[:, None] * stride_vs + dims[None, :], mask=col_in[:, None], other=0.0)
        scores = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale_log2
        probs = tl.where(col_ok[None, :] & _in_window(rows, cols, window, HAS_WINDOW),
                         tl.math.exp2(scores - lse2[:, None]), 0.0)
        dprobs = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
        if HAS_DROPOUT:
            keep = _dropout_keep(philox_key, offset, word2, rows[:, None], cols[None, :], drop_threshold)
            dprobs = tl.where(keep, dprobs * keep_scale, 0.0)
        dscores = probs * (dprobs - delta[:, None])
        dq += tl.dot(dscores.to(k.dtype), k, input_precision=DOT_PRECISION)

    tl.store(DQ + q_offsets, (dq * scale).to(DQ.dtype.element_ty), mask=row_ok[:, None])


# ----------------------------------------------------------------------------------------------------------
# Launchers


@dataclass(frozen=True)
class AttentionLayout:
    """How q/k/v are laid out: a padded batch with a key mask, or packed sequences with cumulative lengths.

    Padded: tensors (batch, heads, seq, head_dim), key_mask (batch, seq) or None, cu_seqlens None.
    Packed: tensors (tokens, heads, head_dim), cu_seqlens (batch + 1,) int32, max_seqlen the longest sequence.
    """

    batch: int
    heads: int
    seq_len: int
    head_dim: int
    key_mask: torch.Tensor | None
    cu_seqlens: torch.Tensor | None
    window: int | None = None
    """A sliding window: query i sees keys j with |i - j| <= window (positions within the sequence); None: all."""

    @property
    def is_varlen(self) -> bool:
        return self.cu_seqlens is not None


@dataclass(frozen=True)
class Dropout:
    """Dropout on the attention probabilities, reproducible from (seed, offset), or from per-sequence seeds."""

    p: float = 0.0
    seed: int = 0
    offset: int = 0
    sample_seeds: torch.Tensor | None = None
    """(batch,) int64 on the inputs' device: sequence b's mask is keyed by sample_seeds[b] alone (counter
    (j, i, h, offset)), whatever its place in the batch (kernels/keyed_dropout.py); `seed` is then unused."""

    @property
    def keep_scale(self) -> float:
        return 1.0 / (1.0 - self.p)


def _strides(tensor: torch.Tensor, layout: AttentionLayout) -> tuple[int, int, int]:
    """(batch, head, token) strides in elements; the packed layout has no batch stride (tokens carry it)."""
    if layout.is_varlen:
        return 0, tensor.stride(1), tensor.stride(0)
    return tensor.stride(0), tensor.stride(1), tensor.stride(2)


def _stat_strides(stat: torch.Tensor, layout: AttentionLayout) -> tuple[int, int]:
    """Row statistics are (batch, heads, seq) padded and (heads, tokens) packed."""
    if layout.is_varlen:
        return 0, stat.stride(0)
    return stat.stride(0), stat.stride(1)


def _block_sizes(head_dim: int, device: torch.device) -> dict:
    if device.type != "cuda":
        # The interpreter runs on CPU one program at a time: small blocks keep tests quick and make short
        # test sequences span several blocks, which is what exercises the tile boundaries.
        return {"BLOCK_M": 16, "BLOCK_N": 16, "num_warps": 1, "num_stages": 1}
    if head_dim <= 64:
        return {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3}
    return {"BLOCK_M": 128, "BLOCK_N": 32, "num_warps": 8, "num_stages": 2}


def _backward_block_sizes(head_dim: int, device: torch.device) -> dict:
    if device.type != "cuda":
        return {"BLOCK_M": 16, "BLOCK_N": 16, "num_warps": 1, "num_stages": 1}
    if head_dim <= 64:
        return {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2}
    return {"BLOCK_M": 32, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2}


def check_inputs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, layout: AttentionLayout) -> None:
    """Refuse what the kernels cannot do with a message saying what was expected."""
    if not (query.shape == key.shape == value.shape):
        raise ValueError(f"flash attention needs q, k, v of one shape; got {tuple(query.shape)}, "
                         f"{tuple(key.shape)}, {tuple(value.shape)}")
    if not (query.dtype == key.dtype == value.dtype) or query.dtype not in DTYPES:
        raise ValueError(f"flash attention needs q, k, v of one dtype among fp16/bf16/fp32; got "
                         f"{query.dtype}, {key.dtype}, {value.dtype}")
    if not (query.device == key.device == value.device):
        raise ValueError("flash attention needs q, k, v on one device")
    if layout.head_dim not in HEAD_DIMS:
        raise ValueError(f"flash attention supports head_dim {HEAD_DIMS}; got {layout.head_dim}")
    if layout.key_mask is not None and tuple(layout.key_mask.shape) != (layout.batch, layout.seq_len):
        raise ValueError(f"attention_mask must be (batch, seq) = {(layout.batch, layout.seq_len)}; "
                         f"got {tuple(layout.key_mask.shape)}")
    if layout.window is not None and layout.window < 0:
        raise ValueError(f"window must be at least 0; got {layout.window}")
    if layout.is_varlen and (layout.cu_seqlens.dtype != torch.int32 or layout.cu_seqlens.dim() != 1):
        raise ValueError("cu_seqlens must be a 1-d int32 tensor of cumulative sequence lengths")


def _dot_precision(dtype: torch.dtype) -> str:
    # fp32 inputs get fp32 products: TF32 would cost ~3 significant digits against the reference.
    return "ieee" if dtype == torch.float32 else "tf32"


def attention_forward(query, key, value, layout: AttentionLayout, scale: float, dropout: Dropout):
    """Output (same shape as q) and the base-2 row statistics lse2 for the backward pass."""
    output = torch.empty_like(query)
    if layout.is_varlen:
        lse2 = torch.empty((layout.heads, query.shape[0]), dtype=torch.float32, device=query.device)
    else:
        lse2 = torch.empty((layout.batch, layout.heads, layout.seq_len), dtype=torch.float32, device=query.device)
    mask = layout.key_mask
    config = _block_sizes(layout.head_dim, query.device)
    grid = (triton.cdiv(layout.seq_len, config["BLOCK_M"]), layout.batch * layout.heads)
    _attention_forward[grid](
        query, key, value, output, lse2,
        mask if mask is not None else query, layout.cu_seqlens if layout.is_varlen else query,
        dropout.sample_seeds if dropout.sample_seeds is not None else query,
        *_strides(query, layout), *_strides(key, layout), *_strides(value, layout), *_strides(output, layout),
        *_stat_strides(lse2, layout), mask.stride(0) if mask is not None else 0,
        layout.heads, layout.seq_len, scale * LOG2_E, dropout.keep_scale, threshold(dropout.p),
        dropout.seed, dropout.offset, layout.window or 0,
        HEAD_DIM=layout.head_dim, HAS_KEY_MASK=mask is not None, IS_VARLEN=layout.is_varlen,
        HAS_DROPOUT=dropout.p > 0.0, DOT_PRECISION=_dot_precision(query.dtype),
        PER_SAMPLE_SEEDS=dropout.sample_seeds is not None, HAS_WINDOW=layout.window is not None, **config,
    )
    return output, lse2


def attention_backward(grad_output, query, key, value, output, lse2, layout: AttentionLayout, scale: float,
                       dropout: Dropout):
    """Gradients of q, k, v. grad_output is made to share the output's strides (the kernels assume so)."""
    grad_output = grad_output.contiguous() if grad_output.stride() != output.stride() else grad_output
    # delta_i = sum_j P_ij dP_ij = dO_i . O_i, also with dropout (the kept, rescaled P is what made O).
    delta = (grad_output.float() * output.float()).sum(-1)
    delta = delta.transpose(0, 1).contiguous() if layout.is_varlen else delta.contiguous()
    # The kernels write each gradient with its input's strides: for a view that is not dense (q, k, v cut from
    # one fused qkv projection) empty_like would give other strides, so the gradients get the inputs' own.
    grad_query, grad_key, grad_value = (torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device)
                                        for t in (query, key, value))
    mask = layout.key_mask
    config = _backward_block_sizes(layout.head_dim, query.device)
    shared = dict(HEAD_DIM=layout.head_dim, HAS_KEY_MASK=mask is not None, IS_VARLEN=layout.is_varlen,
                  HAS_DROPOUT=dropout.p > 0.0, DOT_PRECISION=_dot_precision(query.dtype),
                  PER_SAMPLE_SEEDS=dropout.sample_seeds is not None, HAS_WINDOW=layout.window is not None,
                  **config)
    strides = (*_strides(query, layout), *_strides(key, layout), *_strides(value, layout),
               *_strides(output, layout), *_stat_strides(lse2, layout), mask.stride(0) if mask is not None else 0)
    scalars = (layout.heads, layout.seq_len, scale, scale * LOG2_E, dropout.keep_scale, threshold(dropout.p),
               dropout.seed, dropout.offset, layout.window or 0)
    mask_arg = mask if mask is not None else query
    cu_arg = layout.cu_seqlens if layout.is_varlen else query
    seeds_arg = dropout.sample_seeds if dropout.sample_seeds is not None else query
    key_grid = (triton.cdiv(layout.seq_len, config["BLOCK_N"]), layout.batch * layout.heads)
    _attention_backward_dkdv[key_grid](query, key, value, grad_output, lse2, delta, grad_key, grad_value,
                                       mask_arg, cu_arg, seeds_arg, *strides, *scalars, **shared)
    query_grid = (triton.cdiv(layout.seq_len, config["BLOCK_M"]), layout.batch * layout.heads)
    _attention_backward_dq[query_grid](query, key, value, grad_output, lse2, delta, grad_query,
                                       mask_arg, cu_arg, seeds_arg, *strides, *scalars, **shared)
    return grad_query, grad_key, grad_value


# ----------------------------------------------------------------------------------------------------------
# Autograd


class _FlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query, key, value, layout: AttentionLayout, scale: float, dropout: Dropout):
        query, key, value = (t if t.stride(-1) == 1 else t.contiguous() for t in (query, key, value))
        output, lse2 = attention_forward(query, key, value, layout, scale, dropout)
        ctx.save_for_backward(query, key, value, output, lse2)
        ctx.layout, ctx.scale, ctx.dropout = layout, scale, dropout
        return output

    @staticmethod
    def backward(ctx, grad_output):
        query, key, value, output, lse2 = ctx.saved_tensors
        grads = attention_backward(grad_output, query, key, value, output, lse2, ctx.layout, ctx.scale, ctx.dropout)
        return (*grads, None, None, None)


def flash_attention(query, key, value, attention_mask=None, *, scale=None, dropout_p=0.0, seed=0, offset=0,
                    sample_seeds=None, window=None):
    """Attention over a padded batch: q, k, v (batch, heads, seq, head_dim); attention_mask (batch, seq), 1 = real.
    sample_seeds: (batch,) int64, one dropout key per sequence instead of `seed` (see Dropout). window: query i
    sees only keys j with |i - j| <= window (ModernBERT's local layers: local_attention // 2)."""
    batch, heads, seq_len, head_dim = query.shape
    mask = None
    if attention_mask is not None:
        mask = attention_mask.to(device=query.device, dtype=torch.int8).contiguous()
    layout = AttentionLayout(batch, heads, seq_len, head_dim, mask, None, window)
    check_inputs(query, key, value, layout)
    scale = head_dim ** -0.5 if scale is None else scale
    return _FlashAttention.apply(query, key, value, layout, scale,
                                _dropout(dropout_p, seed, offset, sample_seeds, layout, query.device))


def flash_attention_varlen(query, key, value, cu_seqlens, max_seqlen, *, scale=None, dropout_p=0.0, seed=0,
                           offset=0, sample_seeds=None, window=None):
    """Attention over packed sequences: q, k, v (tokens, heads, head_dim); sequence b is tokens
    cu_seqlens[b]:cu_seqlens[b+1] (int32) and attends only to itself. No padding, so no mask. window: as
    flash_attention's, positions counted within each sequence."""
    tokens, heads, head_dim = query.shape
    layout = AttentionLayout(cu_seqlens.numel() - 1, heads, int(max_seqlen), head_dim, None, cu_seqlens, window)
    check_inputs(query, key, value, layout)
    scale = head_dim ** -0.5 if scale is None else scale
    return _FlashAttention.apply(query, key, value, layout, scale,
                                _dropout(dropout_p, seed, offset, sample_seeds, layout, query.device))


def _dropout(p: float, seed: int, offset: int, sample_seeds: torch.Tensor | None, layout: AttentionLayout,
             device: torch.device) -> Dropout:
    if sample_seeds is not None:
        if sample_seeds.dtype != torch.int64 or tuple(sample_seeds.shape) != (layout.batch,):
            raise ValueError(f"sample_seeds must be ({layout.batch},) int64; got {tuple(sample_seeds.shape)} "
                             f"{sample_seeds.dtype}")
        sample_seeds = sample_seeds.to(device).contiguous()
    return Dropout(p, seed, offset, sample_seeds)
