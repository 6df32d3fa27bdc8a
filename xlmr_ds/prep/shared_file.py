"""One file written by several ranks at once: each copies its part in at its offset (from an exclusive scan of
the parts' sizes), so the result is the parts concatenated in rank order, whatever the number of ranks."""

from __future__ import annotations

import os
from pathlib import Path

_COPY_BYTES = 16 << 20


def write_part(part: Path, shared: Path, offset: int) -> None:
    """Copy `part` into the existing `shared` file at byte `offset` (pwrite: the other ranks write beside it)."""
    descriptor = os.open(shared, os.O_WRONLY)
    try:
        with open(part, "rb") as source:
            position = offset
            while chunk := source.read(_COPY_BYTES):
                os.pwrite(descriptor, chunk, position)
                position += len(chunk)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
