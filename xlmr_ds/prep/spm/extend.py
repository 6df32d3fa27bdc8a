"""Extending a SentencePiece unigram model with the pieces of new languages, every old id kept.

sentencepiece cannot continue training a model (its issue #791), so extension edits the ModelProto, as
Glot500 did for XLM-R:
1. a unigram model is trained on an alpha-sampled sample of the new languages' text (spm/train.py);
2. its normal pieces that the base lacks are the candidates, best score first; each keeps the score it was
   trained with (a log-probability of the new languages' unigram model);
3. the chosen pieces are appended after every piece of the base, so every old id keeps its id and piece;
4. old-language text must tokenize as with the base. A unigram tokenizer takes the best-scoring segmentation, so a
   new piece changes old text wherever its string occurs there and beats the old pieces' split of it. The
   candidates are therefore checked on a sample of each old language's text: the trial model (base + the
   first N candidates) encodes it, every candidate that appears in an encoding whose ids changed is
   dropped, the next candidates take their places, and this repeats (at most CHECK_ROUNDS rounds) until no
   line of the sample changes. A piece with a character the base does not know cannot occur in text the
   base tokenizes without <unk>, so scripts new to the base pass untouched; what can change old text is a
   string of known characters, and those are what the check removes.
5. a sample misses the rarer strings of the old languages (on the demo corpus, Swedish `▁dela` and `eller`
   were in no English check line yet in held-out ones). The base model itself estimates how common a string
   is there: its pieces' scores are the log-probabilities of a unigram language model of the old languages,
   so the score of its best segmentation of a string, B(s), is about the log-probability of the string at a
   token position, and T * exp(B(s)) its expected count in T tokens of old-language text. A candidate is also
   dropped when it is expected at least once in UNSEEN_SAFETY times the check sample's tokens.
The report (PREFIX.extension.json, printed as tables by the CLI) gives the pieces added, per old language the
share of sample lines whose ids changed (on lines not used for the check), and per new language the tokens per
line before and after.

PREFIX.extension.json:
    {"base": path, "base_pieces": int, "added": int, "requested": int, "pieces": [first 50 added pieces],
     "dropped_by_check": int (all candidates left out), "dropped_as_expected": int (of them, those absent from the
     check sample that the base model expects in old-language text, step 5), "check_rounds": int,
     "old_languages": {lang: {"lines": int, "changed_lines": int, "changed_share": float}},
     "new_languages": {lang: {"lines": int, "tokens_per_line_before": float, "unk_share_before": float,
                              "tokens_per_line_after": float, "unk_share_after": float}}}
"""

from __future__ import annotations

import math
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as model_pb2

from xlmr_ds.dataset.sampling import stable_seed
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.outputs import (
    staging_directory,
    write_bytes_atomically,
    write_json_atomically,
    write_text_atomically,
)
from xlmr_ds.prep.corpus.reader import DEFAULT_TEXT_FIELD
from xlmr_ds.prep.corpus.shards import discover_corpus
from xlmr_ds.prep.spm.train import draw_alpha_sample, sample_language, train_unigram

CHECK_ROUNDS = 8
"""Rounds of dropping the candidates that change old-language lines (each encodes the check sample once)."""

UNSEEN_SAFETY = 10
"""A candidate absent from the check sample is still dropped when the base model expects its string at least once
in old-language text this many times the sample's size (step 5 above). On the demo corpus 10 drops 37 of 565
Swedish candidates, among them 4 of the 5 that changed held-out lines."""

NORMAL = model_pb2.ModelProto.SentencePiece.NORMAL
UNIGRAM = model_pb2.TrainerSpec.UNIGRAM


@dataclass
class ExtensionReport:
    base: str
    base_pieces: int
    requested: int
    added: int = 0
    pieces: list[str] = field(default_factory=list)
    dropped_by_check: int = 0
    dropped_as_expected: int = 0
    check_rounds: int = 0
    old_languages: dict[str, dict] = field(default_factory=dict)
    new_languages: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"base": self.base, "base_pieces": self.base_pieces, "added": self.added,
                "requested": self.requested, "pieces": self.pieces[:50], "dropped_by_check": self.dropped_by_check,
                "dropped_as_expected": self.dropped_as_expected,
                "check_rounds": self.check_rounds, "old_languages": self.old_languages,
                "new_languages": self.new_languages}


