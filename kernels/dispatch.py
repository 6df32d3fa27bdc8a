"""The single place where kernel implementations are chosen.

The kernel backend picks the implementation of every fused op of a block, attention, bias+GELU and
dropout+residual+LayerNorm: "triton" (the Triton kernels: flash_attention.py, with the Triton masked softmax
for head dims the fused kernel does not take, fused_bias_gelu.py, fused_residual_layernorm.py), "torch"
(torch's scaled_dot_product_attention and PyTorch ops), "eager" (attention as the explicit reference in
reference.py, PyTorch ops for the rest) and "auto": Triton for CUDA tensors, torch elsewhere. The environment
variable XLMR_DS_KERNELS forces a backend for every call, so tests and users can compare implementations
without touching code; XLMR_DS_ATTENTION is read as its deprecated alias. The Triton modules are imported on
first use: Triton decides at import time whether its kernels run compiled or in the CPU interpreter
(TRITON_INTERPRET=1), and CPU-only jobs never need it.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.kernels.keyed_dropout import SiteSeeds, keep_mask, keyed_dropout
from xlmr_ds.kernels.reference import eager_attention, key_padding_bias
from xlmr_ds.logs import error_line

KERNEL_BACKENDS = ("auto", "torch", "eager", "triton")
KERNEL_BACKEND_ENV = "XLMR_DS_KERNELS"
DEPRECATED_KERNEL_BACKEND_ENV = "XLMR_DS_ATTENTION"
"""A deprecated alias of KERNEL_BACKEND_ENV that scripts and users still set: read, with a one-line warning."""
MASKING_BACKENDS = ("auto", "numpy", "triton")


def triton_runs_on(device: torch.device) -> bool:
    """Whether Triton kernels can run on tensors of `device`: compiled on CUDA, interpreted with TRITON_INTERPRET=1."""
    if device.type == "cuda":
        return True
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0") and device.type == "cpu"


def forced_kernel_backend() -> str | None:
    """The backend the environment forces for every call (XLMR_DS_KERNELS, else its deprecated alias), or None."""
    forced = os.environ.get(KERNEL_BACKEND_ENV)
    if forced:
        return _checked_forced(KERNEL_BACKEND_ENV, forced)
    forced = os.environ.get(DEPRECATED_KERNEL_BACKEND_ENV)
    if forced:
        _warn_deprecated_once(forced)
        return _checked_forced(DEPRECATED_KERNEL_BACKEND_ENV, forced)
    return None


def _checked_forced(variable: str, forced: str) -> str:
    if forced not in KERNEL_BACKENDS:
        raise XLMRDSError(f"{variable}={forced!r} is not a kernel backend; use one of {', '.join(KERNEL_BACKENDS)}")
    return forced


_warned_deprecated: set[str] = set()


def _warn_deprecated_once(value: str) -> None:
    """One line per process: the backend is resolved at every kernel call."""
    if value not in _warned_deprecated:
        _warned_deprecated.add(value)
        error_line(f"xlmr-ds: warning: {DEPRECATED_KERNEL_BACKEND_ENV} is deprecated (it picks every fused kernel, "
                   f"not only attention); set {KERNEL_BACKEND_ENV}={value} instead")


def resolve_kernel_backend(backend: str = "auto", device: torch.device | str = "cpu") -> str:
    """The concrete backend ("triton", "torch" or "eager") for a requested one on `device`, after the
    environment override."""
    backend = forced_kernel_backend() or backend
    if backend not in KERNEL_BACKENDS:
        raise XLMRDSError(f"kernel backend {backend!r} is unknown; use one of {', '.join(KERNEL_BACKENDS)}")
    device = torch.device(device)
    if backend == "auto":
        return "triton" if device.type == "cuda" else "torch"
    if backend == "triton" and not triton_runs_on(device):
        raise XLMRDSError(
            f"the triton kernel backend needs CUDA tensors (got {device.type}); on CPU set TRITON_INTERPRET=1 "
            "before starting Python to run the kernels in Triton's interpreter, or use backend torch"
        )
    return backend


def dropout_seed() -> int:
    """A fresh Philox seed for one kernel call, drawn from torch's CPU generator: reproducible under
    torch.manual_seed, saved and restored with the CPU RNG state, replayed by activation checkpointing,
    and free of any host-device synchronization."""
    return int(torch.randint(0, 2**62, (), dtype=torch.int64))


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    dropout_p: float = 0.0,
    scale: float | None = None,
    backend: str = "auto",
    dropout_seeds: SiteSeeds | None = None,
) -> torch.Tensor:
    """Bidirectional attention over (batch, heads, seq, head_dim) inputs.

    attention_mask is (batch, seq) with 1 for real tokens (the Hugging Face convention) and masks keys
    only. dropout_p is applied as given: the caller passes 0.0 in eval mode. dropout_seeds keys the dropout
    by sample (keyed_dropout.py) instead of drawing it from the RNG.
    """
    if scale is None:
        scale = query.shape[-1] ** -0.5
    chosen = resolve_kernel_backend(backend, query.device)
    keyed = dropout_seeds is not None and dropout_p > 0.0
    if chosen == "triton":
        return _triton_attention(query, key, value, attention_mask, dropout_p, scale, dropout_seeds if keyed else None)
    bias = key_padding_bias(attention_mask, query.dtype)
    if keyed:
        # SDPA draws its own mask: keyed dropout needs the probabilities in hand.
        keep = keep_mask(dropout_seeds, dropout_p, (query.shape[1], query.shape[2], key.shape[2]), "attention",
                         query.device)
        return eager_attention(query, key, value, bias, dropout_p, scale, keep)
    if chosen == "eager":
        return eager_attention(query, key, value, bias, dropout_p, scale)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=dropout_p, scale=scale)


def attention_varlen(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_seqlen: int,
    *,
    dropout_p: float = 0.0,
    scale: float | None = None,
    dropout_seeds: SiteSeeds | None = None,
) -> torch.Tensor:
    """Attention over packed sequences (tokens, heads, head_dim), sequence b = tokens cu_seqlens[b]:cu_seqlens[b+1].

    Only the Triton backend has a packed kernel; callers use it when resolve_kernel_backend says "triton".
    """
    from xlmr_ds.kernels.flash_attention import flash_attention_varlen

    seed, sample_seeds = _kernel_seeds(dropout_p, dropout_seeds)
    return flash_attention_varlen(query, key, value, cu_seqlens, max_seqlen, scale=scale, dropout_p=dropout_p,
                                  seed=seed, sample_seeds=sample_seeds)


def _kernel_seeds(dropout_p: float, dropout_seeds: SiteSeeds | None) -> tuple[int, torch.Tensor | None]:
    """A kernel's (seed, per-sample seeds): keyed by sample when given, else a fresh seed from the RNG."""
    if dropout_p == 0.0:
        return 0, None
    if dropout_seeds is not None:
        return 0, dropout_seeds.device
    return dropout_seed(), None


