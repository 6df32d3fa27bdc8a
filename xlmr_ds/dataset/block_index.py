"""Block tables of every language and split, built once per dataset and settings, cached next to the data.

Building scans every sequence length, so it is done by one process (global rank 0) while the others wait;
a process that still finds no cache afterwards (node-local data on another host) builds its own copy,
which is identical because building is deterministic. The cache is a directory
OUT/.index/<key>/ holding <lang>.train.npy and <lang>.valid.npy (blocks.BLOCK_DTYPE records) and
complete.json, written last; the directory is renamed into place whole. A build stages in
OUT/.index/.<key>.<random>.tmp (outputs.staging_directory) and holds an exclusive flock on its
`building.lock` until the rename: a later build that can take the lock of a staging directory knows its
builder is gone (the kernel releases the locks of a killed process, whatever host or container it ran in)
and removes it; one without a lock file is either just created or about to be renamed, and is left alone.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from xlmr_ds.dataset.blocks import pack_blocks, split_runs, validation_documents
from xlmr_ds.dataset.indexed import IndexedDataset, idx_path
from xlmr_ds.dataset.manifest import MANIFEST
from xlmr_ds.outputs import staging_directory

CACHE_FORMAT_VERSION = 1
COMPLETE = "complete.json"
BUILD_LOCK = "building.lock"


def cache_key(data_dir: Path, languages: list[str], block_size: int, valid_fraction: float, split_seed: int) -> str:
    identity = {
        "format": CACHE_FORMAT_VERSION,
        "manifest": hashlib.sha256((data_dir / MANIFEST).read_bytes()).hexdigest(),
        "index_sizes": {lang: idx_path(data_dir / lang).stat().st_size for lang in languages},
        "block_size": block_size, "valid_fraction": valid_fraction, "split_seed": split_seed,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def build_block_tables(dataset: IndexedDataset, language: str, block_size: int, valid_fraction: float,
                       split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    held_out = validation_documents(dataset.num_documents, valid_fraction, split_seed, language)
    tables = []
    for want_held_out in (False, True):
        runs = split_runs(dataset.document_indices, held_out, want_held_out)
        tables.append(pack_blocks(dataset.sequence_lengths, runs, block_size))
    return tables[0], tables[1]


def write_language_tables(staging: Path, data_dir: Path, language: str, block_size: int, valid_fraction: float,
                          split_seed: int) -> None:
    """<lang>.train.npy and <lang>.valid.npy of one language, into a build's staging directory."""
    train, valid = build_block_tables(IndexedDataset(data_dir / language), language, block_size, valid_fraction,
                                      split_seed)
    np.save(staging / f"{language}.train.npy", train)
    np.save(staging / f"{language}.valid.npy", valid)


def _build_cache(data_dir: Path, cache_dir: Path, languages: list[str], block_size: int, valid_fraction: float,
                 split_seed: int) -> None:
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(cache_dir)
    staging = staging_directory(cache_dir)
    lock = open(staging / BUILD_LOCK, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for language in languages:
            write_language_tables(staging, data_dir, language, block_size, valid_fraction, split_seed)
        (staging / COMPLETE).write_text(json.dumps({"languages": languages, "block_size": block_size}) + "\n")
        (staging / BUILD_LOCK).unlink()  # still held through the open file until the rename is done
        try:
            os.rename(staging, cache_dir)
        except OSError:
            if not (cache_dir / COMPLETE).exists():  # not a concurrent identical build: a real failure
                raise
    finally:
        lock.close()
        shutil.rmtree(staging, ignore_errors=True)


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
                      split_seed: int, world) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{language: (train blocks, validation blocks)}, building the cache if needed (see module docstring).
    `world` is the job's processes (its `rank` and `barrier()`): the training job's runtime, MPI's world
    under mpiexec, or one process."""
    cache_dir = data_dir / ".index" / cache_key(data_dir, languages, block_size, valid_fraction, split_seed)
    if world.rank == 0 and not (cache_dir / COMPLETE).exists():
        _build_cache(data_dir, cache_dir, languages, block_size, valid_fraction, split_seed)
    world.barrier()
    if not (cache_dir / COMPLETE).exists():
        _build_cache(data_dir, cache_dir, languages, block_size, valid_fraction, split_seed)
    return {lang: (np.load(cache_dir / f"{lang}.train.npy", mmap_mode="r"),
                   np.load(cache_dir / f"{lang}.valid.npy", mmap_mode="r")) for lang in languages}
