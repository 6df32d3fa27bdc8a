"""Parallel binarization of a corpus into one indexed dataset per language (`xlmr-ds binarize`).

For each language every rank takes a contiguous run of it (corpus/shards.py split_work: byte ranges starting at line
starts inside plain text shards, whole compressed or columnar shards), encodes its lines (one sequence per
non-blank line: its ids followed by </s>) into a part file, and records where
blank lines end documents. An exclusive scan of the part sizes gives each rank its offset in the shared
.bin, which it writes with pwrite; rank 0 gathers the document boundaries and writes the .idx, streaming
the per-rank lengths. The output depends only on the input and the tokenizer, never on the rank count.

Completion is marked last at every level: a language's .idx is renamed into place after its .bin, and
OUT/manifest.json (written last, removed first when a run starts) says the whole output is complete.
"""

from __future__ import annotations

import itertools
import operator
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from xlmr_ds.dataset.indexed import bin_path, idx_path, token_dtype, write_index
from xlmr_ds.dataset.manifest import MANIFEST, write_manifest
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.logs import progress_bar
from xlmr_ds.outputs import check_output_directory, replaced_file, temporary_path
from xlmr_ds.prep.corpus.reader import DEFAULT_TEXT_FIELD, iter_segment_text
from xlmr_ds.prep.corpus.shards import (
    LanguageSource,
    ReplacementCounter,
    Segment,
    discover_corpus,
    split_block_lines,
    split_work,
)
from xlmr_ds.prep.shared_file import write_part
from xlmr_ds.tokenizer import XLMRTokenizer
from xlmr_ds.world import fail_together


@dataclass
class LanguageStats:
    documents: int = 0
    sequences: int = 0
    tokens: int = 0
    bytes_read: int = 0
    replaced_characters: int = 0
    nul_characters: int = 0
    """NUL bytes in the text (SentencePiece encodes them as <unk>): a sign of a binary or damaged file."""


@dataclass
class RankPart:
    """What one rank produced for one language."""

    sequences: int
    token_bytes: int
    document_ends: np.ndarray
    """Local sequence counts at blank lines (document boundaries), before the rank's offset is added (int64,
    ascending: 8 bytes a document, gathered by rank 0 as arrays, not as Python ints at over 100 bytes each)."""
    stats: LanguageStats


def _part_paths(tmp_dir: Path, language: str, rank: int) -> tuple[Path, Path]:
    return tmp_dir / f"{language}.r{rank}.bin", tmp_dir / f"{language}.r{rank}.len"


def encode_segments(language: str, segments: list[Segment], text_field: str, tokenizer: XLMRTokenizer,
                    dtype: np.dtype, tmp_dir: Path, rank: int, progress: tqdm | None) -> RankPart:
    """Encode this rank's segments of a language, in order, into its part files."""
    tokens_path, lengths_path = _part_paths(tmp_dir, language, rank)
    decoder = ReplacementCounter()
    stats = LanguageStats(bytes_read=sum(segment.end - segment.start for segment in segments))
    document_ends: list[np.ndarray] = []
    sequences = 0
    with open(tokens_path, "wb") as tokens_out, open(lengths_path, "wb") as lengths_out:
        for segment in segments:
            for text, consumed in iter_segment_text(segment, decoder, text_field):
                stats.nul_characters += text.count("\0")
                lines = split_block_lines(text)
                # is_blank for every line, in C (no Python bytecode per line of the corpus): empty or whitespace.
                blank = np.fromiter(map(operator.or_, map(operator.not_, lines), map(str.isspace, lines)),
                                    dtype=bool, count=len(lines))
                blank_at = np.flatnonzero(blank)
                if len(blank_at):
                    # A blank line ends a document after the non-blank lines before it.
                    document_ends.append(sequences + blank_at - np.arange(len(blank_at), dtype=np.int64))
                    lines = list(itertools.compress(lines, (~blank).tolist()))
                if lines:
                    ids, lengths = tokenizer.encode_lines_with_eos(lines, dtype=dtype)
                    tokens_out.write(ids)
                    lengths_out.write(lengths)
                    sequences += len(lines)
                    stats.tokens += int(ids.size)
                if progress is not None:
                    progress.update(consumed)
    stats.sequences = sequences
    stats.replaced_characters = decoder.replaced
    ends = np.concatenate(document_ends) if document_ends else np.empty(0, dtype=np.int64)
    return RankPart(sequences, tokens_path.stat().st_size, ends.astype(np.int64), stats)


def _read_lengths(paths: list[Path]):
    for path in paths:
        yield np.fromfile(path, dtype=np.int32)