def _triton_attention(query, key, value, attention_mask, dropout_p, scale, dropout_seeds):
    from xlmr_ds.kernels.flash_attention import HEAD_DIMS, flash_attention

    if query.shape[-1] in HEAD_DIMS:
        seed, sample_seeds = _kernel_seeds(dropout_p, dropout_seeds)
        return flash_attention(query, key, value, attention_mask, scale=scale, dropout_p=dropout_p, seed=seed,
                               sample_seeds=sample_seeds)
    # A head size the fused kernel does not take: materialize the scores, fuse scale + mask + softmax.
    from xlmr_ds.kernels.masked_softmax import masked_softmax

    keys_kept = None if attention_mask is None else attention_mask.to(torch.bool)[:, None, None, :]
    probs = masked_softmax(torch.matmul(query, key.transpose(-1, -2)), keys_kept, scale)
    if dropout_seeds is not None:
        keep = keep_mask(dropout_seeds, dropout_p, tuple(probs.shape[1:]), "attention", probs.device)
        probs = probs * keep.to(probs.dtype) * (1.0 / (1.0 - dropout_p))
    elif dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p, training=True)
    return torch.matmul(probs, value)


def bias_gelu(x: torch.Tensor, bias: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """gelu(x + bias): one Triton pass on the Triton backend, PyTorch elsewhere."""
    if resolve_kernel_backend(backend, x.device) == "triton":
        from xlmr_ds.kernels.fused_bias_gelu import bias_gelu as triton_bias_gelu

        return triton_bias_gelu(x, bias)
    return F.gelu(x + bias)


def dropout_add_layer_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                           dropout_p: float, eps: float, backend: str = "auto",
                           dropout_seeds: SiteSeeds | None = None) -> torch.Tensor:
    """LayerNorm(residual + dropout(x)): one Triton pass on the Triton backend, PyTorch elsewhere.
    dropout_p is applied as given: the caller passes 0.0 in eval mode. dropout_seeds keys it by sample."""
    keyed = dropout_seeds is not None and dropout_p > 0.0
    if resolve_kernel_backend(backend, x.device) == "triton":
        from xlmr_ds.kernels.fused_residual_layernorm import dropout_add_layer_norm as triton_add_norm

        if keyed:
            return triton_add_norm(x, residual, weight, bias, dropout_p, eps, row_keys=dropout_seeds.row_keys(x))
        seed = dropout_seed() if dropout_p > 0.0 else 0
        return triton_add_norm(x, residual, weight, bias, dropout_p, eps, seed=seed)
    x = dropout(x, dropout_p, dropout_seeds)
    return F.layer_norm(residual + x, (x.shape[-1],), weight, bias, eps)


def dropout(x: torch.Tensor, p: float, dropout_seeds: SiteSeeds | None = None) -> torch.Tensor:
    """Dropout of (batch, seq, features) x with probability p (the caller passes 0.0 in eval mode): keyed by
    sample when dropout_seeds are given, from torch's RNG otherwise."""
    if p == 0.0:
        return x
    if dropout_seeds is not None:
        return keyed_dropout(x, p, dropout_seeds)
    return F.dropout(x, p=p, training=True)


def mlm_mask(tokens: torch.Tensor, sample_index: torch.Tensor, config, seed: int, backend: str = "auto"):
    """(input_ids, labels) for a (batch, seq) tensor of token ids: the Triton kernel on CUDA ("auto") or where
    forced, the NumPy reference row by row otherwise. Both give bit-identical results."""
    if backend not in MASKING_BACKENDS:
        raise XLMRDSError(f"masking backend {backend!r} is unknown; use one of {', '.join(MASKING_BACKENDS)}")
    if backend == "triton" or (backend == "auto" and tokens.device.type == "cuda"):
        from xlmr_ds.kernels.mlm_masking import mlm_mask as triton_mlm_mask

        return triton_mlm_mask(tokens, sample_index, config, seed)
    from xlmr_ds.kernels.mlm_masking_reference import mask_tokens

    rows = [mask_tokens(row, config, seed, int(index))
            for row, index in zip(tokens.cpu().numpy(), sample_index.tolist())]
    input_ids = torch.from_numpy(np.stack([row[0] for row in rows])).to(tokens.device)
    labels = torch.from_numpy(np.stack([row[1] for row in rows])).to(tokens.device)
    return input_ids, labels
