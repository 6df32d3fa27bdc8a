"""SentencePiece models built directly as ModelProtos. The main one has as many pieces as the released XLM-R
model (250,000): the real file cannot be downloaded here, and training 250k pieces needs a real corpus. Its
pieces are a-z, '▁' and random lowercase strings; the specials sit where the released model has them. Two
small variants are bad bases for `xlmr-ds spm extend`: a BPE model, and one that already has every piece that
text over {a, b} can give."""

from __future__ import annotations

import random
from pathlib import Path

from sentencepiece import sentencepiece_model_pb2 as model_pb2

RELEASED_PIECES = 250_000


def write_released_size_spm(path: Path, pieces: int = RELEASED_PIECES, seed: int = 0) -> Path:
    proto = model_pb2.ModelProto()
    spec = proto.trainer_spec
    spec.model_type = model_pb2.TrainerSpec.UNIGRAM
    spec.vocab_size, spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = pieces, 0, 1, 2, -1
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = True
    proto.normalizer_spec.escape_whitespaces = True
    proto.normalizer_spec.remove_extra_whitespaces = True
    kinds = model_pb2.ModelProto.SentencePiece
    for piece, kind in (("<unk>", kinds.UNKNOWN), ("<s>", kinds.CONTROL), ("</s>", kinds.CONTROL)):
        entry = proto.pieces.add()
        entry.piece, entry.type, entry.score = piece, kind, 0.0
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    seen = set()
    for char in [*alphabet, "\u2581"]:
        entry = proto.pieces.add()
        entry.piece, entry.score = char, -5.0
        seen.add(char)
    rng = random.Random(seed)
    while len(proto.pieces) < pieces:
        word = ("\u2581" if rng.random() < 0.5 else "") + "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 7)))
        if word not in seen:
            seen.add(word)
            entry = proto.pieces.add()
            entry.piece, entry.score = word, -6.0 - len(proto.pieces) * 1e-5
    path.write_bytes(proto.SerializeToString())
    return path


def write_bpe_spm(path: Path) -> Path:
    """A small model whose type is BPE (not unigram)."""
    proto = model_pb2.ModelProto()
    proto.ParseFromString(write_released_size_spm(path, pieces=40).read_bytes())
    proto.trainer_spec.model_type = model_pb2.TrainerSpec.BPE
    path.write_bytes(proto.SerializeToString())
    return path


def write_every_ab_piece_spm(path: Path, longest: int = 6) -> Path:
    """A unigram model with every string over {a, b} up to `longest` characters, with and without '▁': a
    SentencePiece model trained on such text (words of at most `longest` letters) finds no piece it lacks."""
    proto = model_pb2.ModelProto()
    proto.ParseFromString(write_released_size_spm(path, pieces=30).read_bytes())
    have = {p.piece for p in proto.pieces}
    strings = [""]
    for _ in range(longest):
        strings = sorted({s + c for s in strings for c in "ab"} | set(strings))
    for text in strings[1:]:
        for piece in (text, "\u2581" + text):
            if piece not in have:
                entry = proto.pieces.add()
                entry.piece, entry.score = piece, -8.0
                have.add(piece)
    path.write_bytes(proto.SerializeToString())
    return path
