"""A SentencePiece unigram model with as many pieces as the released XLM-R one (250,000), built directly as
a ModelProto: the real file cannot be downloaded here, and training 250k pieces needs a real corpus. Its
pieces are a-z, '▁' and random lowercase strings; the specials sit where the released model has them."""

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
