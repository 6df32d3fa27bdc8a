"""Building the model for DeepSpeed: under zero.Init for ZeRO-3 (never whole on one rank), and the
optimizer's parameter groups (no weight decay on biases and LayerNorms, as in RoBERTa)."""

from __future__ import annotations

import torch
from torch import nn

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.logs import log
from xlmr_ds.model.architectures import ModelConfig, initialize_module, masked_lm
from xlmr_ds.model.hf import load_hf, require_masked_lm
from xlmr_ds.model.modern_config import ModernBertConfig


def build_model(config: ModelConfig, ds_config: dict, stage: int, init_from: str | None,
                activation_checkpointing: bool = False) -> nn.Module:
    """The model to train, of `config`'s architecture: Hugging Face weights from `init_from` (whose config.json
    `config` is, with the data's vocabulary), or freshly initialized (partitioned as it is built under ZeRO-3)."""
    if init_from and isinstance(config, ModernBertConfig):
        return _modern_from_hf(config, init_from, activation_checkpointing)
    if init_from:
        require_masked_lm(init_from, "--init-from")  # pretraining goes on with the LM head it was trained with
        model = load_hf(init_from, activation_checkpointing=activation_checkpointing)
        if model.config.vocab_size != config.vocab_size:
            raise XLMRDSError(f"--init-from {init_from}: the model has {model.config.vocab_size:,} ids but the data's "
                              f"tokenizer {config.vocab_size:,}; binarize the data with the model's tokenizer")
        if model.config != config:
            differs = ", ".join(f"{name} {value} vs {getattr(config, name)}"
                                for name, value in model.config.to_dict().items() if value != getattr(config, name))
            raise XLMRDSError(f"--init-from {init_from}: not the model this run trains ({differs}; weights vs run)")
        log(f"--init-from {init_from}: {config.num_layers} layers of width {config.hidden_size} ({config.num_heads} "
            f"heads, FFN {config.ffn_size}), {config.max_sequence_length} positions, LayerNorm eps "
            f"{config.layer_norm_eps:g}, dropout {config.hidden_dropout:g} (attention {config.attention_dropout:g}), "
            f"as its config.json says")
        return model
    if stage < 3:
        return masked_lm(config, activation_checkpointing=activation_checkpointing)
    import deepspeed

    # Each parameter is partitioned as soon as its module is built, so Large never exists whole on a rank.
    # The modules' own default initialization ran before partitioning; apply ours one module at a time,
    # gathered, with rank 0's values broadcast to the others.
    with deepspeed.zero.Init(config_dict_or_path=ds_config):
        model = masked_lm(config, initialize=False, activation_checkpointing=activation_checkpointing)
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        if own:
            with deepspeed.zero.GatheredParameters(own, modifier_rank=0):
                if torch.distributed.get_rank() == 0:
                    initialize_module(config, name, module)
    return model


def _modern_from_hf(config: ModernBertConfig, init_from: str, activation_checkpointing: bool) -> nn.Module:
    """A Hugging Face ModernBERT / mmBERT masked LM to continue pretraining, which must be the run's model."""
    from xlmr_ds.model.modern_hf import load_modern_hf

    model = load_modern_hf(init_from)
    if model.config != config:
        theirs = model.config.to_dict()
        differs = ", ".join(f"{name} {theirs[name]} vs {getattr(config, name)}" for name in theirs
                            if name != "architecture" and theirs[name] != getattr(config, name))
        raise XLMRDSError(f"--init-from {init_from}: not the model this run trains ({differs}; weights vs run): "
                          f"its vocabulary and special ids must be the data's tokenizer's")
    model.activation_checkpointing = activation_checkpointing
    log(f"--init-from {init_from}: ModernBERT, {config.num_layers} layers of width {config.hidden_size} "
        f"({config.num_heads} heads, GeGLU {config.ffn_size}), as its config.json says")
    return model


def parameter_groups(model: nn.Module) -> list[dict]:
    """Weight decay (the optimizer's setting) on matrices; none on biases, LayerNorms and the LM-head bias."""
    decay, no_decay = [], []
    seen = set()
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if id(parameter) in seen:
                continue  # the tied decoder weight is the word embeddings
            seen.add(id(parameter))
            if isinstance(module, nn.LayerNorm) or name == "bias":
                no_decay.append(parameter)
            else:
                decay.append(parameter)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
