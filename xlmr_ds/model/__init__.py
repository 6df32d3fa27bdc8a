"""The XLM-R model: configuration, architecture and Hugging Face interop. Imports nothing from training."""

from xlmr_ds.model.config import PRESETS, XLMRConfig, preset
from xlmr_ds.model.modeling import (
    IGNORE_INDEX,
    MaskedLMOutput,
    XLMRForMaskedLM,
    largest_parameter_count,
    parameter_count,
)

__all__ = [
    "IGNORE_INDEX",
    "MaskedLMOutput",
    "PRESETS",
    "XLMRConfig",
    "XLMRForMaskedLM",
    "largest_parameter_count",
    "parameter_count",
    "preset",
]
