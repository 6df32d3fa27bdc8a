"""Indexed datasets in the Megatron MMIDIDX format (version 1): writing, and memory-mapped reading.

A dataset is two files with a common prefix. Everything is little-endian.

<prefix>.bin: the token ids of all sequences back to back, each id in the dtype named by the index.

<prefix>.idx:
    offset            size      field
    0                 9         magic b"MMIDIDX\\x00\\x00"
    9                 8         uint64 version = 1
    17                1         uint8 dtype code: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64,
                                6 float64, 7 float32, 8 uint16
    18                8         uint64 N, the number of sequences
    26                8         uint64 D, the number of document indices (documents + 1)
    34                4 N       int32 sequence lengths, in tokens
    34 + 4N           8 N       int64 sequence pointers: byte offset of each sequence in .bin
    34 + 12N          8 D       int64 document indices: the sequence index where each document starts,
                                first 0, last N
    34 + 12N + 8D               end of file

megatron-core's IndexedDataset reads these files (tests use it as the oracle); this module has its own
reader so that training does not depend on megatron-core. The writer (prep/binarize.py, with write_index)
puts .bin then .idx under temporary names and renames the .idx last: a dataset whose .idx exists is complete.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from xlmr_ds.errors import XLMRDSError

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
HEADER = struct.Struct("<9sQBQQ")
DTYPE_CODES = {
    np.dtype(np.uint8): 1, np.dtype(np.int8): 2, np.dtype(np.int16): 3, np.dtype(np.int32): 4,
    np.dtype(np.int64): 5, np.dtype(np.float64): 6, np.dtype(np.float32): 7, np.dtype(np.uint16): 8,
}
CODE_DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}
TOKEN_DTYPES = (np.dtype(np.uint16), np.dtype(np.int32))
_REBUILD = "; rebuild the dataset with `xlmr-ds binarize`"


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 for vocabularies that fit (as Megatron chooses: under 65,500), else int32 (XLM-R's 250,002)."""
    return np.dtype(np.uint16) if vocab_size < 65_500 else np.dtype(np.int32)


def bin_path(prefix: str | Path) -> Path:
    return Path(f"{prefix}.bin")


def idx_path(prefix: str | Path) -> Path:
    return Path(f"{prefix}.idx")


def write_index(path: Path, dtype: np.dtype, sequence_count: int, length_chunks: Iterable[np.ndarray],
                document_indices: np.ndarray) -> None:
    """Write an .idx file, streaming the lengths (and the pointers derived from them) chunk by chunk."""
    dtype = np.dtype(dtype)
    itemsize = dtype.itemsize
    document_indices = np.asarray(document_indices, dtype=np.int64)
    with open(path, "wb") as out:
        out.write(HEADER.pack(MAGIC, VERSION, DTYPE_CODES[dtype], sequence_count, len(document_indices)))
        pointer_start = out.tell() + 4 * sequence_count
        written, next_pointer = 0, 0
        for lengths in length_chunks:
            lengths = np.asarray(lengths, dtype=np.int32)
            out.seek(HEADER.size + 4 * written)
            out.write(lengths.tobytes())
            pointers = np.empty(len(lengths), dtype=np.int64)
            if len(lengths):
                pointers[0] = next_pointer
                np.cumsum(lengths[:-1].astype(np.int64) * itemsize, out=pointers[1:])
                pointers[1:] += next_pointer
                next_pointer = int(pointers[-1]) + int(lengths[-1]) * itemsize
            out.seek(pointer_start + 8 * written)
            out.write(pointers.tobytes())
            written += len(lengths)
        if written != sequence_count:
            raise ValueError(f"{path}: {written} sequence lengths written, header says {sequence_count}")
        out.seek(pointer_start + 8 * sequence_count)
        out.write(document_indices.tobytes())


class IndexedDataset:
    """Memory-mapped reader, validated on open: a damaged file gets a one-line error naming it."""

    def __init__(self, prefix: str | Path):
        self.prefix = Path(prefix)
        index_file, data_file = idx_path(prefix), bin_path(prefix)
        for path in (index_file, data_file):
            if not path.is_file():
                raise XLMRDSError(f"{path}: not found (an indexed dataset needs {index_file.name} and "
                                  f"{data_file.name})")
        index_size = index_file.stat().st_size
        if index_size < HEADER.size:
            raise XLMRDSError(f"{index_file}: {index_size} bytes is shorter than the {HEADER.size}-byte "
                              f"header{_REBUILD}")
        with open(index_file, "rb") as handle:
            magic, version, code, count, doc_count = HEADER.unpack(handle.read(HEADER.size))
        if magic != MAGIC:
            raise XLMRDSError(f"{index_file}: bad magic {magic!r}; expected {MAGIC!r} (Megatron MMIDIDX){_REBUILD}")
        if version != VERSION:
            raise XLMRDSError(f"{index_file}: index version {version} is not supported; expected {VERSION}{_REBUILD}")
        if code not in CODE_DTYPES or CODE_DTYPES[code] not in TOKEN_DTYPES:
            raise XLMRDSError(f"{index_file}: dtype code {code} is not a token dtype; expected 8 (uint16) or 4 (int32)"
                              f"{_REBUILD}")
        expected = HEADER.size + 12 * count + 8 * doc_count
        if index_size != expected:
            raise XLMRDSError(f"{index_file}: {index_size} bytes, but {count} sequences and {doc_count} document "
                              f"indices need {expected}; the file is truncated or damaged{_REBUILD}")
        self.dtype = CODE_DTYPES[code]
        index = np.memmap(index_file, mode="r", dtype=np.uint8)
        self.sequence_lengths = np.frombuffer(index, dtype=np.int32, count=count, offset=HEADER.size)
        self.sequence_pointers = np.frombuffer(index, dtype=np.int64, count=count, offset=HEADER.size + 4 * count)
        self.document_indices = np.frombuffer(index, dtype=np.int64, count=doc_count, offset=HEADER.size + 12 * count)
        if doc_count < 1 or self.document_indices[0] != 0 or self.document_indices[-1] != count:
            raise XLMRDSError(f"{index_file}: document indices must run from 0 to {count}; the index is "
                              f"damaged{_REBUILD}")
        data_size = data_file.stat().st_size
        needed = int(self.sequence_pointers[-1]) + int(self.sequence_lengths[-1]) * self.dtype.itemsize if count else 0
        if data_size != needed:
            raise XLMRDSError(f"{data_file}: {data_size} bytes, but its index describes {needed}; "
                              f"the .bin is truncated or belongs to another index{_REBUILD}")
        self._data = np.memmap(data_file, mode="r", dtype=self.dtype) if data_size else np.empty(0, self.dtype)

    def __len__(self) -> int:
        return len(self.sequence_lengths)

    @property
    def num_tokens(self) -> int:
        """Tokens in the .bin: read from its size, which opening checked against the index's last sequence, so
        that a job's start does not read every sequence length (4 bytes per line: 39 GB at CC-100's size)."""
        return len(self._data)

    @property
    def num_documents(self) -> int:
        return len(self.document_indices) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.sequence_pointers[i]) // self.dtype.itemsize
        return self._data[start:start + int(self.sequence_lengths[i])]

    def tokens(self, start: int, count: int) -> np.ndarray:
        """`count` ids of the flat token stream starting at token `start` (sequences back to back)."""
        return self._data[start:start + count]
