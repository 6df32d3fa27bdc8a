"""The architectures xlmr-ds builds, and how a preset name or a config file picks one.

A model config file is a JSON object of one architecture's config fields; its "architecture" key names the
architecture ("xlmr" when it has none, as in every config file of earlier releases). Preset names are unique
across architectures. The parameter counts build the model on the meta device: nothing is allocated.
"""

from __future__ import annotations

from pathlib import Path

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.jsonfile import read_json_object
from xlmr_ds.model.config import PRESETS, XLMRConfig
from xlmr_ds.model.modern_config import MODERN_PRESETS, ModernBertConfig
from xlmr_ds.vocab import BOS_ID, EOS_ID, PAD_ID

ModelConfig = XLMRConfig | ModernBertConfig
XLMR, MODERNBERT = "xlmr", ModernBertConfig.architecture
CONFIG_CLASSES: dict[str, type] = {XLMR: XLMRConfig, MODERNBERT: ModernBertConfig}
ARCHITECTURE_PRESETS: dict[str, dict[str, ModelConfig]] = {XLMR: PRESETS, MODERNBERT: MODERN_PRESETS}
DESCRIPTIONS = {XLMR: "XLM-R (RoBERTa)", MODERNBERT: "ModernBERT"}
ALL_ARCHITECTURES = (XLMR, MODERNBERT)


def architecture_of(config: ModelConfig) -> str:
    return MODERNBERT if isinstance(config, ModernBertConfig) else XLMR


def preset_names(architectures: tuple[str, ...] = (XLMR,)) -> list[str]:
    return [name for architecture in architectures for name in ARCHITECTURE_PRESETS[architecture]]


def preset_config(name: str) -> ModelConfig:
    for presets in ARCHITECTURE_PRESETS.values():
        if name in presets:
            return presets[name]
    raise XLMRDSError(f"unknown model {name!r}; choose one of {', '.join(preset_names(tuple(CONFIG_CLASSES)))} or "
                      f"pass a config file")


def config_from_dict(values: dict, source: str = "model config") -> ModelConfig:
    """The config of a JSON object, of the architecture its "architecture" key names (XLM-R by default)."""
    architecture = values.get("architecture", XLMR)
    if architecture not in CONFIG_CLASSES:
        raise XLMRDSError(f"{source}: architecture {architecture!r} is not one xlmr-ds builds; expected one of "
                          f"{', '.join(CONFIG_CLASSES)}")
    fields = {key: value for key, value in values.items() if key != "architecture"}
    return CONFIG_CLASSES[architecture].from_dict(fields, source=source)


def read_config_file(path: str | Path) -> ModelConfig:
    return config_from_dict(read_json_object(path, "model config file"), source=str(path))


def require_architecture(config: ModelConfig, supported: tuple[str, ...], name: str, command: str) -> None:
    """Refuse, in one line, a model of an architecture `command` does not run yet."""
    architecture = architecture_of(config)
    if architecture not in supported:
        raise XLMRDSError(f"model {name} is a {DESCRIPTIONS[architecture]} model; {command} takes "
                          f"{' or '.join(DESCRIPTIONS[a] for a in supported)} models only so far")


def parameter_count(config: ModelConfig) -> int:
    """Exact parameter count of the architecture's masked LM (the tied decoder counted once)."""
    if isinstance(config, ModernBertConfig):
        from xlmr_ds.model.modern_modeling import modern_parameter_count

        return modern_parameter_count(config)
    from xlmr_ds.model.modeling import parameter_count as xlmr_parameter_count

    return xlmr_parameter_count(config)


def largest_parameter_count(config: ModelConfig) -> int:
    """Elements of the largest single parameter tensor (the token embeddings, for both architectures)."""
    if isinstance(config, ModernBertConfig):
        import torch

        from xlmr_ds.model.modern_modeling import ModernBertForMaskedLM

        with torch.device("meta"):
            return max(p.numel() for p in ModernBertForMaskedLM(config, initialize=False).parameters())
    from xlmr_ds.model.modeling import largest_parameter_count as xlmr_largest

    return xlmr_largest(config)


