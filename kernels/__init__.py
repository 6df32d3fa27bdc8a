"""Kernels for xlmr-ds, installed as `xlmr_ds.kernels`.

Triton kernels (flash_attention.py: fused attention, padded and packed; masked_softmax.py; mlm_masking.py;
fused_bias_gelu.py; fused_residual_layernorm.py; keyed_dropout.py keys their dropout by sample),
each beside a plain reference (reference.py, philox.py, mlm_masking_reference.py, which the data loader also
masks with). `dispatch` picks the implementation in one place; the Triton modules are imported only when used.
This package imports nothing of xlmr_ds but its foundation modules (errors, vocab).
"""

from xlmr_ds.kernels.dispatch import (
    ATTENTION_BACKEND_ENV,
    ATTENTION_BACKENDS,
    attention,
    attention_varlen,
    bias_gelu,
    dropout,
    dropout_add_layer_norm,
    mlm_mask,
    resolve_attention_backend,
)
from xlmr_ds.kernels.keyed_dropout import BatchDropoutSeeds, DropoutKeys, SiteSeeds, site_of

__all__ = ["ATTENTION_BACKENDS", "ATTENTION_BACKEND_ENV", "BatchDropoutSeeds", "DropoutKeys", "SiteSeeds", "attention",
           "attention_varlen", "bias_gelu", "dropout", "dropout_add_layer_norm", "mlm_mask",
           "resolve_attention_backend", "site_of"]
