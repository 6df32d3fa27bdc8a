"""Plain PyTorch attention: the reference every faster attention path is compared against.

It materializes the (batch, heads, seq, seq) score matrix, so it is only for tests and small shapes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
) -> torch.Tensor:
    """softmax(q k^T * scale + bias) v with dropout on the probabilities; inputs (batch, heads, seq, dim)."""
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if bias is not None:
        scores = scores + bias
    # At least fp32 for the softmax (half-precision inputs), fp64 when the reference runs in fp64.
    probs = torch.softmax(scores, dim=-1, dtype=torch.promote_types(query.dtype, torch.float32)).to(query.dtype)
    if dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p, training=True)
    return torch.matmul(probs, value)
