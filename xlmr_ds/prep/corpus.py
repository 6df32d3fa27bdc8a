"""Reading a raw corpus: one UTF-8 file per language, streamed, never loaded whole.

A corpus is a directory of `<lang>.txt` files in CC-100 style: one sentence or paragraph per line,
documents separated by blank (empty or whitespace-only) lines. Invalid UTF-8 is replaced by U+FFFD and
counted, never a crash. Files can be split into byte ranges that start at line starts, so that several
processes read one file without overlap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from xlmr_ds.errors import XLMRDSError

LANGUAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class LanguageFile:
    language: str
    path: Path

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def discover_corpus(directory: str | Path) -> list[LanguageFile]:
    """The corpus's language files in name order; errors name the directory and what was expected."""
    directory = Path(directory)
    if not directory.is_dir():
        raise XLMRDSError(f"{directory}: corpus directory not found (expected a directory of <lang>.txt files)")
    files = sorted(p for p in directory.glob("*.txt") if p.is_file())
    if not files:
        raise XLMRDSError(f"{directory}: no <lang>.txt files found (one UTF-8 text file per language)")
    languages = []
    for path in files:
        if not LANGUAGE_NAME.match(path.stem):
            raise XLMRDSError(f"{path}: language name {path.stem!r} must be letters, digits, '-' or '_'")
        languages.append(LanguageFile(path.stem, path))
    empty = [f.path for f in languages if f.size == 0]
    if len(empty) == len(languages):
        raise XLMRDSError(f"{directory}: every <lang>.txt file is empty")
    return languages


class ReplacementCounter:
    """A UTF-8 decoder that replaces invalid bytes with U+FFFD and counts the replacements."""

    _ENCODED_REPLACEMENT = "\ufffd".encode()

    def __init__(self) -> None:
        self.replaced = 0

    def decode(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            # U+FFFD characters that were in the input already are not replacements.
            self.replaced += text.count("\ufffd") - raw.count(self._ENCODED_REPLACEMENT)
            return text


def is_blank(line: str) -> bool:
    """Empty or whitespace-only: a document boundary."""
    return not line or line.isspace()


def line_start_at_or_after(handle: BinaryIO, offset: int, size: int) -> int:
    """The first line start >= offset: offset itself if a line starts there, else just after the next newline."""
    if offset <= 0:
        return 0
    if offset >= size:
        return size
    handle.seek(offset - 1)
    position = offset - 1
    while True:
        chunk = handle.read(_READ_CHUNK)
        if not chunk:
            return size
        newline = chunk.find(b"\n")
        if newline >= 0:
            return position + newline + 1
        position += len(chunk)


def split_line_aligned(path: Path, parts: int) -> list[tuple[int, int]]:
    """`parts` byte ranges [start, end) covering the file, each starting at a line start (some may be empty)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        starts = [line_start_at_or_after(handle, size * i // parts, size) for i in range(parts)]
    starts = [max(s, starts[i - 1]) if i else s for i, s in enumerate(starts)]
    return list(zip(starts, starts[1:] + [size]))


def iter_raw_lines(path: Path, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """The lines (without their newline) that start in [start, end); start must be a line start."""
    with open(path, "rb") as handle:
        if end is None:
            end = handle.seek(0, 2)
        handle.seek(start)
        position = start
        while position < end:
            raw = handle.readline()
            if not raw:
                return
            position += len(raw)
            yield raw.rstrip(b"\n").rstrip(b"\r")


def iter_line_blocks(path: Path, start: int = 0, end: int | None = None,
                     block_bytes: int = _READ_CHUNK) -> Iterator[bytes]:
    """The bytes of the lines that start in [start, end), in blocks of whole lines of about block_bytes.

    Reading and decoding a block at a time instead of a line at a time is what keeps the binarizer close
    to SentencePiece's own speed. A newline never occurs inside a multi-byte UTF-8 character, so a block
    decodes exactly as its lines would one by one.
    """
    with open(path, "rb") as handle:
        if end is None:
            end = handle.seek(0, 2)
        handle.seek(start)
        remaining = end - start
        carry = b""
        while remaining > 0:
            chunk = handle.read(min(block_bytes, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            yield data[:cut]
            carry = data[cut:]
        if carry:  # ranges end at a line start, so only the file's last line can lack a newline
            yield carry


def split_block_lines(text: str) -> list[str]:
    """A decoded block -> its lines without newlines (and without a CR before the newline)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if "\r" in text:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    return lines
