"""Plain PyTorch references for the kernels: what every faster path is compared against.

Attention (eager_attention, the `eager` backend; attention_reference, the fused kernels' exact semantics),
the dropout pattern of the fused attention (dropout_words) and the masked softmax. They materialize the
(batch, heads, seq, seq) score matrix, so beyond the eager backend they are for tests and small shapes.
The MLM masking reference is the data path's own `xlmr_ds.kernels.mlm_masking_reference.mask_tokens`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from xlmr_ds.kernels.philox import philox4x32


def key_padding_bias(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(batch, seq) mask with 1 for real tokens -> additive (batch, 1, 1, seq) bias on the keys.

    Masked keys get the dtype's most negative finite value rather than -inf, so that a fully padded row
    softmaxes to a uniform distribution instead of NaN (NaN would leak into real rows through 0 * NaN).
    """
    if attention_mask is None:
        return None
    keep = attention_mask.to(torch.bool)[:, None, None, :]
    bias = torch.zeros(keep.shape, dtype=dtype, device=attention_mask.device)
    return bias.masked_fill(~keep, torch.finfo(dtype).min)


def eager_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    bias: torch.Tensor | None,
    dropout_p: float,
    scale: float,
    dropout_keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """softmax(q k^T * scale + bias) v with dropout on the probabilities; inputs (batch, heads, seq, dim).
    dropout_keep (batch, heads, seq, seq) booleans, if given, are the kept probabilities (instead of torch's RNG)."""
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if bias is not None:
        scores = scores + bias
    # At least fp32 for the softmax (half-precision inputs), fp64 when the reference runs in fp64.
    probs = torch.softmax(scores, dim=-1, dtype=torch.promote_types(query.dtype, torch.float32)).to(query.dtype)
    if dropout_keep is not None:
        probs = probs * dropout_keep.to(probs.dtype) * (1.0 / (1.0 - dropout_p))
    elif dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p, training=True)
    return torch.matmul(probs, value)


def attention_reference(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scale: float,
    dropout_keep: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    window: int | None = None,
) -> torch.Tensor:
    """What the fused kernels compute, written plainly (tests run it in fp64).

    attention_mask (batch, seq), 1 = real token, masks keys. A query row with no valid key gives zeros.
    dropout_keep (batch, heads, seq, seq) booleans, if given, are the kept probabilities (scaled by 1/(1-p)).
    window: query i sees only keys j with |i - j| <= window.
    """
    seq = query.shape[-2]
    allowed = torch.ones(query.shape[0], 1, seq, seq, dtype=torch.bool, device=query.device)
    if attention_mask is not None:
        allowed = allowed & attention_mask.to(torch.bool)[:, None, None, :]
    if window is not None:
        position = torch.arange(seq, device=query.device)
        allowed = allowed & ((position[:, None] - position[None, :]).abs() <= window)
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    # Rows without any allowed key softmax to uniform under the finite fill; the kernels define them as 0.
    probs = torch.softmax(scores, dim=-1) * allowed.any(-1, keepdim=True).to(scores.dtype)
    if dropout_keep is not None:
        probs = probs * dropout_keep.to(probs.dtype) / (1.0 - dropout_p)
    return torch.matmul(probs, value)


def dropout_words(seed: int, offset: int, batch: int, heads: int, seq_q: int, seq_k: int) -> torch.Tensor:
    """Philox word 0 for every (b, h, i, j) of an attention call, as int64 (batch, heads, seq_q, seq_k).

    The kernels keep element (b, h, i, j) when this word is at least `philox.threshold(dropout_p)`.
    """
    bh = np.arange(batch * heads).reshape(batch, heads, 1, 1)
    rows = np.arange(seq_q).reshape(1, 1, seq_q, 1)
    cols = np.arange(seq_k).reshape(1, 1, 1, seq_k)
    word, _, _, _ = philox4x32(seed, cols, rows, bh, offset)
    return torch.from_numpy(word.astype(np.int64))


