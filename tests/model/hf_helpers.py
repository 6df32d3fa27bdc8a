"""Building Hugging Face twins of our configs, with every weight randomized (no hub)."""

import torch
from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

from xlmr_ds.model.hf import config_to_hf


def random_hf_model(config, attn_implementation: str = "eager", seed: int = 0) -> XLMRobertaForMaskedLM:
    """An HF model of `config` whose biases and LayerNorms are random too, so a mis-mapped one shows."""
    hf_config = XLMRobertaConfig(**config_to_hf(config))
    hf_config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    model = XLMRobertaForMaskedLM(hf_config)
    with torch.no_grad():
        for parameter in model.parameters():  # unique parameters: ties survive in-place updates
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.eval()
