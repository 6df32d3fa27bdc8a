"""Conversion between our models and Hugging Face's, both ways: `load_hf` and `save_hf`. XLMRForMaskedLM is
XLMRobertaForMaskedLM; the task heads (heads.py) are XLMRobertaForSequenceClassification,
XLMRobertaForTokenClassification and XLMRobertaForQuestionAnswering, with their label names as config.json's
id2label / label2id. A one-way
adapter: it imports the model, the model never imports it.

A Hugging Face directory is config.json plus model.safetensors (or a sharded model.safetensors.index.json).
Weights are read and written only as safetensors: pickle files can run code when loaded. transformers
itself is not needed here (it is a test dependency): configs are plain JSON and a model object is only
asked for `.config.to_dict()` and `.state_dict()`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model.config import XLMRConfig
from xlmr_ds.model.heads import XLMRForQuestionAnswering, XLMRForSequenceClassification, XLMRForTokenClassification
from xlmr_ds.model.modeling import XLMRForMaskedLM, XLMRModel
from xlmr_ds.outputs import listed, replaced_directory

# Our name -> Hugging Face name, for the embeddings.
_EMBEDDING_NAMES = {
    "embeddings.word.weight": "roberta.embeddings.word_embeddings.weight",
    "embeddings.position.weight": "roberta.embeddings.position_embeddings.weight",
    "embeddings.token_type.weight": "roberta.embeddings.token_type_embeddings.weight",
    "embeddings.norm.weight": "roberta.embeddings.LayerNorm.weight",
    "embeddings.norm.bias": "roberta.embeddings.LayerNorm.bias",
}

# Each head: Hugging Face's architecture name -> (our class, our head's names -> theirs).
_HEADS = {
    "XLMRobertaForMaskedLM": (XLMRForMaskedLM, {
        "lm_head.dense.weight": "lm_head.dense.weight",
        "lm_head.dense.bias": "lm_head.dense.bias",
        "lm_head.norm.weight": "lm_head.layer_norm.weight",
        "lm_head.norm.bias": "lm_head.layer_norm.bias",
        "lm_head.bias": "lm_head.bias",
    }),
    "XLMRobertaForSequenceClassification": (XLMRForSequenceClassification, {
        "classifier.dense.weight": "classifier.dense.weight",
        "classifier.dense.bias": "classifier.dense.bias",
        "classifier.out.weight": "classifier.out_proj.weight",
        "classifier.out.bias": "classifier.out_proj.bias",
    }),
    "XLMRobertaForTokenClassification": (XLMRForTokenClassification, {
        "classifier.weight": "classifier.weight",
        "classifier.bias": "classifier.bias",
    }),
    "XLMRobertaForQuestionAnswering": (XLMRForQuestionAnswering, {
        "qa_outputs.weight": "qa_outputs.weight",
        "qa_outputs.bias": "qa_outputs.bias",
    }),
}
_MASKED_LM = "XLMRobertaForMaskedLM"

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

# HF config key -> XLMRConfig field.
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
# What transformers' XLMRobertaConfig takes for a key config.json leaves out (not our defaults: its layer_norm_eps
# is 1e-12, its type_vocab_size 2); tests/model/test_hf_directories.py checks them against XLMRobertaConfig().
_HF_DEFAULTS = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "layer_norm_eps": 1e-12,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "initializer_range": 0.02,
    "hidden_act": "gelu",
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


def architecture_of(model: XLMRModel | type[XLMRModel]) -> str:
    """The Hugging Face architecture name of one of our models, or of its class."""
    model_class = model if isinstance(model, type) else type(model)
    for architecture, (cls, _) in _HEADS.items():
        if model_class is cls:
            return architecture
    raise XLMRDSError(f"{model_class.__name__} has no Hugging Face counterpart")


def hf_parameter_names(num_layers: int, architecture: str = _MASKED_LM) -> dict[str, str]:
    """Every parameter of ours (tied copy excluded) -> its Hugging Face name."""
    names = {**_EMBEDDING_NAMES, **_HEADS[architecture][1]}
    for i in range(num_layers):
        for ours, theirs in _BLOCK_MODULE_NAMES.items():
            for kind in ("weight", "bias"):
                names[f"layers.{i}.{ours}.{kind}"] = f"roberta.encoder.layer.{i}.{theirs}.{kind}"
    return names


def config_from_hf(hf_config: dict, source: str) -> XLMRConfig:
    """Our config of a Hugging Face config (a key it leaves out means transformers' default, as transformers reads
    it); a setting our architecture cannot represent is refused, naming the key."""
    if hf_config.get("model_type") == "modernbert":
        raise XLMRDSError(f"{source}: config.json's model_type is 'modernbert': this is a ModernBERT, which XLM-R's "
                          f"reader does not take (xlmr_ds.model.modern_hf reads it)")
    hf_config = {**_HF_DEFAULTS, **{key: value for key, value in hf_config.items() if value is not None}}
    for key, allowed in _FIXED_SETTINGS.items():
        value = hf_config.get(key)
        if value not in allowed:
            expected = " or ".join(repr(a) for a in allowed if a is not None)
            raise XLMRDSError(f"{source}: {key}={value!r} cannot be represented by xlmr-ds (expected {expected})")
    return XLMRConfig(**{ours: hf_config[theirs] for theirs, ours in _CONFIG_FIELDS.items()})


def config_to_hf(config: XLMRConfig, architecture: str = _MASKED_LM, labels: tuple[str, ...] = (),
                 classifier_dropout: float | None = None) -> dict:
    hf_config = {theirs: getattr(config, ours) for theirs, ours in _CONFIG_FIELDS.items()}
    if labels:
        hf_config.update(id2label={str(i): label for i, label in enumerate(labels)},
                         label2id={label: i for i, label in enumerate(labels)}, classifier_dropout=classifier_dropout)
        if architecture == "XLMRobertaForSequenceClassification":
            hf_config["problem_type"] = "single_label_classification"
    hf_config.update(
        architectures=[architecture],
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


def read_safetensors_weights(directory: Path) -> dict[str, torch.Tensor]:
    weights = require_safetensors(directory)
    if weights.name == "model.safetensors":
        return load_file(weights)
    shards = sorted(set(json.loads(weights.read_text())["weight_map"].values()))
    tensors: dict[str, torch.Tensor] = {}
    for shard in shards:
        tensors.update(load_file(directory / shard))
    return tensors


def _weight_names(directory: Path) -> set[str]:
    """The names of a directory's weights, from the safetensors header (or index) alone: nothing is loaded."""
    weights = require_safetensors(directory)
    if weights.name == "model.safetensors":
        with safe_open(weights, framework="pt") as tensors:
            return set(tensors.keys())
    return set(json.loads(weights.read_text())["weight_map"])


