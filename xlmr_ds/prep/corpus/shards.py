"""A raw corpus as it is shipped: per language one file or a folder of shards, streamed, never loaded whole.

A corpus directory holds, per language, either one file `<lang>.<format>` or a folder `<lang>/` of shard
files, read in name order. Formats (the suffix says which):

- text: `.txt`, `.txt.xz`, `.txt.gz`, `.txt.zst`, CC-100 style: one sentence or paragraph per line, documents
  separated by blank (empty or whitespace-only) lines;
- JSON lines: `.jsonl`, `.jsonl.xz`, `.jsonl.gz`, `.jsonl.zst` (and, in shard folders, mC4's `.json.gz` /
  `.json.zst`): one JSON object per line, one document per object, its text in a string field (`text` unless
  `--text-field` names another) split on newlines;
- parquet: `.parquet`, one document per row of a string column (the same `--text-field`), as FineWeb-2 ships.

A line ends at LF, CRLF or a lone CR (old Mac text, or files that mix conventions), in text shards and in the
text of records alike; U+2028, U+0085 and other Unicode separators are part of a line, as `wc -l` counts. A
UTF-8 byte-order mark at the start of a text or JSON-lines shard is dropped.
Invalid UTF-8 is replaced by U+FFFD and counted, never a crash. The end of a shard ends a document. Work is
shared between processes by byte ranges starting at line starts inside plain `.txt` shards and by whole
shards for compressed and columnar ones (they cannot be entered in the middle); see `split_work`.
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

# suffix -> (record format, compression); longest suffixes first so that ".txt.xz" is not read as ".xz".
_FILE_FORMATS = {
    ".txt.xz": ("text", "xz"), ".txt.gz": ("text", "gz"), ".txt.zst": ("text", "zst"), ".txt": ("text", None),
    ".jsonl.xz": ("jsonl", "xz"), ".jsonl.gz": ("jsonl", "gz"), ".jsonl.zst": ("jsonl", "zst"),
    ".jsonl": ("jsonl", None), ".parquet": ("parquet", None),
}
# In shard folders only: mC4 names its JSON-lines shards c4-<lang>.tfrecord-00000-of-01024.json.gz.
_SHARD_ONLY_FORMATS = {".json.gz": ("jsonl", "gz"), ".json.zst": ("jsonl", "zst")}
SUPPORTED_SUFFIXES = ", ".join(list(_FILE_FORMATS) + list(_SHARD_ONLY_FORMATS))
# Raw inputs of `corpus build` may also be WET files (warcio reads their gzip members itself).
RAW_FORMATS = {".warc.wet.gz": ("warc", None), ".wet.gz": ("warc", None), ".warc.gz": ("warc", None),
               ".warc.wet": ("warc", None), ".wet": ("warc", None), ".warc": ("warc", None),
               **_FILE_FORMATS, **_SHARD_ONLY_FORMATS}
RAW_SUFFIXES = ", ".join(RAW_FORMATS)


@dataclass(frozen=True)
class Shard:
    """One file of a language: its records are `record_format` ("text", "jsonl" or "parquet"), stored
    uncompressed (`compression` None) or as one "xz", "gz" or "zst" stream."""

    path: Path
    record_format: str
    """"text", "jsonl", "parquet" or (raw inputs of corpus build only) "warc"."""
    compression: str | None
    size: int
    """Bytes on disk: what work is balanced by and progress counts."""

    @property
    def splittable(self) -> bool:
        """Whether a process may start reading in the middle (at a line start): plain text only."""
        return self.record_format == "text" and self.compression is None


@dataclass(frozen=True)
class LanguageSource:
    """A language's text: one shard (a `<lang>.<format>` file) or the shards of a `<lang>/` folder."""

    language: str
    shards: tuple[Shard, ...]

    @property
    def size(self) -> int:
        """Bytes on disk over all shards (compressed shards count compressed)."""
        return sum(shard.size for shard in self.shards)


@dataclass(frozen=True)
class Segment:
    """The part of one shard a process reads: bytes [start, end) of a plain text shard, starting at a line
    start, or a whole shard (start 0, end its size)."""

    shard: Shard
    start: int
    end: int

    @property
    def reaches_shard_end(self) -> bool:
        return self.end == self.shard.size


def _shard_format(name: str, formats: dict) -> tuple[str, str, str | None] | None:
    """(stem, record format, compression) of a file name, or None if no format's suffix matches."""
    for suffix, (record_format, compression) in formats.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], record_format, compression
    return None


def _language_name(name: str, where: Path) -> str:
    if not LANGUAGE_NAME.match(name):
        raise XLMRDSError(f"{where}: language name {name!r} must be letters, digits, '-' or '_'")
    return name


def _folder_shards(folder: Path) -> tuple[Shard, ...]:
    shards = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith((".", "_")):  # hidden files and markers such as Spark's _SUCCESS
            continue
        found = _shard_format(path.name, {**_FILE_FORMATS, **_SHARD_ONLY_FORMATS}) if path.is_file() else None
        if found is None:
            raise XLMRDSError(f"{path}: not a shard this reader knows (a shard folder holds files ending in "
                              f"{SUPPORTED_SUFFIXES})")
        shards.append(Shard(path, found[1], found[2], path.stat().st_size))
    if not shards:
        raise XLMRDSError(f"{folder}: shard folder is empty (expected files ending in {SUPPORTED_SUFFIXES})")
    return tuple(shards)