def binarize_language(source: LanguageSource, segments: list[Segment], text_field: str, tokenizer: XLMRTokenizer,
                      out_dir: Path, tmp_dir: Path, world, progress: tqdm | None) -> LanguageStats | None:
    """Write OUT/<lang>.bin and .idx from this rank's segments of the language; returns the language's stats
    on rank 0 (None elsewhere)."""
    dtype = token_dtype(tokenizer.vocab_size)
    # A damaged shard is found by the one rank that reads it: all stop with its error.
    part = fail_together(world, lambda: encode_segments(source.language, segments, text_field, tokenizer, dtype,
                                                        tmp_dir, world.rank, progress))

    sequence_offset = world.exscan_sum(part.sequences)
    byte_offset = world.exscan_sum(part.token_bytes)
    total_bytes = world.allreduce_sum(part.token_bytes)
    prefix = out_dir / source.language
    tmp_bin = temporary_path(bin_path(prefix))  # written by every rank (pwrite), renamed by rank 0
    if world.rank == 0:
        for stale in (idx_path(prefix), bin_path(prefix)):  # an older dataset must not look current
            stale.unlink(missing_ok=True)
        with open(tmp_bin, "wb") as out:
            out.truncate(total_bytes)
    world.barrier()

    tokens_path, lengths_path = _part_paths(tmp_dir, source.language, world.rank)
    write_part(tokens_path, tmp_bin, byte_offset)
    tokens_path.unlink()

    gathered = world.gather((part.document_ends + sequence_offset, part.stats))
    world.barrier()  # every rank's tokens are in the shared .bin
    if world.rank != 0:
        world.barrier()
        lengths_path.unlink()
        return None

    sequence_count = sum(stats.sequences for _, stats in gathered)
    if sequence_count == 0:
        # No text at all: no dataset (a zero-length .bin cannot be memory-mapped, by us or by megatron-core).
        tmp_bin.unlink()
        world.barrier()
        lengths_path.unlink()
        return LanguageStats(bytes_read=sum(stats.bytes_read for _, stats in gathered),
                             replaced_characters=sum(stats.replaced_characters for _, stats in gathered),
                             nul_characters=sum(stats.nul_characters for _, stats in gathered))
    document_indices = np.unique(np.concatenate([[0, sequence_count], *(ends for ends, _ in gathered)])
                                 .astype(np.int64))
    length_files = [_part_paths(tmp_dir, source.language, rank)[1] for rank in range(world.size)]
    with replaced_file(idx_path(prefix)) as tmp_idx:
        write_index(tmp_idx, dtype, sequence_count, _read_lengths(length_files), document_indices)
        os.replace(tmp_bin, bin_path(prefix))  # before the .idx, whose presence says the dataset is complete
    world.barrier()  # the other ranks may now delete their length parts
    lengths_path.unlink()

    total = LanguageStats(documents=len(document_indices) - 1)
    for _, stats in gathered:
        total.sequences += stats.sequences
        total.tokens += stats.tokens
        total.bytes_read += stats.bytes_read
        total.replaced_characters += stats.replaced_characters
        total.nul_characters += stats.nul_characters
    return total


def binarize_corpus(input_dir: str | Path, spm_model: str | Path, out_dir: str | Path, world,
                    progress: bool = True, text_field: str = DEFAULT_TEXT_FIELD,
                    ) -> tuple[dict[str, LanguageStats] | None, float]:
    """Binarize every language; returns (stats per language on rank 0, else None; elapsed seconds)."""
    corpus = discover_corpus(input_dir)
    tokenizer = XLMRTokenizer(spm_model)
    out_dir = check_output_directory(out_dir, "--out")
    tmp_dir = out_dir / ".binarize-tmp"
    out_dir_is_new = not out_dir.exists()
    if world.rank == 0:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / MANIFEST).unlink(missing_ok=True)  # until this run finishes, the output is not complete
    world.barrier()

    started = time.perf_counter()
    my_segments = {source.language: split_work(source, world.size)[world.rank] for source in corpus}
    bar = progress_bar(total=sum(s.end - s.start for segments in my_segments.values() for s in segments),
                       unit="B", unit_scale=True,
                       desc=f"binarize (rank 0 of {world.size})", rank=world.rank, disable=not progress)
    results = {}
    try:
        with bar:
            for source in corpus:
                bar.set_postfix_str(source.language)
                stats = binarize_language(source, my_segments[source.language], text_field, tokenizer, out_dir,
                                          tmp_dir, world, bar)
                if stats is not None:
                    results[source.language] = stats
    except XLMRDSError:
        if world.rank == 0:  # a damaged shard: no part files are left behind (no manifest was written)
            shutil.rmtree(tmp_dir, ignore_errors=True)
            if out_dir_is_new and not any(out_dir.iterdir()):
                out_dir.rmdir()
        raise
    world.barrier()
    elapsed = time.perf_counter() - started
    if world.rank != 0:
        return None, elapsed
    written = {lang: asdict(stats) for lang, stats in results.items() if stats.sequences}
    write_manifest(out_dir, tokenizer.model_file, {
        "source": str(tokenizer.model_file), "sha256": tokenizer.sha256, "pieces": tokenizer.pieces,
        "vocab_size": tokenizer.vocab_size}, token_dtype(tokenizer.vocab_size), written,
        skipped=[lang for lang in results if lang not in written])
    shutil.rmtree(tmp_dir, ignore_errors=True)
    return results, elapsed