def read_config_json(directory: Path) -> dict:
    config_path = directory / "config.json"
    if not config_path.exists():
        raise XLMRDSError(f"{directory}: no config.json; expected a Hugging Face model directory")
    try:
        hf_config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise XLMRDSError(f"{config_path}: invalid JSON at line {error.lineno}: {error.msg}") from None
    if not isinstance(hf_config, dict):
        raise XLMRDSError(f"{config_path}: a model config must be a JSON object")
    return hf_config


def read_hf_config(directory: str | Path) -> XLMRConfig:
    """Our config of a Hugging Face directory's config.json: its whole shape, LayerNorm epsilon and dropout."""
    return config_from_hf(read_config_json(Path(directory)), str(directory))


def require_masked_lm(directory: str | Path, use: str) -> None:
    """Refuse, in one line, a Hugging Face directory without a masked-LM head before anything loads it: its
    config.json `architectures` names another head (a classifier), or its weights hold no lm_head.*. `use` is
    what needs the head (fill-mask, eval --hf, --init-from); transformers would fill a missing head with random
    weights and answer from them."""
    directory = Path(directory)
    names = _weight_names(directory)
    named = (read_config_json(directory).get("architectures") or [_MASKED_LM])[0]
    wanted = f"{use} needs a masked LM (an `xlmr-ds export` directory, an XLMRobertaForMaskedLM or a " \
             f"ModernBertForMaskedLM)"
    if not named.endswith("ForMaskedLM"):
        raise XLMRDSError(f"{directory}: config.json's architectures is {named}, which has no masked-LM head; "
                          f"{wanted}")
    head_names = {"head.dense.weight", "head.norm.weight"} if read_config_json(directory).get("model_type") == \
        "modernbert" else set(_HEADS[_MASKED_LM][1].values())
    missing = sorted(head_names - names)
    if missing:
        raise XLMRDSError(f"{directory}: its weights have no masked-LM head (no {missing[0]}, {len(missing)} lm_head.* "
                          f"weights missing in all); {wanted}")


def _state_dict_from_hf(hf_state: dict[str, torch.Tensor], config: XLMRConfig, source: str,
                        architecture: str) -> dict:
    names = hf_parameter_names(config.num_layers, architecture)
    missing = [theirs for theirs in names.values() if theirs not in hf_state]
    if missing:
        raise XLMRDSError(f"{source}: missing weight {missing[0]!r} ({len(missing)} missing in all)")
    tied = _TIED_COPIES if architecture == _MASKED_LM else {}
    known = set(names.values()) | set(tied)
    unexpected = [k for k in hf_state if k not in known and not k.startswith(_IGNORED_PREFIXES)]
    if unexpected:
        raise XLMRDSError(f"{source}: unexpected weight {unexpected[0]!r}; is this an {architecture}?")
    for copy, original in tied.items():
        if copy in hf_state and not torch.equal(hf_state[copy], hf_state[original]):
            raise XLMRDSError(f"{source}: {copy} differs from {original}; xlmr-ds needs the tied LM decoder")
    state = {ours: hf_state[theirs] for ours, theirs in names.items()}
    if tied:
        state[_OUR_TIED_COPY] = state["embeddings.word.weight"]
    return state