def discover_corpus(directory: str | Path) -> list[LanguageSource]:
    """The corpus's languages in name order; errors name the file or directory and what was expected.

    Other files at the top (a README, a build's stats.json) are not languages and are left alone."""
    directory = Path(directory)
    if not directory.is_dir():
        raise XLMRDSError(f"{directory}: corpus directory not found (expected a directory of <lang>.txt files "
                          f"or <lang>/ shard folders)")
    if (directory / ".build-tmp").exists():
        raise XLMRDSError(f"{directory}: a corpus build into it did not finish ({directory}/.build-tmp is there); "
                          f"rerun xlmr-ds corpus build")
    sources: dict[str, LanguageSource] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            language = _language_name(path.name, path)
            shards = _folder_shards(path)
        else:
            found = _shard_format(path.name, _FILE_FORMATS)
            if found is None:
                continue
            language = _language_name(found[0], path)
            shards = (Shard(path, found[1], found[2], path.stat().st_size),)
        if language in sources:
            other = sources[language].shards[0].path
            raise XLMRDSError(f"{path}: language {language!r} is also given by {other}; keep one of them")
        sources[language] = LanguageSource(language, shards)
    if not sources:
        raise XLMRDSError(f"{directory}: no <lang>.txt files or <lang>/ shard folders found (one per language; "
                          f"formats: {SUPPORTED_SUFFIXES})")
    if all(source.size == 0 for source in sources.values()):
        raise XLMRDSError(f"{directory}: every language's files are empty")
    return [sources[language] for language in sorted(sources)]


def discover_raw_shards(inputs: list[str | Path]) -> list[Shard]:
    """`corpus build`'s inputs as shards in input order: files as given, directories expanded to the shard files
    under them (recursively, in path order; hidden files and `_` markers skipped)."""
    shards: list[Shard] = []
    for given in map(Path, inputs):
        if given.is_dir():
            paths = sorted(p for p in given.rglob("*") if p.is_file()
                           and not any(part.startswith((".", "_")) for part in p.relative_to(given).parts))
        elif given.is_file():
            paths = [given]
        else:
            raise XLMRDSError(f"--input {given}: no such file or directory")
        for path in paths:
            found = _shard_format(path.name, RAW_FORMATS)
            if found is None:
                raise XLMRDSError(f"{path}: not a raw shard this reader knows (files ending in {RAW_SUFFIXES})")
            shards.append(Shard(path, found[1], found[2], path.stat().st_size))
    if not shards:
        raise XLMRDSError(f"--input {' '.join(map(str, inputs))}: no shard files found (files ending in "
                          f"{RAW_SUFFIXES})")
    return shards


def split_work(source: LanguageSource, parts: int, whole_shards: bool = False) -> list[list[Segment]]:
    """`parts` lists of segments, one per process, that together read the language once, in order.

    The shards are laid end to end; cut i is placed near byte size * i / parts, moved to the next line start
    inside a plain text shard (unless `whole_shards`: a document must not be cut) and to the nearer end of
    any other shard. Process p reads the bytes between cuts p and p + 1, so the processes' outputs
    concatenated in rank order are the language's output.
    """
    bounds, position = [], 0
    for shard in source.shards:
        bounds.append((position, position + shard.size, shard))
        position += shard.size
    total = position
    cuts = [0]
    for i in range(1, parts):
        target = total * i // parts
        cut = total
        for start, end, shard in bounds:
            if start <= target < end:
                if shard.splittable and not whole_shards:
                    with open(shard.path, "rb") as handle:
                        cut = start + line_start_at_or_after(handle, target - start, shard.size)
                else:
                    cut = start if target - start < end - target else end
                break
        cuts.append(max(cut, cuts[-1]))
    cuts.append(total)
    work = []
    for low, high in zip(cuts, cuts[1:]):
        work.append([Segment(shard, max(low, start) - start, min(high, end) - start)
                     for start, end, shard in bounds if max(low, start) < min(high, end)])
    return work


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
            cut = end_of_last_line(data)
            if cut == 0:
                carry = data
                continue
            yield data[:cut]
            carry = data[cut:]
        if carry:  # ranges end at a line start, so only the file's last line can lack a newline
            yield carry


_LINE_END = re.compile(r"\r\n?|\n")


def split_lines(text: str) -> list[str]:
    """`text` split at every line end: LF, CRLF, and a lone CR (old Mac files, or a mix of conventions), as
    Python's universal newlines read them. Taking a lone CR for part of a line would merge the lines and the
    documents around it without a word. Only these three end a line: U+2028, U+0085 and the like are text."""
    return _LINE_END.split(text) if "\r" in text else text.split("\n")


def end_of_last_line(data: bytes) -> int:
    """The offset just after the last complete line end in `data` (0: none). A CR as the last byte is not
    complete: the LF of a CRLF may follow in the next read."""
    return max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1


def split_block_lines(text: str) -> list[str]:
    """A decoded block (whole lines; the last may lack its line end) -> its lines without line ends.

    Blocks are cut after a complete line end (end_of_last_line), so a CRLF never straddles two blocks and the
    lines are the same whichever cuts a rank count makes."""
    lines = split_lines(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines
