"""Conversion between XLMRForMaskedLM and Hugging Face's XLMRobertaForMaskedLM, both ways: `load_hf` and
`save_hf`. A one-way adapter: it imports the model, the model never imports it.

A Hugging Face directory is config.json plus model.safetensors (or a sharded model.safetensors.index.json).
Weights are read and written only as safetensors: pickle files can run code when loaded. transformers
itself is not needed here (it is a test dependency): configs are plain JSON and a model object is only
asked for `.config.to_dict()` and `.state_dict()`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model.config import XLMRConfig
from xlmr_ds.model.modeling import XLMRForMaskedLM

# Our name -> Hugging Face name, for the parts outside the blocks.
_TOP_LEVEL_NAMES = {
    "embeddings.word.weight": "roberta.embeddings.word_embeddings.weight",
    "embeddings.position.weight": "roberta.embeddings.position_embeddings.weight",
    "embeddings.token_type.weight": "roberta.embeddings.token_type_embeddings.weight",
    "embeddings.norm.weight": "roberta.embeddings.LayerNorm.weight",
    "embeddings.norm.bias": "roberta.embeddings.LayerNorm.bias",
    "lm_head.dense.weight": "lm_head.dense.weight",
    "lm_head.dense.bias": "lm_head.dense.bias",
    "lm_head.norm.weight": "lm_head.layer_norm.weight",
    "lm_head.norm.bias": "lm_head.layer_norm.bias",
    "lm_head.bias": "lm_head.bias",
}

# Our module inside block i -> Hugging Face module inside roberta.encoder.layer.i (each has .weight and .bias).
_BLOCK_MODULE_NAMES = {
    "attention.query": "attention.self.query",
    "attention.key": "attention.self.key",
    "attention.value": "attention.self.value",
    "attention.out": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
    "ffn_norm": "output.LayerNorm",
}

# Hugging Face keys that hold nothing of ours: copies of tied weights, buffers, and the unused pooler.
_TIED_COPIES = {
    "lm_head.decoder.weight": "roberta.embeddings.word_embeddings.weight",
    "lm_head.decoder.bias": "lm_head.bias",
}
_IGNORED_PREFIXES = ("roberta.pooler.", "roberta.embeddings.position_ids", "roberta.embeddings.token_type_ids")

# HF config key -> (XLMRConfig field or None, required value when the field is None).
_CONFIG_FIELDS = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "intermediate_size": "ffn_size",
    "max_position_embeddings": "max_position_embeddings",
    "type_vocab_size": "type_vocab_size",
    "pad_token_id": "pad_token_id",
    "bos_token_id": "bos_token_id",
    "eos_token_id": "eos_token_id",
    "layer_norm_eps": "layer_norm_eps",
    "hidden_dropout_prob": "hidden_dropout",
    "attention_probs_dropout_prob": "attention_dropout",
    "initializer_range": "initializer_range",
}
# Settings our architecture fixes; a Hugging Face config with another value cannot be represented.
_FIXED_SETTINGS = {
    "model_type": ("xlm-roberta", "roberta"),
    "hidden_act": ("gelu",),
    "position_embedding_type": ("absolute", None),
    "is_decoder": (False, None),
    "add_cross_attention": (False, None),
    "tie_word_embeddings": (True, None),
}


# Our state_dict lists the tied decoder weight under its own name too; it is the word embeddings.
_OUR_TIED_COPY = "lm_head.decoder.weight"


def hf_parameter_names(num_layers: int) -> dict[str, str]:
    """Every parameter of ours (tied copy excluded) -> its Hugging Face name."""
    names = dict(_TOP_LEVEL_NAMES)
    for i in range(num_layers):
        for ours, theirs in _BLOCK_MODULE_NAMES.items():
            for kind in ("weight", "bias"):
                names[f"layers.{i}.{ours}.{kind}"] = f"roberta.encoder.layer.{i}.{theirs}.{kind}"
    return names


def config_from_hf(hf_config: dict, source: str) -> XLMRConfig:
    for key, allowed in _FIXED_SETTINGS.items():
        value = hf_config.get(key)
        if value not in allowed:
            expected = " or ".join(repr(a) for a in allowed if a is not None)
            raise XLMRDSError(f"{source}: {key}={value!r} cannot be represented by xlmr-ds (expected {expected})")
    values = {ours: hf_config[theirs] for theirs, ours in _CONFIG_FIELDS.items() if hf_config.get(theirs) is not None}
    return XLMRConfig(**values)


def config_to_hf(config: XLMRConfig) -> dict:
    hf_config = {theirs: getattr(config, ours) for theirs, ours in _CONFIG_FIELDS.items()}
    hf_config.update(
        architectures=["XLMRobertaForMaskedLM"],
        model_type="xlm-roberta",
        hidden_act="gelu",
        position_embedding_type="absolute",
        tie_word_embeddings=True,
        dtype="float32",
    )
    return hf_config


def require_safetensors(directory: str | Path) -> Path:
    """The directory's safetensors weights file (single or index); a one-line error when there is none, so that
    nothing (transformers included) falls back to unpickling pytorch_model.bin, which can run code."""
    directory = Path(directory)
    for name in ("model.safetensors", "model.safetensors.index.json"):
        if (directory / name).is_file():
            return directory / name
    if not directory.is_dir():
        raise XLMRDSError(f"{directory}: not found; expected a Hugging Face model directory")
    if (directory / "pytorch_model.bin").exists():
        raise XLMRDSError(
            f"{directory}: holds only pytorch_model.bin; xlmr-ds reads Hugging Face weights only from safetensors "
            f"(pickles can run code): re-save it with save_pretrained(..., safe_serialization=True)"
        )
    raise XLMRDSError(f"{directory}: no model.safetensors or model.safetensors.index.json found")


def _read_safetensors(directory: Path) -> dict[str, torch.Tensor]:
    weights = require_safetensors(directory)
    if weights.name == "model.safetensors":
        return load_file(weights)
    shards = sorted(set(json.loads(weights.read_text())["weight_map"].values()))
    tensors: dict[str, torch.Tensor] = {}
    for shard in shards:
        tensors.update(load_file(directory / shard))
    return tensors


def _state_dict_from_hf(hf_state: dict[str, torch.Tensor], config: XLMRConfig, source: str) -> dict:
    names = hf_parameter_names(config.num_layers)
    missing = [theirs for theirs in names.values() if theirs not in hf_state]
    if missing:
        raise XLMRDSError(f"{source}: missing weight {missing[0]!r} ({len(missing)} missing in all)")
    known = set(names.values()) | set(_TIED_COPIES)
    unexpected = [k for k in hf_state if k not in known and not k.startswith(_IGNORED_PREFIXES)]
    if unexpected:
        raise XLMRDSError(f"{source}: unexpected weight {unexpected[0]!r}; is this an XLMRobertaForMaskedLM?")
    for copy, original in _TIED_COPIES.items():
        if copy in hf_state and not torch.equal(hf_state[copy], hf_state[original]):
            raise XLMRDSError(f"{source}: {copy} differs from {original}; xlmr-ds needs the tied LM decoder")
    state = {ours: hf_state[theirs] for ours, theirs in names.items()}
    state[_OUR_TIED_COPY] = state["embeddings.word.weight"]
    return state


def load_hf(path_or_model, **model_options) -> XLMRForMaskedLM:
    """A Hugging Face XLMRobertaForMaskedLM as our model: a directory (config.json + safetensors) or a model
    object. `model_options` go to XLMRForMaskedLM (kernel_backend, activation_checkpointing)."""
    if isinstance(path_or_model, (str, os.PathLike)):
        directory = Path(path_or_model)
        config_path = directory / "config.json"
        if not config_path.exists():
            raise XLMRDSError(f"{directory}: no config.json; expected a Hugging Face model directory")
        try:
            hf_config = json.loads(config_path.read_text())
        except json.JSONDecodeError as error:
            raise XLMRDSError(f"{config_path}: invalid JSON at line {error.lineno}: {error.msg}") from None
        source = str(directory)
        config = config_from_hf(hf_config, source)
        hf_state = _read_safetensors(directory)
    else:
        source = type(path_or_model).__name__
        config = config_from_hf(path_or_model.config.to_dict(), source)
        hf_state = path_or_model.state_dict()
    model = XLMRForMaskedLM(config, **model_options)
    model.load_state_dict(_state_dict_from_hf(hf_state, config, source), strict=True)
    return model


def write_tokenizer_files(directory: Path, sentencepiece_model: Path, max_length: int) -> None:
    """sentencepiece.bpe.model plus the configs transformers' XLMRobertaTokenizer reads; with transformers
    installed, also its converted tokenizer.json (so loading needs no conversion)."""
    shutil.copyfile(sentencepiece_model, directory / "sentencepiece.bpe.model")
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                "pad_token": "<pad>", "cls_token": "<s>",
                "mask_token": {"content": "<mask>", "lstrip": True, "rstrip": False, "normalized": False,
                               "single_word": False, "special": True}}
    (directory / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": max_length, **specials}, indent=2) + "\n")
    try:
        from transformers import XLMRobertaTokenizer
    except ImportError:
        return
    XLMRobertaTokenizer.from_pretrained(directory).save_pretrained(directory)


def save_hf(model: XLMRForMaskedLM, out_dir, tokenizer_model: str | Path | None = None) -> None:
    """Write a directory that transformers' AutoModelForMaskedLM.from_pretrained loads: config.json and
    model.safetensors, and given the SentencePiece model also the tokenizer files (so that AutoTokenizer and
    pipeline("fill-mask") load it too); the directory appears only once everything in it is complete."""
    out_dir = Path(out_dir)
    names = hf_parameter_names(model.config.num_layers)
    tensors = {names[k]: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k != _OUR_TIED_COPY}
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "config.json").exists():
        raise XLMRDSError(f"{out_dir}: exists and is not a Hugging Face model directory; choose a new --out")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        save_file(tensors, staging / "model.safetensors", metadata={"format": "pt"})
        (staging / "config.json").write_text(json.dumps(config_to_hf(model.config), indent=2) + "\n")
        if tokenizer_model is not None:
            write_tokenizer_files(staging, Path(tokenizer_model), model.config.max_sequence_length)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
