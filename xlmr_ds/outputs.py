"""Where commands write: every output path is checked before any work starts, and files are written whole.

A path that cannot be written (it is a file where a directory is wanted, it lies under a file, it is a
directory where a file is wanted) would otherwise surface as a traceback from pathlib or DeepSpeed, after the
work: one check here, called by every command that writes, turns it into one line that names the flag.
"""

from __future__ import annotations

import os
from pathlib import Path

from xlmr_ds.errors import XLMRDSError


def _file_above(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` that is not a directory (it cannot hold anything), or None."""
    for ancestor in path.absolute().parents:
        if ancestor.exists():
            return None if ancestor.is_dir() else ancestor
    return None


def _refuse(path: Path, flag: str | None, problem: str) -> XLMRDSError:
    named = f"{flag} {path}" if flag else str(path)
    return XLMRDSError(f"{named}: {problem}; choose another {flag or 'path'}")


def _check_ancestors(path: Path, flag: str | None) -> None:
    blocking = _file_above(path)
    if blocking is not None:
        raise _refuse(path, flag, f"{blocking} is a file, so nothing can be written under it")
    existing = next((a for a in path.absolute().parents if a.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise _refuse(path, flag, f"{existing} is not writable")


def check_output_directory(path: str | Path, flag: str | None = None) -> Path:
    """`path` for a directory a command writes (new, or one it may reuse): not a file, not under one. `flag`
    names the option in the error (argparse names it itself)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise _refuse(path, flag, "exists and is not a directory")
    _check_ancestors(path, flag)
    return path


def check_output_file(path: str | Path, flag: str | None = None) -> Path:
    """`path` for a file a command writes: not a directory, not under a file."""
    path = Path(path)
    if path.is_dir():
        raise _refuse(path, flag, "is a directory, not a file name")
    _check_ancestors(path, flag)
    return path


def check_output_prefix(prefix: str | Path, suffixes: tuple[str, ...], flag: str | None = None) -> Path:
    """`prefix` for the files PREFIX<suffix> (a SentencePiece model's .model and .vocab): each a writable file."""
    for suffix in suffixes:
        check_output_file(f"{prefix}{suffix}", flag)
    return Path(prefix)


def write_text_atomically(path: str | Path, text: str, newline: str | None = None) -> None:
    """`text` in `path`, written under a temporary name beside it and renamed: a reader (or a crash) sees the old
    file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8", newline=newline) as out:
        out.write(text)
    os.replace(temporary, path)