def describe(name: str, config: ModelConfig) -> str:
    """One line of the model's shape."""
    if isinstance(config, ModernBertConfig):
        return (f"model {name}: ModernBERT, {config.num_layers} layers, hidden {config.hidden_size}, GeGLU "
                f"{config.ffn_size}, {config.num_heads} heads, global attention every "
                f"{config.global_attn_every_n_layers} layers and a window of {config.local_attention} on the "
                f"others, vocab {config.vocab_size:,}, up to {config.max_sequence_length} tokens")
    return (f"model {name}: {config.num_layers} layers, hidden {config.hidden_size}, ffn {config.ffn_size}, "
            f"{config.num_heads} heads, vocab {config.vocab_size:,}, up to {config.max_sequence_length} tokens")


def masked_lm(config: ModelConfig, initialize: bool = True, activation_checkpointing: bool = False):
    """The architecture's masked LM for `config` (initialize=False: see initialize_module)."""
    if isinstance(config, ModernBertConfig):
        from xlmr_ds.model.modern_modeling import ModernBertForMaskedLM

        return ModernBertForMaskedLM(config, initialize=initialize, activation_checkpointing=activation_checkpointing)
    from xlmr_ds.model.modeling import XLMRForMaskedLM

    return XLMRForMaskedLM(config, initialize=initialize, activation_checkpointing=activation_checkpointing)


def initialize_module(config: ModelConfig, name: str, module) -> None:
    """The architecture's initialization of one module's own parameters (`name`: its name in the model), for a
    caller that gathers one module at a time (ZeRO-3)."""
    if isinstance(config, ModernBertConfig):
        from xlmr_ds.model.modern_modeling import initialize_module as initialize_modern

        initialize_modern(name, module, config)
        return
    from xlmr_ds.model.modeling import initialize_module as initialize_xlmr

    initialize_xlmr(module, config.initializer_range)


def data_vocabulary(config: ModelConfig, vocab_size: int) -> ModelConfig:
    """`config` with a dataset's vocabulary: its size, and for a ModernBERT the special ids every xlmr-ds
    tokenizer has (XLM-R's: <s> 0, <pad> 1, </s> 2), where a preset names its own tokenizer's."""
    if isinstance(config, ModernBertConfig):
        return config.replace(vocab_size=vocab_size, pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID)
    return config.replace(vocab_size=vocab_size)


def task_head(xlmr_head: type, config: ModelConfig) -> type:
    """The class of a task head (given as XLM-R's: the task kinds name those) for `config`'s architecture."""
    if not isinstance(config, ModernBertConfig):
        return xlmr_head
    from xlmr_ds.model import heads, modern_heads

    return {heads.XLMRForSequenceClassification: modern_heads.ModernBertForSequenceClassification,
            heads.XLMRForTokenClassification: modern_heads.ModernBertForTokenClassification,
            heads.XLMRForQuestionAnswering: modern_heads.ModernBertForQuestionAnswering}[xlmr_head]


def load_hf_directory(path: str | Path, **xlmr_options):
    """A Hugging Face directory of either architecture as our model (its config.json's model_type decides);
    `xlmr_options` go to XLM-R's loader (kernel_backend, activation_checkpointing)."""
    from xlmr_ds.model.modern_hf import is_modern_hf, load_modern_hf

    if is_modern_hf(path):
        return load_modern_hf(path)
    from xlmr_ds.model.hf import load_hf

    return load_hf(path, **xlmr_options)


def save_hf_directory(model, out_dir: str | Path, tokenizer_model: str | Path | None = None) -> None:
    """Write `model` (either architecture, a masked LM or a task head) as a Hugging Face directory."""
    if isinstance(model.config, ModernBertConfig):
        from xlmr_ds.model.modern_hf import save_modern_hf

        save_modern_hf(model, out_dir, tokenizer_model=tokenizer_model)
        return
    from xlmr_ds.model.hf import save_hf

    save_hf(model, out_dir, tokenizer_model=tokenizer_model)
