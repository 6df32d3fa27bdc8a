"""Where commands write: every output path is checked before any work starts, and files are written whole.

A path that cannot be written (it is a file where a directory is wanted, it lies under a file, it is a
directory where a file is wanted) would otherwise surface as a traceback from pathlib or DeepSpeed, after the
work: one check here, called by every command that writes, turns it into one line that names the flag.

Every file and directory xlmr-ds writes whole goes through the helpers at the end (replaced_file, the
write_*_atomically functions, replaced_directory), which share one temporary-name convention (.NAME.tmp,
.NAME.<random>.tmp) that listings skip.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


# ---- files and directories that appear whole ---------------------------------------------------------------
# Everything is written under a temporary name beside its place and renamed at the end (a rename within one
# directory is atomic): a reader, or the next run after a crash, sees the old file or the whole new one. Every
# temporary name is hidden (a leading dot) and ends in TEMPORARY_SUFFIX, so listings skip it (see listed()).

TEMPORARY_SUFFIX = ".tmp"


def temporary_path(path: str | Path) -> Path:
    """The one name `path` is written under before it is renamed into place: .NAME.tmp beside it. Processes
    that write one file together (binarize's shared .bin) all find it by this name."""
    path = Path(path)
    return path.with_name(f".{path.name}{TEMPORARY_SUFFIX}")


def is_temporary(path: str | Path) -> bool:
    """Whether `path` is a file or directory still being written (temporary_path or staging_directory named it)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TEMPORARY_SUFFIX)


def listed(directory: str | Path) -> list[Path]:
    """The entries of `directory` in name order, without the temporaries of writes under way or killed."""
    return sorted(entry for entry in Path(directory).iterdir() if not is_temporary(entry))


@contextmanager
def replaced_file(path: str | Path) -> Iterator[Path]:
    """Yield the temporary name of `path` for a writer that streams or opens the file itself (numpy, matplotlib,
    shutil); when the block ends the file is renamed onto `path`. On an error the temporary is removed and
    `path` is left as it was. The directory of `path` is made if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: str | Path, data: bytes) -> None:
    """`data` in `path`, which appears whole (see replaced_file)."""
    with replaced_file(path) as temporary:
        temporary.write_bytes(data)


def write_text_atomically(path: str | Path, text: str, newline: str | None = None) -> None:
    """`text` in `path` as UTF-8, which appears whole (see replaced_file); `newline` as open() takes it."""
    with replaced_file(path) as temporary, open(temporary, "w", encoding="utf-8", newline=newline) as out:
        out.write(text)


def write_json_atomically(path: str | Path, value: object, indent: int = 1) -> None:
    """`value` as indented JSON and a final newline in `path`, which appears whole (see replaced_file)."""
    write_text_atomically(path, json.dumps(value, indent=indent) + "\n")


def staging_directory(out_dir: str | Path) -> Path:
    """A new empty directory beside `out_dir` to build it in: .NAME.<random>.tmp, unique per call, so that
    concurrent builds of the same directory do not share one."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=TEMPORARY_SUFFIX, dir=out_dir.parent))


@contextmanager
def replaced_directory(out_dir: str | Path, own_entry: Callable[[Path], bool] | None = None,
                       command: str = "this command") -> Iterator[Path]:
    """Yield a staging directory beside out_dir; on success it replaces out_dir (an old one is removed), on an
    error it is removed and out_dir is left as it was. With `own_entry` (whether an entry is one the command
    writes), an out_dir holding anything else is refused first: a mistyped --out (`.`, a home directory) must not
    be removed whole."""
    out_dir = Path(out_dir)
    if own_entry is not None and out_dir.is_dir():
        foreign = [entry.name for entry in listed(out_dir) if not own_entry(entry)]
        if foreign:
            raise XLMRDSError(f"{out_dir}: holds files that `{command}` does not write ({', '.join(foreign[:3])}"
                              f"{', ...' if len(foreign) > 3 else ''}); it replaces its --out whole, so give it a "
                              f"new or empty directory")
    staging = staging_directory(out_dir)
    try:
        yield staging
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
