"""The single place where the attention implementation is chosen.

Backends: "torch" (torch's scaled_dot_product_attention, which picks its fused kernels), "eager" (the
explicit reference in reference.py) and "auto" (the fastest available: "torch" until the Triton kernels
land). The environment variable XLMR_DS_ATTENTION forces a backend for every call, so tests and users can
compare implementations without touching code.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.kernels.reference import eager_attention, key_padding_bias

ATTENTION_BACKENDS = ("auto", "torch", "eager")
ATTENTION_BACKEND_ENV = "XLMR_DS_ATTENTION"


def resolve_attention_backend(backend: str = "auto") -> str:
    """The concrete backend ("torch" or "eager") for a requested one, after the environment override."""
    forced = os.environ.get(ATTENTION_BACKEND_ENV)
    if forced:
        if forced not in ATTENTION_BACKENDS:
            raise XLMRDSError(
                f"{ATTENTION_BACKEND_ENV}={forced!r} is not an attention backend; use one of {', '.join(ATTENTION_BACKENDS)}"
            )
        backend = forced
    if backend not in ATTENTION_BACKENDS:
        raise XLMRDSError(f"attention backend {backend!r} is unknown; use one of {', '.join(ATTENTION_BACKENDS)}")
    return "torch" if backend == "auto" else backend


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    dropout_p: float = 0.0,
    scale: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Bidirectional attention over (batch, heads, seq, head_dim) inputs.

    attention_mask is (batch, seq) with 1 for real tokens (the Hugging Face convention) and masks keys
    only. dropout_p is applied as given: the caller passes 0.0 in eval mode.
    """
    if scale is None:
        scale = query.shape[-1] ** -0.5
    bias = key_padding_bias(attention_mask, query.dtype)
    if resolve_attention_backend(backend) == "eager":
        return eager_attention(query, key, value, bias, dropout_p, scale)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=dropout_p, scale=scale)
