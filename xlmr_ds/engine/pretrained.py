"""A pretrained model and its tokenizer from what a user points at: a Hugging Face directory (config.json,
safetensors, and sentencepiece.bpe.model or a transformers 5 tokenizer.json; any XLM-R head, whose encoder is what
fine-tuning and retrieval use) or a pretraining run (its --save directory, newest complete checkpoint or the one at
`step`; or one step_* directory)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from xlmr_ds.engine.checkpoint import MARKER, tag_for
from xlmr_ds.engine.export import choose_checkpoint, load_checkpoint_model
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model.modeling import XLMRModel
from xlmr_ds.tokenizer import Tokenizer, XLMRTokenizer, tokenizer_of_directory


@dataclass
class Pretrained:
    model: XLMRModel
    tokenizer: Tokenizer
    description: str
    """What was loaded, for logs and results: the directory, and the step for a checkpoint."""

    step: int | None = None
    """The pretraining step of a checkpoint; None for a Hugging Face directory."""


def is_hf_directory(path: Path) -> bool:
    return (path / "config.json").is_file()


def load_pretrained(source: str | Path, step: int | None = None) -> Pretrained:
    path = Path(source)
    if not path.exists():
        raise XLMRDSError(f"{path}: not found; expected a pretraining --save directory or a Hugging Face directory")
    if is_hf_directory(path):
        from xlmr_ds.model.architectures import load_hf_directory

        tokenizer = tokenizer_of_directory(path)  # before the weights: a missing tokenizer is found at once
        return Pretrained(load_hf_directory(path), tokenizer, str(path))
    if (path / MARKER).is_file():  # one checkpoint directory
        path, step = path.parent, int(path.name.removeprefix("step_"))
    info = choose_checkpoint(path, step)
    record = info.marker.get("tokenizer") or {}
    tokenizer_file = Path(record.get("path", ""))
    if not record.get("path") or not tokenizer_file.is_file():
        raise XLMRDSError(f"{info.path}: the run's SentencePiece model ({record.get('path') or 'not recorded'}) "
                          f"is not there; export the checkpoint with --spm MODEL and pass the export directory")
    if hashlib.sha256(tokenizer_file.read_bytes()).hexdigest() != record.get("sha256"):
        raise XLMRDSError(f"{tokenizer_file}: not the SentencePiece model {info.path} was trained with (sha256 "
                          f"differs); export the checkpoint with the right --spm MODEL and pass that directory")
    return Pretrained(load_checkpoint_model(info), XLMRTokenizer(tokenizer_file), f"{path}/{tag_for(info.step)}",
                      info.step)