def load_unigram_proto(path: Path) -> model_pb2.ModelProto:
    """The base model's proto; refused unless it is a unigram model with XLM-R's specials."""
    if not path.is_file():
        raise XLMRDSError(f"{path}: SentencePiece model not found")
    proto = model_pb2.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except Exception:  # protobuf's DecodeError and friends: the file is not a ModelProto
        raise XLMRDSError(f"{path}: not a SentencePiece model (the file does not parse as a ModelProto)") from None
    if not proto.pieces:
        raise XLMRDSError(f"{path}: not a SentencePiece model (no pieces)")
    if proto.trainer_spec.model_type != UNIGRAM:
        kind = model_pb2.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type)
        raise XLMRDSError(f"{path}: a {kind} SentencePiece model; extension needs a unigram model (XLM-R's is one), "
                          f"whose piece scores decide the segmentation")
    return proto


def extend_sentencepiece(base: str | Path, input_dir: str | Path, add: int, out_prefix: str | Path,
                         new_languages: list[str] | None = None, alpha: float = 0.3, sample_lines: int = 200_000,
                         check_lines: int = 20_000, seed: int = 0, progress: bool = True,
                         text_field: str = DEFAULT_TEXT_FIELD) -> ExtensionReport:
    """Write PREFIX.model, PREFIX.vocab and PREFIX.extension.json (the .model last); return the report."""
    base, out_prefix = Path(base), Path(out_prefix)
    if add < 1:
        raise XLMRDSError(f"--add {add}: the number of pieces to add must be at least 1")
    proto = load_unigram_proto(base)
    corpus = discover_corpus(input_dir)
    by_name = {f.language: f for f in corpus}
    if new_languages:
        unknown = [lang for lang in new_languages if lang not in by_name]
        if unknown:
            raise XLMRDSError(f"--new-languages {' '.join(unknown)}: not in {input_dir} (it has "
                              f"{', '.join(by_name)})")
    new_names = list(new_languages) if new_languages else list(by_name)
    new_files = [by_name[lang] for lang in new_names]
    old_files = [f for f in corpus if f.language not in new_names]

    base_pieces = {p.piece for p in proto.pieces}
    report = ExtensionReport(str(base), len(proto.pieces), add)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_directory(out_prefix)
    try:
        samples = draw_alpha_sample(new_files, sample_lines, alpha, seed, progress, text_field)
        lines = [line for sample in samples for line in sample.lines]
        random.Random(stable_seed(seed, "spm-extend-shuffle")).shuffle(lines)
        # Twice the pieces wanted (many will be pieces the base has), as many as the text holds at most.
        train_unigram(lines, staging / "new", max(2 * add + len(base_pieces & {"<unk>", "<s>", "</s>"}), 8),
                      hard_vocab_limit=False)
        trained = model_pb2.ModelProto()
        trained.ParseFromString((staging / "new.model").read_bytes())
        candidates = sorted(((p.piece, p.score) for p in trained.pieces
                             if p.type == NORMAL and p.piece not in base_pieces), key=lambda c: -c[1])
        if not candidates:
            raise XLMRDSError(f"{input_dir}: the text of {', '.join(new_names)} has no piece that {base} lacks; "
                              f"nothing to add")

        check, held_out = _old_language_lines(old_files, check_lines, seed, text_field)
        base_sp = _processor(proto)
        chosen, dropped = _chosen_pieces(proto, candidates, add, check, base_sp, report)
        report.dropped_by_check = len(dropped)
        extended = _extended_proto(proto, chosen)
        new_sp = _processor(extended)
        report.added, report.pieces = len(chosen), [piece for piece, _ in chosen]
        for language, language_lines in held_out.items():
            changed = sum(a != b for a, b in zip(base_sp.Encode(language_lines), new_sp.Encode(language_lines)))
            report.old_languages[language] = {"lines": len(language_lines), "changed_lines": changed,
                                              "changed_share": changed / max(len(language_lines), 1)}
        for source in new_files:
            measured = sample_language(source, check_lines, stable_seed(seed, "spm-extend-measure")).lines
            report.new_languages[source.language] = {
                "lines": len(measured), **_token_counts(base_sp, measured, "before"),
                **_token_counts(new_sp, measured, "after")}
        _write_outputs(extended, report, out_prefix)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _token_counts(processor, lines: list[str], when: str) -> dict:
    """Tokens per line, and the share of them that are <unk> (SentencePiece folds a run of unknown characters
    into one <unk>, so a script the base lacks looks short before extension: the <unk> share says why)."""
    encoded = processor.Encode(lines)
    tokens = sum(map(len, encoded))
    unknown = sum(ids.count(processor.unk_id()) for ids in encoded)
    return {f"tokens_per_line_{when}": tokens / max(len(lines), 1), f"unk_share_{when}": unknown / max(tokens, 1)}


