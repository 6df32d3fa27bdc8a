"""Hugging Face directories as transformers itself writes them (nothing downloaded): a tiny model of any XLM-R
head saved by its own save_pretrained, and the tokenizer of one of our SentencePiece models saved by transformers'
XLMRobertaTokenizer. transformers 5 saves that tokenizer as tokenizer.json and tokenizer_config.json only, without
sentencepiece.bpe.model."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

# A shape no preset has, with transformers' own LayerNorm epsilon (XLMRobertaConfig's default, not ours).
SHAPE = {"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 96,
         "max_position_embeddings": 130, "type_vocab_size": 1, "layer_norm_eps": 1e-12}
LABELS = ("contradiction", "entailment")


def save_transformers_tokenizer(spm_model: Path, out: Path) -> Path:
    """What transformers' XLMRobertaTokenizer.save_pretrained writes for `spm_model` (read from a directory that
    holds it as sentencepiece.bpe.model: constructing one from a vocab_file makes an empty tokenizer in
    transformers 5)."""
    from transformers import XLMRobertaTokenizer

    with tempfile.TemporaryDirectory() as source:
        shutil.copyfile(spm_model, Path(source) / "sentencepiece.bpe.model")
        XLMRobertaTokenizer.from_pretrained(source).save_pretrained(out)
    return out


def save_transformers_model(out: Path, architecture: str = "XLMRobertaForMaskedLM", spm_model: Path | None = None,
                            vocab_size: int = 502, seed: int = 0, **config) -> Path:
    """A randomly initialized transformers `architecture` of SHAPE (with `config` changes) saved by its own
    save_pretrained, with `spm_model`'s tokenizer as transformers saves it."""
    import transformers

    settings = {**SHAPE, "vocab_size": vocab_size, **config}
    if architecture != "XLMRobertaForMaskedLM":
        settings.update(id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
    torch.manual_seed(seed)
    model = getattr(transformers, architecture)(transformers.XLMRobertaConfig(**settings))
    model.save_pretrained(out)
    if spm_model is not None:
        save_transformers_tokenizer(spm_model, out)
    return out


def edit_json(path: Path, drop: tuple[str, ...] = (), **changes) -> Path:
    """Rewrite a JSON object file with `changes` set and the keys in `drop` removed."""
    values = {key: value for key, value in json.loads(path.read_text()).items() if key not in drop}
    path.write_text(json.dumps({**values, **changes}, indent=2))
    return path


def swap_s_and_pad(directory: Path) -> Path:
    """Give the directory's tokenizer.json <pad> at id 0 and <s> at id 1: a tokenizer whose ids are not XLM-R's."""
    path = directory / "tokenizer.json"
    data = json.loads(path.read_text())
    data["model"]["vocab"][0][0], data["model"]["vocab"][1][0] = "<pad>", "<s>"
    data["added_tokens"][0]["content"], data["added_tokens"][1]["content"] = "<pad>", "<s>"
    path.write_text(json.dumps(data))
    return directory
