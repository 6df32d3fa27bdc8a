"""Kernels for xlmr-ds, installed as `xlmr_ds.kernels`.

Triton kernels (flash_attention.py: fused attention, padded and packed; masked_softmax.py; mlm_masking.py;
fused_bias_gelu.py; fused_residual_layernorm.py; ModernBERT's fused_geglu.py and fused_rotary.py; keyed_dropout.py
keys their dropout by sample),
each beside a plain reference (reference.py, philox.py, mlm_masking_reference.py, which the data loader also
masks with). `dispatch` picks the implementation in one place; the Triton modules are imported only when used.
This package imports nothing of xlmr_ds but its foundation modules (errors, logs, vocab).

From the repository root the current directory is on sys.path (`python -m xlmr_ds ...`, `python -m pytest`), so
`import kernels` finds this folder first. It would shadow the PyPI package `kernels`, which transformers (5.25 and
later) requires and imports at start-up, and `import transformers` would fail. Imported by that name, this file
therefore puts the installed package in its place and defines nothing of its own.
"""

import sys


def _put_the_installed_package_in_place() -> None:
    """Load the package `kernels` found on the rest of sys.path into sys.modules["kernels"]. The import system
    returns what sys.modules holds once this file has run, so `import kernels` gets that package."""
    import importlib.machinery
    import importlib.util
    import os

    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    elsewhere = [entry for entry in sys.path
                 if not isinstance(entry, str) or os.path.abspath(entry or os.curdir) != checkout]
    spec = importlib.machinery.PathFinder.find_spec(__name__, elsewhere)
    if spec is None or spec.loader is None:
        return  # none installed: stay empty and unversioned, which transformers reads as "not available"
    package = importlib.util.module_from_spec(spec)
    sys.modules[__name__] = package
    spec.loader.exec_module(package)


if __name__ == "kernels":
    _put_the_installed_package_in_place()
else:
    from xlmr_ds.kernels.dispatch import (
        DEPRECATED_KERNEL_BACKEND_ENV,
        KERNEL_BACKEND_ENV,
        KERNEL_BACKENDS,
        attention,
        attention_varlen,
        bias_gelu,
        dropout,
        dropout_add_layer_norm,
        mlm_mask,
        resolve_kernel_backend,
    )
    from xlmr_ds.kernels.keyed_dropout import BatchDropoutSeeds, DropoutKeys, SiteSeeds, site_of

    __all__ = ["DEPRECATED_KERNEL_BACKEND_ENV", "KERNEL_BACKENDS", "KERNEL_BACKEND_ENV", "BatchDropoutSeeds",
               "DropoutKeys", "SiteSeeds", "attention", "attention_varlen", "bias_gelu", "dropout",
               "dropout_add_layer_norm", "mlm_mask", "resolve_kernel_backend", "site_of"]
