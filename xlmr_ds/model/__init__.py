"""The XLM-R model: configuration (config.py), architecture (modeling.py) and the Hugging Face adapter (hf.py,
imported on its own: `from xlmr_ds.model.hf import load_hf, save_hf`). Imports nothing from training."""

from xlmr_ds.model.config import PRESETS, XLMRConfig, preset
from xlmr_ds.model.modeling import MaskedLMOutput, XLMRForMaskedLM, largest_parameter_count, parameter_count

__all__ = [
    "MaskedLMOutput",
    "PRESETS",
    "XLMRConfig",
    "XLMRForMaskedLM",
    "largest_parameter_count",
    "parameter_count",
    "preset",
]