def sample_dropout_words(sample_seeds, offset: int, heads: int, seq_q: int, seq_k: int) -> torch.Tensor:
    """Philox word 0 for every (b, h, i, j) of an attention call with one key per sequence (counter (j, i, h,
    offset) under key sample_seeds[b]), as int64 (batch, heads, seq_q, seq_k)."""
    heads_ = np.arange(heads).reshape(heads, 1, 1)
    rows = np.arange(seq_q).reshape(1, seq_q, 1)
    cols = np.arange(seq_k).reshape(1, 1, seq_k)
    words = [philox4x32(int(seed), cols, rows, heads_, offset)[0] for seed in sample_seeds]
    return torch.from_numpy(np.stack(words).astype(np.int64))


def masked_softmax_reference(scores: torch.Tensor, mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    """softmax(scale * scores + mask) over the last dim; mask additive (float) or boolean (True = take part),
    broadcastable to scores. Rows where nothing takes part give zeros."""
    logits = scores * scale
    if mask is not None and mask.dtype == torch.bool:
        logits = logits.masked_fill(~mask, float("-inf"))
    elif mask is not None:
        logits = logits + mask
    empty = torch.isneginf(logits).all(-1, keepdim=True)
    accumulate = torch.promote_types(scores.dtype, torch.float32)
    probs = torch.softmax(logits.masked_fill(empty, 0.0), dim=-1, dtype=accumulate)
    return probs.masked_fill(empty, 0.0).to(scores.dtype)


def bias_gelu_reference(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """gelu(x + bias), exact (erf) GELU: what kernels/fused_bias_gelu.py computes."""
    return F.gelu(x + bias)


def geglu_reference(h: torch.Tensor) -> torch.Tensor:
    """gelu(a) * b for h = cat(a, b), exact (erf) GELU: what kernels/fused_geglu.py computes."""
    value, gate = h.chunk(2, dim=-1)
    return F.gelu(value) * gate


def rotary_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x * cos + rotate_half(x) * sin in fp32 (at least), back in x's dtype: what kernels/fused_rotary.py
    computes, and transformers' apply_rotary_pos_emb for ModernBERT."""
    wide = x.to(torch.promote_types(x.dtype, torch.float32))
    half = x.shape[-1] // 2
    rotated = torch.cat((-wide[..., half:], wide[..., :half]), dim=-1)
    return (wide * cos.to(wide.dtype) + rotated * sin.to(wide.dtype)).to(x.dtype)


def dropout_add_layer_norm_reference(x, residual, weight, bias, eps: float, keep: torch.Tensor | None = None,
                                     p: float = 0.0) -> torch.Tensor:
    """LayerNorm(residual + dropout(x)) * weight + bias, with the kept elements given (scaled by 1/(1-p))."""
    if keep is not None:
        x = x * keep.to(x.dtype) / (1.0 - p)
    return F.layer_norm(residual + x, (x.shape[-1],), weight, bias, eps)


def row_dropout_words(seed: int, offset: int, rows: int, cols: int, stream: int) -> torch.Tensor:
    """Philox word 0 for each (row, col) of a row-wise kernel's dropout (counter (col, row, stream, offset)),
    as int64 (rows, cols); an element is kept when its word is at least `philox.threshold(p)`."""
    word, _, _, _ = philox4x32(seed, np.arange(cols)[None, :], np.arange(rows)[:, None], stream, offset)
    return torch.from_numpy(word.astype(np.int64))


def sample_row_dropout_words(sample_seeds, offset: int, lengths, cols: int, stream: int) -> torch.Tensor:
    """Philox word 0 for each token row of packed sequences with one key per sequence: row t of sequence b
    has counter (col, t, stream, offset) under key sample_seeds[b]; int64 (sum(lengths), cols)."""
    words = [philox4x32(int(seed), np.arange(cols)[None, :], np.arange(length)[:, None], stream, offset)[0]
             for seed, length in zip(sample_seeds, lengths)]
    return torch.from_numpy(np.concatenate(words).astype(np.int64))
