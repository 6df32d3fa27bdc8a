"""Attention and (later) fused kernels for xlmr-ds, installed as `xlmr_ds.kernels`.

Each op has a plain PyTorch reference beside it; `dispatch` picks the implementation in one place.
"""

from xlmr_ds.kernels.dispatch import ATTENTION_BACKENDS, ATTENTION_BACKEND_ENV, attention, resolve_attention_backend

__all__ = ["ATTENTION_BACKENDS", "ATTENTION_BACKEND_ENV", "attention", "resolve_attention_backend"]
