"""Training the SentencePiece unigram model on an alpha-sampled, streamed sample of the corpus.

Language i gets round(M * q_i) of the M sample lines, with q_i from the alpha distribution over the
languages' sizes in bytes on disk (the token counts are not known before the tokenizer exists; keep the
languages in one format, e.g. all .txt.xz as CC-100 ships them, so that compression does not skew q). Each language's
lines are drawn by reservoir sampling in one streaming pass, so memory holds the sample, never a file.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from xlmr_ds.dataset.sampling import alpha_probabilities, stable_seed
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.logs import progress_bar
from xlmr_ds.outputs import staging_directory
from xlmr_ds.prep.corpus.reader import DEFAULT_TEXT_FIELD, iter_language_lines
from xlmr_ds.prep.corpus.shards import LanguageSource, ReplacementCounter, discover_corpus, is_blank


@dataclass(frozen=True)
class LanguageSample:
    language: str
    bytes: int
    probability: float
    lines: list[str]
    replaced: int


def sample_language(source: LanguageSource, count: int, seed: int,
                    text_field: str = DEFAULT_TEXT_FIELD) -> LanguageSample:
    """Up to `count` non-blank lines, uniformly at random (reservoir sampling), in a fixed order for a seed."""
    rng = random.Random(stable_seed(seed, "spm-sample", source.language))
    decoder = ReplacementCounter()
    reservoir: list[str] = []
    seen = 0
    for line in iter_language_lines(source, decoder, text_field):
        if is_blank(line):
            continue
        if len(reservoir) < count:
            reservoir.append(line)
        else:
            slot = rng.randrange(seen + 1)
            if slot < count:
                reservoir[slot] = line
        seen += 1
    return LanguageSample(source.language, source.size, 0.0, reservoir, decoder.replaced)


def draw_alpha_sample(corpus: list[LanguageSource], sample_lines: int, alpha: float, seed: int,
                      progress: bool = True, text_field: str = DEFAULT_TEXT_FIELD) -> list[LanguageSample]:
    q = alpha_probabilities({f.language: f.size for f in corpus}, alpha)
    samples = []
    for source in progress_bar(iterable=corpus, desc="sampling languages", unit="lang", disable=not progress):
        wanted = max(1, round(sample_lines * q[source.language])) if q[source.language] > 0 else 0
        sample = sample_language(source, wanted, seed, text_field)
        samples.append(LanguageSample(source.language, source.size, q[source.language], sample.lines,
                                      sample.replaced))
    return samples


def train_sentencepiece(input_dir: str | Path, out_prefix: str | Path, vocab_size: int, alpha: float = 0.3,
                        sample_lines: int = 1_000_000, seed: int = 0, character_coverage: float = 0.9995,
                        progress: bool = True, text_field: str = DEFAULT_TEXT_FIELD) -> list[LanguageSample]:
    """Write PREFIX.model and PREFIX.vocab; the .model appears last, only when both are complete."""
    if vocab_size < 8:
        raise XLMRDSError(f"--vocab-size={vocab_size} must be at least 8")
    if sample_lines < 1:
        raise XLMRDSError(f"--sample-lines={sample_lines} must be at least 1")
    corpus = discover_corpus(input_dir)
    samples = draw_alpha_sample(corpus, sample_lines, alpha, seed, progress, text_field)
    lines = [line for sample in samples for line in sample.lines]
    random.Random(stable_seed(seed, "spm-shuffle")).shuffle(lines)

    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_directory(out_prefix)
    try:
        train_unigram(lines, staging / "spm", vocab_size, character_coverage)
        os.replace(staging / "spm.vocab", out_prefix.with_name(out_prefix.name + ".vocab"))
        os.replace(staging / "spm.model", out_prefix.with_name(out_prefix.name + ".model"))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return samples


def train_unigram(lines: list[str], prefix: Path, vocab_size: int, character_coverage: float = 0.9995,
                  hard_vocab_limit: bool = True) -> None:
    """PREFIX.model and PREFIX.vocab: a unigram model with XLM-R's specials trained on `lines`.
    hard_vocab_limit=False lets SentencePiece stop below vocab_size when the text has fewer pieces."""
    sample_file = prefix.with_name(prefix.name + ".sample.txt")
    sample_file.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    try:
        spm.SentencePieceTrainer.Train(
            input=str(sample_file), model_prefix=str(prefix), vocab_size=vocab_size,
            model_type="unigram", character_coverage=character_coverage, input_sentence_size=0,
            shuffle_input_sentence=False, num_threads=os.cpu_count() or 1, max_sentence_length=1 << 16,
            unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2, hard_vocab_limit=hard_vocab_limit,
        )
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1]
        # SentencePiece reports every failed status as a plain RuntimeError (no code): its text tells them apart.
        fix = ("raise --vocab-size above the number of distinct characters in the sample"
               if "required_chars" in reason else "lower --vocab-size or add text")
        raise XLMRDSError(f"SentencePiece training failed with --vocab-size={vocab_size} on {len(lines)} "
                          f"sample lines: {reason}; {fix}") from None
    finally:
        sample_file.unlink(missing_ok=True)
