"""`xlmr-ds model extend-vocab`: a pretrained masked LM with its vocabulary grown to an extended tokenizer.

The model comes from a Hugging Face directory or a pretraining run (engine/pretrained.py); the tokenizer must
extend the model's own (every old piece at its old id, as `xlmr-ds spm extend` writes it). The new pieces'
embeddings are initialized from the old ones (model/resize.py) and the result is a Hugging Face directory
with the new tokenizer files, which `xlmr-ds train --init-from` continues pretraining from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from xlmr_ds.engine.new_rows import EXTENSION_FILE
from xlmr_ds.engine.pretrained import load_pretrained
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model.hf import save_hf
from xlmr_ds.model.modeling import XLMRForMaskedLM, unique_parameter_count
from xlmr_ds.model.resize import extend_vocabulary, new_row_ids
from xlmr_ds.tokenizer import XLMRTokenizer

WORD_START = "\u2581"


@dataclass(frozen=True)
class VocabularyExtension:
    source: str
    old_size: int
    new_size: int
    init: str
    random_fallbacks: int
    """New pieces initialized at random under "mean": the old tokenizer split them into <unk> only."""
    parameters: int


def old_split(piece: str, old: XLMRTokenizer, old_word_start: int | None) -> list[int]:
    """The old ids of a new piece's text. A piece inside a word (no leading U+2581) is encoded as a word of its
    own, so the old tokenizer's word-start piece that SentencePiece puts first is dropped again."""
    ids = old.encode(piece.replace(WORD_START, " ")).tolist()
    if not piece.startswith(WORD_START) and len(ids) > 1 and ids[0] == old_word_start:
        ids = ids[1:]
    return ids


def check_extends(old: XLMRTokenizer, new: XLMRTokenizer, source: str) -> None:
    """Refuse a tokenizer that does not keep every old piece at its id, or that adds nothing."""
    if new.pieces <= old.pieces:
        raise XLMRDSError(f"{new.model_file}: {new.pieces:,} pieces, not more than the {old.pieces:,} of {source}'s "
                          f"tokenizer; make the extended model with `xlmr-ds spm extend --base` that tokenizer")
    for spm_id in range(old.pieces):
        if old.sp.IdToPiece(spm_id) != new.sp.IdToPiece(spm_id):
            raise XLMRDSError(f"{new.model_file}: piece {spm_id} is {new.sp.IdToPiece(spm_id)!r}, but "
                              f"{old.sp.IdToPiece(spm_id)!r} in {source}'s tokenizer: it does not extend that "
                              f"tokenizer (make it with `xlmr-ds spm extend --base` that tokenizer)")


def extend_model_vocabulary(model_source: str | Path, new_spm: str | Path, out_dir: str | Path, init: str = "mean",
                            seed: int = 0) -> VocabularyExtension:
    pretrained = load_pretrained(model_source)
    model, old = pretrained.model, pretrained.tokenizer
    if not isinstance(model, XLMRForMaskedLM):
        raise XLMRDSError(f"{model_source}: a {type(model).__name__}; the vocabulary is extended on a masked LM "
                          f"(an `xlmr-ds export` directory, a pretraining run or an XLMRobertaForMaskedLM)")
    if not isinstance(old, XLMRTokenizer):  # the new pieces are SentencePiece pieces, placed after the old ones
        raise XLMRDSError(f"{model_source}: its tokenizer is {old.model_file.name}, not a SentencePiece model; "
                          f"extending the vocabulary needs the SentencePiece model the new one extends (put it "
                          f"there as sentencepiece.bpe.model)")
    if model.config.vocab_size != old.vocab_size:
        raise XLMRDSError(f"{pretrained.description}: the model has {model.config.vocab_size:,} ids but its tokenizer "
                          f"{old.model_file} gives {old.vocab_size:,}; they do not belong together")
    new = XLMRTokenizer(new_spm)
    check_extends(old, new, pretrained.description)
    word_start = old.sp.PieceToId(WORD_START)
    old_word_start = word_start + 1 if old.sp.IdToPiece(word_start) == WORD_START else None
    sources = [old_split(new.sp.IdToPiece(spm_id), old, old_word_start)
               for spm_id in range(old.pieces, new.pieces)] if init == "mean" else None
    grown, fell_back = extend_vocabulary(model, new.vocab_size, init, sources, seed)
    added = new_row_ids(old.vocab_size, new.vocab_size)
    extension = {"source": pretrained.description, "old_vocab_size": old.vocab_size, "new_vocab_size": new.vocab_size,
                 "new_rows": [added.start, added.stop], "init": init, "random_fallbacks": fell_back}
    # What a recipe phase "train": "new_embeddings" reads to know which rows to train (engine/new_rows.py).
    save_hf(grown, out_dir, tokenizer_model=new_spm,
            extra_files={EXTENSION_FILE: json.dumps(extension, indent=2) + "\n"})
    return VocabularyExtension(pretrained.description, old.vocab_size, new.vocab_size, init, fell_back,
                               unique_parameter_count(grown))
