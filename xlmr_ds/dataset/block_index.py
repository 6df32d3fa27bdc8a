"""Block tables of every language and split, built once per dataset and settings, cached next to the data.

The cache is a directory OUT/.index/<key>/ holding <lang>.train.npy and <lang>.valid.npy (blocks.BLOCK_DTYPE
records: NumPy's .npy format 1.0, a header padded to 64 bytes, then 13 bytes per block) and complete.json,
written last; the directory is renamed into place whole. Readers memory-map the tables, so the processes of a
node share one copy in the page cache.

Building spreads the languages over the job's processes (largest first, each to the least loaded process) when
they all see the staging directory (a shared filesystem); else global rank 0 builds every language. A build
stages in OUT/.index/.<key>.<random>.tmp (outputs.staging_directory), where rank 0 holds an exclusive flock on
`building.lock` until the rename: a later build that can take the lock of a staging directory knows its builder
is gone (the kernel releases the locks of a killed process, whatever host or container it ran in) and removes
it; one without a lock file is either just created or about to be renamed, and is left alone. A process that
still finds no cache afterwards (node-local data on another host) builds its own copy, which is identical
because building is deterministic.

While they build, the processes meet in a collective at most `heartbeat_seconds` apart (`BuildHeartbeat`), which
also carries the lines done to rank 0's progress bar: no process waits in one collective for a whole build,
however long, so none reaches the distributed timeout.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from xlmr_ds.dataset.blocks import BLOCK_DTYPE, packed_chunks, split_runs, validation_documents
from xlmr_ds.dataset.indexed import IndexedDataset, idx_path
from xlmr_ds.dataset.manifest import MANIFEST
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.logs import log, progress_bar
from xlmr_ds.outputs import staging_directory

CACHE_FORMAT_VERSION = 1
COMPLETE = "complete.json"
BUILD_LOCK = "building.lock"
HEARTBEAT_SECONDS = 10.0
"""Longest time between two collectives of the processes building an index."""
PROGRESS_MIN_LINES = 20_000_000
"""Fewest lines (both splits counted) of a build that shows a progress bar: smaller ones take seconds."""
SPLITS = ("train", "valid")


def cache_key(data_dir: Path, languages: list[str], block_size: int, valid_fraction: float, split_seed: int) -> str:
    identity = {
        "format": CACHE_FORMAT_VERSION,
        "manifest": hashlib.sha256((data_dir / MANIFEST).read_bytes()).hexdigest(),
        "index_sizes": {lang: idx_path(data_dir / lang).stat().st_size for lang in languages},
        "block_size": block_size, "valid_fraction": valid_fraction, "split_seed": split_seed,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def cache_directory(data_dir: Path, languages: list[str], block_size: int, valid_fraction: float,
                    split_seed: int) -> Path:
    return data_dir / ".index" / cache_key(data_dir, languages, block_size, valid_fraction, split_seed)


def build_block_tables(dataset: IndexedDataset, language: str, block_size: int, valid_fraction: float,
                       split_seed: int, progress: Callable[[int], None] | None = None) -> Iterable[list[np.ndarray]]:
    """For the training split, then the validation split: the language's blocks, as the chunks they are packed
    in (`progress(lines)` after each)."""
    held_out = validation_documents(dataset.num_documents, valid_fraction, split_seed, language)
    for want_held_out in (False, True):
        runs = split_runs(dataset.document_indices, held_out, want_held_out)
        yield list(packed_chunks(dataset.sequence_lengths, runs, block_size, progress=progress))


def write_block_table(path: Path, chunks: list[np.ndarray]) -> None:
    """One .npy of blocks from its chunks, without joining them in memory (temporary name, then rename)."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as table:
        header = {"descr": np.lib.format.dtype_to_descr(BLOCK_DTYPE), "fortran_order": False,
                  "shape": (sum(len(chunk) for chunk in chunks),)}
        np.lib.format.write_array_header_1_0(table, header)
        for chunk in chunks:
            table.write(np.ascontiguousarray(chunk, dtype=BLOCK_DTYPE).tobytes())
    os.replace(temporary, path)


def write_language_tables(staging: Path, data_dir: Path, language: str, block_size: int, valid_fraction: float,
                          split_seed: int, progress: Callable[[int], None] | None = None) -> None:
    """<lang>.train.npy and <lang>.valid.npy of one language, into a build's staging directory."""
    dataset = IndexedDataset(data_dir / language)
    for split, chunks in zip(SPLITS, build_block_tables(dataset, language, block_size, valid_fraction, split_seed,
                                                        progress)):
        write_block_table(staging / f"{language}.{split}.npy", chunks)


def assign_languages(line_counts: dict[str, int], processes: int) -> list[list[str]]:
    """Each process's languages: the largest first, each to the process with the fewest lines so far (Graham's
    longest-processing-time rule: the slowest process takes at most 4/3 of the best possible time). The
    largest language bounds the build's time whatever the number of processes."""
    loads = [0] * processes
    shares: list[list[str]] = [[] for _ in range(processes)]
    for language in sorted(line_counts, key=lambda lang: (-line_counts[lang], lang)):
        process = loads.index(min(loads))
        shares[process].append(language)
        loads[process] += line_counts[language]
    return shares


