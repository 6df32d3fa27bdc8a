"""The models: XLM-R's configuration (config.py), architecture (modeling.py), task heads (heads.py) and Hugging
Face adapter (hf.py, imported on its own: `from xlmr_ds.model.hf import load_hf, save_hf`); ModernBERT's
(mmBERT's) configuration and presets (modern_config.py), architecture (modern_modeling.py) and Hugging Face
adapter (modern_hf.py). Imports nothing from training.

The names below are loaded when first used, so that `xlmr_ds.model.config` (presets, no torch) is cheap to
import for a command line that only needs the presets' names.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "PRESETS": "config", "XLMRConfig": "config", "preset": "config",
    "MaskedLMOutput": "modeling", "XLMRForMaskedLM": "modeling", "largest_parameter_count": "modeling",
    "parameter_count": "modeling", "XLMRModel": "modeling",
    "MODERN_PRESETS": "modern_config", "ModernBertConfig": "modern_config",
    "ModernBertForMaskedLM": "modern_modeling",
    "ClassifierOutput": "heads", "XLMRForSequenceClassification": "heads", "XLMRForTokenClassification": "heads",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
