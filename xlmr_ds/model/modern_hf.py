"""Conversion between our ModernBERT models and Hugging Face's, both ways: `load_modern_hf` and
`save_modern_hf`. ModernBertForMaskedLM, and the task heads (modern_heads.py) ModernBertForSequenceClassification
(its pooling as config.json's classifier_pooling), ModernBertForTokenClassification and
ModernBertForQuestionAnswering, with their label names as id2label / label2id. A one-way adapter, like hf.py
(whose file helpers it shares): it imports the model, the model never imports it.

config.json is read as transformers 5 writes it (`layer_types`, `rope_parameters`) or as 4.x did
(`global_attn_every_n_layers`, `global_rope_theta`, `local_rope_theta`); it is written in the 5 form. A key it
leaves out means transformers' default. Settings our model does not represent (another activation, a scaled
RoPE, a layer pattern that is not "global every n") are refused, naming the key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model.hf import label_names, read_config_json, read_safetensors_weights, write_tokenizer_files
from xlmr_ds.model.modern_config import ModernBertConfig
from xlmr_ds.model.modern_heads import (
    ModernBertForQuestionAnswering,
    ModernBertForSequenceClassification,
    ModernBertForTokenClassification,
)
from xlmr_ds.model.modern_modeling import ModernBertForMaskedLM
from xlmr_ds.outputs import listed, replaced_directory

MODEL_TYPE = "modernbert"
MASKED_LM = "ModernBertForMaskedLM"
CLASSES = {MASKED_LM: ModernBertForMaskedLM,
           "ModernBertForSequenceClassification": ModernBertForSequenceClassification,
           "ModernBertForTokenClassification": ModernBertForTokenClassification,
           "ModernBertForQuestionAnswering": ModernBertForQuestionAnswering}

# Hugging Face key -> ours, for the fields that are the same value under another name.
_CONFIG_FIELDS = {
    "vocab_size": "vocab_size", "hidden_size": "hidden_size", "intermediate_size": "ffn_size",
    "num_hidden_layers": "num_layers", "num_attention_heads": "num_heads",
    "max_position_embeddings": "max_position_embeddings", "local_attention": "local_attention",
    "norm_eps": "norm_eps", "norm_bias": "norm_bias", "attention_bias": "attention_bias", "mlp_bias": "mlp_bias",
    "decoder_bias": "decoder_bias", "classifier_bias": "classifier_bias",
    "embedding_dropout": "embedding_dropout", "attention_dropout": "attention_dropout",
    "mlp_dropout": "mlp_dropout", "initializer_range": "initializer_range",
    "initializer_cutoff_factor": "initializer_cutoff_factor", "pad_token_id": "pad_token_id",
    "bos_token_id": "bos_token_id", "eos_token_id": "eos_token_id",
}
# transformers' ModernBertConfig defaults, for keys a config.json leaves out.
_HF_DEFAULTS = {
    "vocab_size": 50368, "hidden_size": 768, "intermediate_size": 1152, "num_hidden_layers": 22,
    "num_attention_heads": 12, "max_position_embeddings": 8192, "local_attention": 128, "norm_eps": 1e-5,
    "norm_bias": False, "attention_bias": False, "mlp_bias": False, "decoder_bias": True, "classifier_bias": False,
    "embedding_dropout": 0.0, "attention_dropout": 0.0, "mlp_dropout": 0.0, "initializer_range": 0.02,
    "initializer_cutoff_factor": 2.0, "pad_token_id": 50283, "bos_token_id": 50281, "eos_token_id": 50282,
    "global_attn_every_n_layers": 3, "global_rope_theta": 160_000.0, "local_rope_theta": 10_000.0,
}
# Settings with one value our model implements: key -> the values accepted (None: left out).
_FIXED_SETTINGS = {
    "hidden_activation": ("gelu", None),
    "classifier_activation": ("gelu", None),
    "tie_word_embeddings": (True, None),
}
GLOBAL, SLIDING = "full_attention", "sliding_attention"


def modern_config_from_hf(hf_config: dict, source: str) -> ModernBertConfig:
    """Our config of a Hugging Face ModernBERT config.json (see the module docstring)."""
    if hf_config.get("model_type", MODEL_TYPE) != MODEL_TYPE:
        raise XLMRDSError(f"{source}: model_type {hf_config.get('model_type')!r} is not a ModernBERT "
                          f"({MODEL_TYPE!r})")
    for key, allowed in _FIXED_SETTINGS.items():
        if hf_config.get(key) not in allowed:
            expected = " or ".join(repr(value) for value in allowed if value is not None)
            raise XLMRDSError(f"{source}: {key}={hf_config.get(key)!r} cannot be represented by xlmr-ds "
                              f"(expected {expected})")
    values = {**_HF_DEFAULTS, **{key: value for key, value in hf_config.items() if value is not None}}
    fields = {ours: values[theirs] for theirs, ours in _CONFIG_FIELDS.items()}
    fields["global_attn_every_n_layers"] = _every_n(values, source)
    fields.update(_rope_thetas(values, source))
    return ModernBertConfig(**fields)


def _every_n(values: dict, source: str) -> int:
    """n of "layer i is global when i % n == 0", from layer_types (5.x) or global_attn_every_n_layers."""
    layers = values["num_hidden_layers"]
    layer_types = values.get("layer_types")
    if layer_types is None:
        return values["global_attn_every_n_layers"]
    if len(layer_types) != layers or set(layer_types) - {GLOBAL, SLIDING}:
        raise XLMRDSError(f"{source}: layer_types must list {layers} entries of {GLOBAL!r} or {SLIDING!r}")
    global_layers = [i for i, kind in enumerate(layer_types) if kind == GLOBAL]
    every = global_layers[1] if len(global_layers) > 1 else max(layers, 1)
    stated = values["global_attn_every_n_layers"]  # ours writes it too: n >= layers are the same pattern
    if layer_types == [GLOBAL if i % stated == 0 else SLIDING for i in range(layers)]:
        return stated
    if layer_types != [GLOBAL if i % every == 0 else SLIDING for i in range(layers)]:
        raise XLMRDSError(f"{source}: layer_types is not global every n layers from layer 0 "
                          f"(global at {global_layers[:6]}); xlmr-ds cannot represent it")
    return every


def _rope_thetas(values: dict, source: str) -> dict:
    """The two RoPE bases, from rope_parameters (5.x) or global_rope_theta / local_rope_theta (4.x)."""
    parameters = values.get("rope_parameters")
    if parameters is None:
        if values.get("rope_scaling") is not None:
            raise XLMRDSError(f"{source}: rope_scaling={values['rope_scaling']!r} cannot be represented by xlmr-ds "
                              f"(plain RoPE only)")
        return {"global_rope_theta": float(values["global_rope_theta"]),
                "local_rope_theta": float(values["local_rope_theta"])}
    thetas = {}
    for kind, ours in ((GLOBAL, "global_rope_theta"), (SLIDING, "local_rope_theta")):
        entry = parameters.get(kind) or {}
        if entry.get("rope_type", "default") != "default":
            raise XLMRDSError(f"{source}: rope_parameters.{kind}.rope_type={entry['rope_type']!r} cannot be "
                              f"represented by xlmr-ds (expected 'default')")
        thetas[ours] = float(entry.get("rope_theta", _HF_DEFAULTS[ours]))
    return thetas


def modern_config_to_hf(config: ModernBertConfig) -> dict:
    hf_config = {theirs: getattr(config, ours) for theirs, ours in _CONFIG_FIELDS.items()}
    hf_config.update(
        architectures=[MASKED_LM], model_type=MODEL_TYPE, hidden_activation="gelu", classifier_activation="gelu",
        cls_token_id=config.bos_token_id, sep_token_id=config.eos_token_id, tie_word_embeddings=True,
        layer_types=[GLOBAL if config.is_global(i) else SLIDING for i in range(config.num_layers)],
        global_attn_every_n_layers=config.global_attn_every_n_layers,
        rope_parameters={GLOBAL: {"rope_type": "default", "rope_theta": config.global_rope_theta},
                         SLIDING: {"rope_type": "default", "rope_theta": config.local_rope_theta}},
        dtype="float32",
    )
    return hf_config


# Our module -> Hugging Face's, by prefix; the rest of the name (.weight, .bias) is the same.
_PREFIXES = (
    ("embeddings.word.", "model.embeddings.tok_embeddings."),
    ("embeddings.norm.", "model.embeddings.norm."),
    ("final_norm.", "model.final_norm."),
    ("lm_head.", "head."),
    ("head.", "head."),
    ("classifier.", "classifier."),
    ("decoder.", "decoder."),
)
_LAYER_MODULES = {"attention_norm": "attn_norm", "attention.qkv": "attn.Wqkv", "attention.out": "attn.Wo",
                  "mlp_norm": "mlp_norm", "mlp.wi": "mlp.Wi", "mlp.wo": "mlp.Wo"}
_TIED = "decoder.weight"


def hf_name(ours: str) -> str:
    """The Hugging Face name of one of our parameter names."""
    for prefix, theirs in _PREFIXES:
        if ours.startswith(prefix):
            return theirs + ours[len(prefix):]
    _, index, rest = ours.split(".", 2)  # layers.<i>.<module>.<weight|bias>
    module, kind = rest.rsplit(".", 1)
    return f"model.layers.{index}.{_LAYER_MODULES[module]}.{kind}"


def _state_dict_from_hf(hf_state: dict[str, torch.Tensor], model: torch.nn.Module, source: str) -> dict:
    expected = model.state_dict()
    names = {ours: hf_name(ours) for ours in expected if ours != _TIED}
    missing = [theirs for theirs in names.values() if theirs not in hf_state]
    if missing:
        raise XLMRDSError(f"{source}: missing weight {missing[0]!r} ({len(missing)} missing in all)")
    tied = _TIED in expected
    unexpected = sorted(set(hf_state) - set(names.values()) - ({_TIED} if tied else set()))
    if unexpected:
        raise XLMRDSError(f"{source}: unexpected weight {unexpected[0]!r}; is this a {type(model).__name__} with "
                          f"this config.json?")
    tied_source = names["embeddings.word.weight"]
    if tied and _TIED in hf_state and not torch.equal(hf_state[_TIED], hf_state[tied_source]):
        raise XLMRDSError(f"{source}: {_TIED} differs from {tied_source}; xlmr-ds needs the tied LM decoder")
    state = {ours: hf_state[theirs] for ours, theirs in names.items()}
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise XLMRDSError(f"{source}: weight {names[name]!r} has shape {tuple(tensor.shape)} but config.json "
                              f"gives {tuple(expected[name].shape)}")
    if tied:
        state[_TIED] = state["embeddings.word.weight"]
    return state


def read_modern_hf_config(directory: str | Path) -> ModernBertConfig:
    """Our config of a Hugging Face ModernBERT directory's config.json."""
    return modern_config_from_hf(read_config_json(Path(directory)), str(directory))