class BuildHeartbeat:
    """The collectives of the processes building an index: one round at most `seconds` apart on every process,
    carrying (processes still building, lines packed since the last round, processes that failed). A process
    that is done keeps meeting the others' rounds until all are done; one that builds joins a round between
    two chunks once `seconds` have passed. Rank 0 shows the lines on a progress bar."""

    def __init__(self, world, total_lines: int, seconds: float = HEARTBEAT_SECONDS, progress: bool = True):
        self.world, self.seconds = world, seconds
        self._pending = 0
        self._last = time.monotonic()
        self._bar = progress_bar(rank=world.rank, disable=not progress or total_lines < PROGRESS_MIN_LINES,
                                 total=total_lines, unit=" lines", unit_scale=True, desc="block index",
                                 mininterval=1.0)

    def advance(self, lines: int) -> None:
        self._pending += lines
        if time.monotonic() - self._last >= self.seconds:
            self._round(building=True, failed=False)

    def _round(self, building: bool, failed: bool) -> tuple[int, int]:
        still_building, lines, failures = self.world.sum([float(building), float(self._pending), float(failed)])
        self._pending, self._last = 0, time.monotonic()
        self._bar.update(int(lines))
        return int(still_building), int(failures)

    def finish(self, failed: bool) -> int:
        """Meet the rounds until no process builds; the number of processes that failed."""
        while True:
            still_building, failures = self._round(building=False, failed=failed)
            if not still_building:
                self._bar.close()
                return failures


def build_cache(data_dir: Path, cache_dir: Path, languages: list[str], block_size: int, valid_fraction: float,
                split_seed: int, world, heartbeat_seconds: float = HEARTBEAT_SECONDS, progress: bool = True) -> None:
    """Build the cache directory with every process of `world` (see the module docstring); collective."""
    lock = staging = None
    started = time.perf_counter()
    if world.rank == 0:
        cache_dir.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_staging(cache_dir)
        staging = staging_directory(cache_dir)
        lock = open(staging / BUILD_LOCK, "w")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        staging = Path(world.broadcast_object(str(staging) if staging else None))
        shared = int(world.sum([float(staging.is_dir())])[0]) == world.size
        line_counts = {lang: len(IndexedDataset(data_dir / lang)) for lang in languages}
        shares = assign_languages(line_counts, world.size if shared else 1)
        mine = shares[world.rank] if world.rank < len(shares) else []
        heartbeat = BuildHeartbeat(world, 2 * sum(line_counts.values()), heartbeat_seconds, progress)  # 2 splits
        error = None
        try:
            for language in mine:
                write_language_tables(staging, data_dir, language, block_size, valid_fraction, split_seed,
                                      heartbeat.advance)
        except Exception as raised:  # the others must not wait for this process: it says so in the heartbeat
            error = raised
        failures = heartbeat.finish(failed=error is not None)
        if error is not None:
            raise error
        if failures:
            raise XLMRDSError(f"{cache_dir}: {failures} other process(es) failed building the block index; "
                              f"their error says why")
        if world.rank == 0:
            (staging / COMPLETE).write_text(json.dumps({"languages": languages, "block_size": block_size}) + "\n")
            (staging / BUILD_LOCK).unlink()  # still held through the open file until the rename is done
            try:
                os.rename(staging, cache_dir)
            except OSError:
                if not (cache_dir / COMPLETE).exists():  # not a concurrent identical build: a real failure
                    raise
            lines, seconds = 2 * sum(line_counts.values()), time.perf_counter() - started
            if progress and lines >= PROGRESS_MIN_LINES:
                processes = "1 process" if len(shares) == 1 else f"{len(shares)} processes"
                log(f"block index: {lines // 2:,} lines packed in {seconds:.1f} s by {processes}, "
                    f"{lines / 2 / seconds / 1e6:.1f}M lines/s")
        world.barrier()
    finally:
        if lock is not None:
            lock.close()
            shutil.rmtree(staging, ignore_errors=True)


def _build_alone(data_dir: Path, cache_dir: Path, languages: list[str], block_size: int, valid_fraction: float,
                 split_seed: int) -> None:
    from xlmr_ds.world import SingleProcess

    build_cache(data_dir, cache_dir, languages, block_size, valid_fraction, split_seed, SingleProcess())


def _remove_abandoned_staging(cache_dir: Path) -> None:
    """Delete the staging directories of this cache whose builder died (their build lock can be taken)."""
    for staging in cache_dir.parent.glob(f".{cache_dir.name}.*"):
        try:
            with open(staging / BUILD_LOCK, "r+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # no lock file (a build starting or finishing), or its builder still holds it
            continue
        shutil.rmtree(staging, ignore_errors=True)


def load_block_tables(data_dir: Path, languages: list[str], block_size: int, valid_fraction: float,
                      split_seed: int, world, progress: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{language: (train blocks, validation blocks)}, memory-mapped, building the cache if needed (see the module
    docstring). `world` is the job's processes (`rank`, `size`, `sum`, `broadcast_object`, `barrier`): the
    training job's runtime, MPI's world under mpiexec, or one process. `progress`: a bar on rank 0 for a long
    build."""
    cache_dir = cache_directory(data_dir, languages, block_size, valid_fraction, split_seed)
    missing = not (cache_dir / COMPLETE).exists()
    # Every process takes part in the decision, so that none waits in a collective the others skip.
    missing_on_rank_0 = world.sum([float(missing and world.rank == 0)])[0]
    if missing_on_rank_0:
        build_cache(data_dir, cache_dir, languages, block_size, valid_fraction, split_seed, world,
                    progress=progress)
    if not (cache_dir / COMPLETE).exists():  # node-local data on another host
        _build_alone(data_dir, cache_dir, languages, block_size, valid_fraction, split_seed)
    return {lang: (np.load(cache_dir / f"{lang}.train.npy", mmap_mode="r"),
                   np.load(cache_dir / f"{lang}.valid.npy", mmap_mode="r")) for lang in languages}
