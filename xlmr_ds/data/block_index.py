"""Block tables of every language and split, built once per dataset and settings, cached next to the data.

Building scans every sequence length, so it is done by one process (global rank 0) while the others wait;
a process that still finds no cache afterwards (node-local data on another host) builds its own copy,
which is identical because building is deterministic. The cache is a directory
OUT/.index/<key>/ holding <lang>.train.npy and <lang>.valid.npy (packing.BLOCK_DTYPE records) and
complete.json, written last; the directory is renamed into place whole. A build stages in
OUT/.index/.<key>.<host>.<pid>.<random>; a build that finds a staging directory of its own host whose process
is gone (killed mid-build) removes it, and never touches one of a live process or of another host.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

import numpy as np

from xlmr_ds.data.binarize import MANIFEST
from xlmr_ds.data.indexed import IndexedDataset, idx_path
from xlmr_ds.data.packing import pack_blocks, split_runs, validation_documents
from xlmr_ds.faults import fault_point
from xlmr_ds.parallel import job_barrier, job_rank

CACHE_FORMAT_VERSION = 1
COMPLETE = "complete.json"


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


def _build_cache(data_dir: Path, cache_dir: Path, languages: list[str], block_size: int, valid_fraction: float,
                 split_seed: int) -> None:
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().replace(".", "_")
    _remove_abandoned_staging(cache_dir, host)
    staging = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.{host}.{os.getpid()}.", dir=cache_dir.parent))
    try:
        for language in languages:
            train, valid = build_block_tables(IndexedDataset(data_dir / language), language, block_size,
                                              valid_fraction, split_seed)
            np.save(staging / f"{language}.train.npy", train)
            np.save(staging / f"{language}.valid.npy", valid)
            fault_point("index", language, job_rank())
        (staging / COMPLETE).write_text(json.dumps({"languages": languages, "block_size": block_size}) + "\n")
        try:
            os.rename(staging, cache_dir)
        except OSError:
            if not (cache_dir / COMPLETE).exists():  # not a concurrent identical build: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_abandoned_staging(cache_dir: Path, host: str) -> None:
    """Delete staging directories for this cache left by processes of this host that no longer exist."""
    for staging in cache_dir.parent.glob(f".{cache_dir.name}.{host}.*"):
        pid = staging.name[len(f".{cache_dir.name}.{host}."):].split(".", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def load_block_tables(data_dir: Path, languages: list[str], block_size: int, valid_fraction: float,
                      split_seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{language: (train blocks, validation blocks)}, building the cache if needed (see module docstring)."""
    cache_dir = data_dir / ".index" / cache_key(data_dir, languages, block_size, valid_fraction, split_seed)
    if job_rank() == 0 and not (cache_dir / COMPLETE).exists():
        _build_cache(data_dir, cache_dir, languages, block_size, valid_fraction, split_seed)
    job_barrier()
    if not (cache_dir / COMPLETE).exists():
        _build_cache(data_dir, cache_dir, languages, block_size, valid_fraction, split_seed)
    return {lang: (np.load(cache_dir / f"{lang}.train.npy", mmap_mode="r"),
                   np.load(cache_dir / f"{lang}.valid.npy", mmap_mode="r")) for lang in languages}