def is_modern_hf(directory: str | Path) -> bool:
    """Whether a Hugging Face directory's config.json is a ModernBERT's."""
    return read_config_json(Path(directory)).get("model_type") == MODEL_TYPE


def load_modern_hf(path_or_model):
    """A Hugging Face ModernBERT / mmBERT model as ours: a directory (config.json + safetensors) or a model
    object; config.json's `architectures` picks the class (the masked LM when it names none)."""
    if isinstance(path_or_model, (str, os.PathLike)):
        directory = Path(path_or_model)
        source, hf_config, hf_state = str(directory), read_config_json(directory), read_safetensors_weights(directory)
    else:
        source = type(path_or_model).__name__
        hf_config, hf_state = path_or_model.config.to_dict(), path_or_model.state_dict()
    architecture = (hf_config.get("architectures") or [MASKED_LM])[0]
    config = modern_config_from_hf(hf_config, source)
    if architecture not in CLASSES:
        raise XLMRDSError(f"{source}: architecture {architecture!r} is not one xlmr-ds reads for ModernBERT "
                          f"(expected {', '.join(CLASSES)})")
    cls = CLASSES[architecture]
    if cls is ModernBertForMaskedLM:
        model = cls(config, initialize=False)
    else:
        options = {"pooling": hf_config.get("classifier_pooling", "cls")} \
            if cls is ModernBertForSequenceClassification else {}
        model = cls(config, label_names(hf_config, source), hf_config.get("classifier_dropout"), initialize=False,
                    **options)
    model.load_state_dict(_state_dict_from_hf(hf_state, model, source), strict=True)
    return model