REPORT_LINES = 2_000
"""Old-language lines per language that the report's changed share is measured on (at most a fifth of them)."""


def _old_language_lines(old_files, check_lines: int, seed: int,
                        text_field: str) -> tuple[list[str], dict[str, list[str]]]:
    """Per old language, lines for the report (up to REPORT_LINES, at most a fifth of what it has) and up to
    `check_lines` others for choosing the pieces: a share measured on lines the choice saw would flatter it."""
    check, held_out = [], {}
    for source in old_files:
        drawn = sample_language(source, check_lines + REPORT_LINES, stable_seed(seed, "spm-extend-check"),
                                text_field).lines
        reported = min(REPORT_LINES, max(1, len(drawn) // 5))
        held_out[source.language] = drawn[:reported]
        check += drawn[reported:]
    return check, held_out


def _chosen_pieces(proto, candidates: list[tuple[str, float]], add: int, check: list[str], base_sp,
                   report: ExtensionReport) -> tuple[list[tuple[str, float]], set[str]]:
    """The first `add` candidates that neither occur in the check lines nor are likely in old-language text (steps
    4 and 5 above) and change no check line, after at most CHECK_ROUNDS rounds of dropping."""
    # A piece whose string occurs in old-language text could change it wherever it occurs; the check text, as
    # the base normalizes it (its pieces joined: spaces as U+2581, a leading one per line), rules those out.
    expected = base_sp.Encode(check) if check else []
    normalized = "\n".join("".join(base_sp.IdToPiece(ids)) for ids in expected)
    dropped = {piece for piece, _ in candidates if piece in normalized}
    if expected:
        # Expected at least once in UNSEEN_SAFETY times the sample's tokens: log-probability above -log(that).
        least, scorer = -math.log(UNSEEN_SAFETY * sum(map(len, expected))), _segmenter(proto)
        likely = {piece for piece, _ in candidates if _base_log_probability(scorer, piece) >= least}
        report.dropped_as_expected = len(likely - dropped)
        dropped |= likely
    chosen = candidates[:add]
    for round_number in range(1, CHECK_ROUNDS + 1):
        report.check_rounds = round_number
        chosen = [c for c in candidates if c[0] not in dropped][:add]
        if not check or not chosen:
            break
        trial = _processor(_extended_proto(proto, chosen))
        first_new = len(proto.pieces)
        offending = set()
        for ids, before in zip(trial.Encode(check), expected):
            if ids != before:
                offending.update(trial.IdToPiece(i) for i in ids if i >= first_new)
        if not offending:
            break
        dropped |= offending
    return chosen, dropped


def _base_log_probability(scorer: spm.SentencePieceProcessor, piece: str) -> float:
    """The score of the base model's best segmentation of a piece's string: the sum of its pieces' scores (the
    unigram model's log-probabilities); minus infinity when the string needs a character the base lacks."""
    ids = scorer.Encode(piece.replace("\u2581", " "))
    if not ids or scorer.unk_id() in ids:
        return -math.inf
    return sum(scorer.GetScore(i) for i in ids)


def _segmenter(proto) -> spm.SentencePieceProcessor:
    """The base model, segmenting a piece's string as it stands (no space added in front, none removed)."""
    as_is = model_pb2.ModelProto()
    as_is.CopyFrom(proto)
    as_is.normalizer_spec.add_dummy_prefix = False
    as_is.normalizer_spec.remove_extra_whitespaces = False
    return _processor(as_is)


def _extended_proto(proto, chosen: list[tuple[str, float]]):
    extended = model_pb2.ModelProto()
    extended.CopyFrom(proto)
    for piece, score in chosen:
        entry = extended.pieces.add()
        entry.piece, entry.score, entry.type = piece, score, NORMAL
    extended.trainer_spec.vocab_size = len(extended.pieces)
    return extended


def _processor(proto) -> spm.SentencePieceProcessor:
    processor = spm.SentencePieceProcessor()
    processor.LoadFromSerializedProto(proto.SerializeToString())
    return processor


def _write_outputs(extended, report: ExtensionReport, out_prefix: Path) -> None:
    """PREFIX.vocab and PREFIX.extension.json, then PREFIX.model: a .model present means all three are."""
    write_text_atomically(out_prefix.with_name(out_prefix.name + ".vocab"),
                          "".join(f"{p.piece}\t{p.score:g}\n" for p in extended.pieces))
    write_json_atomically(out_prefix.with_name(out_prefix.name + ".extension.json"), report.to_dict())
    write_bytes_atomically(out_prefix.with_name(out_prefix.name + ".model"), extended.SerializeToString())