def _architecture(hf_config: dict, source: str) -> str:
    """The config's architecture (an XLM-R masked LM when it names none)."""
    architecture = (hf_config.get("architectures") or [_MASKED_LM])[0]
    if architecture not in _HEADS:
        raise XLMRDSError(f"{source}: architecture {architecture!r} is not one xlmr-ds reads "
                          f"(expected {', '.join(_HEADS)})")
    return architecture


def label_names(hf_config: dict, source: str) -> tuple[str, ...]:
    id2label = hf_config.get("id2label") or {}
    try:
        return tuple(id2label[key] for key in sorted(id2label, key=int))
    except ValueError:
        raise XLMRDSError(f"{source}: id2label keys must be label ids 0, 1, ...") from None


def load_hf(path_or_model, **model_options) -> XLMRModel:
    """A Hugging Face XLM-R model as ours: a directory (config.json + safetensors) or a model object. The
    config's `architectures` picks the class (XLMRForMaskedLM when it names none); `model_options` go to it
    (kernel_backend, activation_checkpointing)."""
    if isinstance(path_or_model, (str, os.PathLike)):
        directory = Path(path_or_model)
        hf_config = read_config_json(directory)
        source = str(directory)
        hf_state = read_safetensors_weights(directory)
    else:
        source = type(path_or_model).__name__
        hf_config = path_or_model.config.to_dict()
        hf_state = path_or_model.state_dict()
    config = config_from_hf(hf_config, source)
    architecture = _architecture(hf_config, source)
    cls = _HEADS[architecture][0]
    if cls is XLMRForMaskedLM:
        model = cls(config, **model_options)
    else:
        model = cls(config, label_names(hf_config, source), hf_config.get("classifier_dropout"), **model_options)
    state = _state_dict_from_hf(hf_state, config, source, architecture)
    _check_shapes(state, model, source)
    model.load_state_dict(state, strict=True)
    return model


def _check_shapes(state: dict[str, torch.Tensor], model: XLMRModel, source: str) -> None:
    """A weight whose shape is not the one config.json gives, named in one line (load_state_dict's error is a
    multi-line list)."""
    expected = model.state_dict()
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            theirs = hf_parameter_names(model.config.num_layers, architecture_of(model)).get(name, name)
            raise XLMRDSError(f"{source}: weight {theirs!r} has shape {tuple(tensor.shape)} but config.json gives "
                              f"{tuple(expected[name].shape)}")


def write_tokenizer_files(directory: Path, tokenizer_file: Path, max_length: int) -> None:
    """The tokenizer file (a SentencePiece model, written as sentencepiece.bpe.model; or a tokenizers
    tokenizer.json, as transformers 5 saves one) plus the configs transformers' XLMRobertaTokenizer reads; from a
    SentencePiece model, with transformers installed, also its converted tokenizer.json (so loading needs no
    conversion)."""
    from_json = tokenizer_file.name.endswith(".json")
    shutil.copyfile(tokenizer_file, directory / ("tokenizer.json" if from_json else "sentencepiece.bpe.model"))
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                "pad_token": "<pad>", "cls_token": "<s>",
                "mask_token": {"content": "<mask>", "lstrip": True, "rstrip": False, "normalized": False,
                               "single_word": False, "special": True}}
    (directory / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": max_length, **specials}, indent=2) + "\n")
    if from_json:
        return
    try:
        from transformers import XLMRobertaTokenizer
    except ImportError:
        return
    XLMRobertaTokenizer.from_pretrained(directory).save_pretrained(directory)


def save_hf(model: XLMRModel, out_dir, tokenizer_model: str | Path | None = None,
            extra_files: dict[str, str] | None = None) -> None:
    """Write a directory that transformers' AutoModelForMaskedLM (or, for a task head,
    AutoModelForSequenceClassification / AutoModelForTokenClassification / AutoModelForQuestionAnswering) loads:
    config.json and model.safetensors, and given the tokenizer (a SentencePiece model or a tokenizer.json) also the
    tokenizer files (so that AutoTokenizer and pipeline("fill-mask"), pipeline("text-classification"),
    pipeline("token-classification") or pipeline("question-answering") load it too);
    the directory appears only once everything in it is complete (`extra_files`, name -> text, with it)."""
    out_dir = Path(out_dir)
    architecture = architecture_of(model)
    names = hf_parameter_names(model.config.num_layers, architecture)
    tensors = {names[k]: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k != _OUR_TIED_COPY}
    if out_dir.exists() and listed(out_dir) and not (out_dir / "config.json").exists():
        raise XLMRDSError(f"{out_dir}: exists and is not a Hugging Face model directory; choose a new --out")
    with replaced_directory(out_dir) as staging:
        save_file(tensors, staging / "model.safetensors", metadata={"format": "pt"})
        hf_config = config_to_hf(model.config, architecture, getattr(model, "labels", ()),
                                 getattr(model, "classifier_dropout", None))
        (staging / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
        if tokenizer_model is not None:
            write_tokenizer_files(staging, Path(tokenizer_model), model.config.max_sequence_length)
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text)