def architecture_name(model: torch.nn.Module) -> str:
    for name, cls in CLASSES.items():
        if type(model) is cls:
            return name
    raise XLMRDSError(f"{type(model).__name__} has no Hugging Face counterpart")


def save_modern_hf(model: torch.nn.Module, out_dir, tokenizer_model: str | Path | None = None) -> None:
    """Write a directory that transformers loads (AutoModelForMaskedLM, or for a task head
    AutoModelFor{SequenceClassification,TokenClassification,QuestionAnswering}): config.json and
    model.safetensors, and given the tokenizer its files (hf.write_tokenizer_files), complete before it
    appears."""
    out_dir = Path(out_dir)
    if out_dir.exists() and listed(out_dir) and not (out_dir / "config.json").exists():
        raise XLMRDSError(f"{out_dir}: exists and is not a Hugging Face model directory; choose a new --out")
    tensors = {hf_name(name): tensor.detach().cpu().contiguous()
               for name, tensor in model.state_dict().items() if name != _TIED}
    hf_config = modern_config_to_hf(model.config)
    hf_config["architectures"] = [architecture_name(model)]
    labels = getattr(model, "labels", ())
    if labels:
        hf_config.update(id2label={str(i): label for i, label in enumerate(labels)},
                         label2id={label: i for i, label in enumerate(labels)},
                         classifier_dropout=model.classifier_dropout or 0.0)
    if isinstance(model, ModernBertForSequenceClassification):
        hf_config.update(classifier_pooling=model.pooling, problem_type="single_label_classification")
    with replaced_directory(out_dir) as staging:
        save_file(tensors, staging / "model.safetensors", metadata={"format": "pt"})
        (staging / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
        if tokenizer_model is not None:
            write_tokenizer_files(staging, Path(tokenizer_model), model.config.max_sequence_length)
