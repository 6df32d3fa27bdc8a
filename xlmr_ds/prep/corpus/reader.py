"""Reading one segment of a shard, whatever its format, as text in CC-100 form.

Every format comes out the same way: blocks of whole lines (each ending in a newline), documents separated
by blank lines, a blank line at the end of every shard. A JSON-lines record or a parquet row is one document:
its text's non-blank lines, then a blank line. So the binarizer and the tokenizer's sampler read one form.

Blocks come with the bytes of the file on disk consumed since the previous block, for progress bars.
A damaged shard (a truncated or corrupt compressed stream, a line that is not JSON, a parquet file without
the text column) is an XLMRDSError naming the shard and the record.
"""

from __future__ import annotations

import gzip
import json
import lzma
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import zstandard

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.prep.corpus.shards import (
    LanguageSource,
    ReplacementCounter,
    Segment,
    Shard,
    end_of_last_line,
    iter_line_blocks,
    split_block_lines,
    split_lines,
    split_work,
)

DEFAULT_TEXT_FIELD = "text"
_CHUNK = 1 << 20
_PARQUET_BATCH_ROWS = 1024
_BYTE_ORDER_MARK = "\ufeff".encode()
_DAMAGED = (EOFError, lzma.LZMAError, gzip.BadGzipFile, zlib.error, zstandard.ZstdError, OSError)


def _zstd_chunks(raw: BinaryIO) -> Iterator[bytes]:
    """The decompressed bytes of every zstd frame in the file. zstandard's stream reader ends silently at a
    truncated frame, so frames are decoded one by one and a file that ends inside a frame is an error."""
    decompressor = zstandard.ZstdDecompressor()
    frame, data = decompressor.decompressobj(), raw.read(_CHUNK)
    while data:
        if output := frame.decompress(data):
            yield output
        if frame.eof:  # the next frame starts in the unused bytes, or the file ends here
            data = frame.unused_data or raw.read(_CHUNK)
            frame = decompressor.decompressobj()
            if not data:
                return
        else:
            data = raw.read(_CHUNK)
    raise EOFError("compressed file ended before the end-of-frame marker was reached")


def _decompressed_chunks(raw: BinaryIO, shard: Shard) -> Iterator[bytes]:
    if shard.compression == "zst":
        yield from _zstd_chunks(raw)
        return
    if not shard.compression:
        while chunk := raw.read(_CHUNK):
            yield chunk
        return
    stream = {"xz": lzma.open, "gz": gzip.open}[shard.compression](raw)
    buffer = bytearray()
    try:
        while chunk := stream.read1(_CHUNK):
            buffer += chunk
            if len(buffer) >= _CHUNK:
                yield bytes(buffer)
                buffer.clear()
    except _DAMAGED:
        yield bytes(buffer)  # what decoded before the damage, so that the error can say after which line
        raise
    yield bytes(buffer)


def _line_chunks(segment: Segment) -> Iterator[tuple[bytes, int]]:
    """(bytes of whole lines, disk bytes consumed) for the segment; the last chunk may lack its newline. A UTF-8
    byte-order mark at the start of a shard (editors on Windows write one) is dropped: it is not text."""
    chunks = _file_line_chunks(segment)
    if segment.start == 0:
        for block, consumed in chunks:
            yield block.removeprefix(_BYTE_ORDER_MARK), consumed
            break
    yield from chunks


def _file_line_chunks(segment: Segment) -> Iterator[tuple[bytes, int]]:
    shard = segment.shard
    if shard.splittable:
        for block in iter_line_blocks(shard.path, segment.start, segment.end, _CHUNK):
            yield block, len(block)
        return
    with open(shard.path, "rb") as raw:
        carry, consumed = b"", 0
        for chunk in _decompressed_chunks(raw, shard):
            data = carry + chunk
            cut = end_of_last_line(data)
            carry = data[cut:]
            position = raw.tell()
            if cut:
                yield data[:cut], position - consumed
                consumed = position
        if carry or consumed < shard.size:
            yield carry, shard.size - consumed


def _damaged(shard: Shard, where: str, error: Exception) -> XLMRDSError:
    what = f"{shard.compression} stream" if shard.compression else "file"
    return XLMRDSError(f"{shard.path}: {where}: the {what} is truncated or corrupt ({error}); download or copy "
                       f"the shard again")


def _text_blocks(segment: Segment, decoder: ReplacementCounter) -> Iterator[tuple[str, int]]:
    lines = 0
    try:
        for chunk, consumed in _line_chunks(segment):
            lines += chunk.count(b"\n")
            yield decoder.decode(chunk), consumed
    except _DAMAGED as error:
        raise _damaged(segment.shard, f"after line {lines:,}", error) from None


def _document_lines(text: str) -> list[str]:
    """A record's text as CC-100 lines: its non-blank lines, without their line ends (corpus.split_lines)."""
    return [line for line in split_lines(text) if line and not line.isspace()]


def _document_text(text: str) -> str:
    """A record's text as CC-100 lines: its non-blank lines, then the blank line that ends the document."""
    lines = _document_lines(text)
    return "\n".join(lines) + "\n\n" if lines else ""


def _parse_record(shard: Shard, line_number: int, line: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise XLMRDSError(f"{shard.path}:{line_number}: not a JSON object ({error.msg} at column "
                          f"{error.colno}); every line of a JSON-lines shard must be one object") from None
    if not isinstance(record, dict):
        raise XLMRDSError(f"{shard.path}:{line_number}: expected a JSON object, got {type(record).__name__}")
    return record


def _record_text(shard: Shard, line_number: int, record: dict, text_field: str) -> str:
    if text_field not in record:
        fields = ", ".join(sorted(record)) or "none"
        raise XLMRDSError(f"{shard.path}:{line_number}: no field {text_field!r} (the record has: {fields}); "
                          f"name the text field with --text-field")
    text = record[text_field]
    if text is None:
        return ""
    if not isinstance(text, str):
        raise XLMRDSError(f"{shard.path}:{line_number}: field {text_field!r} is {type(text).__name__}, "
                          f"expected a string")
    return text


def _json_record_chunks(segment: Segment, decoder: ReplacementCounter) -> Iterator[tuple[list, int]]:
    """([(line number, record), ...], disk bytes consumed) per chunk of a JSON-lines shard."""
    line_number = 0
    try:
        for chunk, consumed in _line_chunks(segment):
            records = []
            for line in split_lines(decoder.decode(chunk)):
                line_number += 1
                if line and not line.isspace():
                    records.append((line_number, _parse_record(segment.shard, line_number, line)))
            line_number -= 1  # the piece after the chunk's last newline is not a line
            yield records, consumed
    except _DAMAGED as error:
        raise _damaged(segment.shard, f"after line {line_number:,}", error) from None


def _jsonl_blocks(segment: Segment, decoder: ReplacementCounter, text_field: str) -> Iterator[tuple[str, int]]:
    for records, consumed in _json_record_chunks(segment, decoder):
        yield "".join(_document_text(_record_text(segment.shard, n, record, text_field))
                      for n, record in records), consumed


def _open_parquet(shard: Shard, columns: list[str]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(shard.path)
    except (pa.ArrowException, OSError) as error:
        raise XLMRDSError(f"{shard.path}: not a readable parquet file ({error}); download or copy the shard "
                          f"again") from None
    names = parquet.schema_arrow.names
    for column in columns:
        if column not in names:
            raise XLMRDSError(f"{shard.path}: no column {column!r} (the file has: {', '.join(names)}); name the "
                              f"text column with --text-field")
    column_type = parquet.schema_arrow.field(columns[0]).type
    if not (pa.types.is_string(column_type) or pa.types.is_large_string(column_type)):
        raise XLMRDSError(f"{shard.path}: column {columns[0]!r} is {column_type}, expected strings")
    return parquet


def _parquet_rows(segment: Segment, columns: list[str]) -> Iterator[tuple[list[list], int]]:
    """(one list of values per column, disk bytes consumed) per batch of rows."""
    import pyarrow as pa

    shard = segment.shard
    parquet = _open_parquet(shard, columns)
    rows, total_rows, reported = 0, max(parquet.metadata.num_rows, 1), 0
    try:
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=columns):
            values = [batch.column(i).to_pylist() for i in range(len(columns))]
            rows += batch.num_rows
            progress = shard.size * rows // total_rows
            yield values, progress - reported
            reported = progress
    except (pa.ArrowException, OSError) as error:
        raise _damaged(shard, f"after row {rows:,}", error) from None
    yield [[] for _ in columns], shard.size - reported


def _parquet_blocks(segment: Segment, text_field: str) -> Iterator[tuple[str, int]]:
    for (texts,), consumed in _parquet_rows(segment, [text_field]):
        yield "".join(_document_text(text) for text in texts if text), consumed


def iter_segment_text(segment: Segment, decoder: ReplacementCounter,
                      text_field: str = DEFAULT_TEXT_FIELD) -> Iterator[tuple[str, int]]:
    """(text, disk bytes consumed) blocks of whole lines in CC-100 form for one segment; a segment that reaches
    its shard's end ends with a blank line (a shard's end ends its last document)."""
    record_format = segment.shard.record_format
    if record_format == "text":
        yield from _text_blocks(segment, decoder)
    elif record_format == "jsonl":
        yield from _jsonl_blocks(segment, decoder, text_field)
    else:
        yield from _parquet_blocks(segment, text_field)
    if segment.reaches_shard_end:
        yield "\n", 0


@dataclass(frozen=True)
class Document:
    """One document of a raw shard: its non-blank lines, and its known language if the shard names one."""

    lines: list[str]
    label: str | None = None


def _text_documents(segment: Segment, decoder: ReplacementCounter) -> Iterator[tuple[list[Document], int]]:
    current: list[str] = []
    for text, consumed in _text_blocks(segment, decoder):
        documents = []
        for line in split_block_lines(text):
            if line and not line.isspace():
                current.append(line)
            elif current:
                documents.append(Document(current))
                current = []
        yield documents, consumed
    if current:  # the end of a shard ends its last document
        yield [Document(current)], 0


def _label(value) -> str | None:
    return None if value is None else str(value)


def _jsonl_documents(segment: Segment, decoder: ReplacementCounter, text_field: str,
                     label_field: str | None) -> Iterator[tuple[list[Document], int]]:
    for records, consumed in _json_record_chunks(segment, decoder):
        documents = []
        for n, record in records:
            lines = _document_lines(_record_text(segment.shard, n, record, text_field))
            if lines:
                documents.append(Document(lines, _label(record.get(label_field)) if label_field else None))
        yield documents, consumed


def _parquet_documents(segment: Segment, text_field: str,
                       label_field: str | None) -> Iterator[tuple[list[Document], int]]:
    columns = [text_field] + ([label_field] if label_field else [])
    for values, consumed in _parquet_rows(segment, columns):
        labels = values[1] if label_field else [None] * len(values[0])
        yield [Document(lines, _label(label)) for text, label in zip(values[0], labels)
               if text and (lines := _document_lines(text))], consumed


_WARC_BATCH = 256


def _warc_documents(segment: Segment, label_field: str | None) -> Iterator[tuple[list[Document], int]]:
    """The text of a WET file's conversion records (CommonCrawl's extracted plain text), one document each.
    `label_field` names a record header, e.g. WARC-Identified-Content-Language."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    shard = segment.shard
    records = conversions = reported = 0
    documents: list[Document] = []
    with open(shard.path, "rb") as raw:
        try:
            for record in ArchiveIterator(raw):
                records += 1
                if record.rec_type != "conversion":
                    continue
                conversions += 1
                text = record.content_stream().read().decode("utf-8", errors="replace")
                if lines := _document_lines(text):
                    label = record.rec_headers.get_header(label_field) if label_field else None
                    documents.append(Document(lines, label))
                if len(documents) >= _WARC_BATCH:
                    position = min(raw.tell(), shard.size)
                    yield documents, position - reported
                    documents, reported = [], position
        except (ArchiveLoadFailed, *_DAMAGED) as error:
            raise _damaged(shard, f"after record {records:,}", error) from None
    if records and not conversions:
        raise XLMRDSError(f"{shard.path}: none of its {records:,} WARC records is a WET conversion record; corpus "
                          f"build reads the extracted text of WET files (CommonCrawl's *.warc.wet.gz), not WARC "
                          f"responses")
    yield documents, shard.size - reported


def iter_segment_documents(segment: Segment, decoder: ReplacementCounter, text_field: str = DEFAULT_TEXT_FIELD,
                           label_field: str | None = None) -> Iterator[tuple[list[Document], int]]:
    """(documents, disk bytes consumed) per chunk of a whole shard, for `corpus build`. `label_field` names the
    JSON field, parquet column or WARC header holding a known language (None: not read)."""
    record_format = segment.shard.record_format
    if record_format == "text":
        yield from _text_documents(segment, decoder)
    elif record_format == "jsonl":
        yield from _jsonl_documents(segment, decoder, text_field, label_field)
    elif record_format == "parquet":
        yield from _parquet_documents(segment, text_field, label_field)
    else:
        yield from _warc_documents(segment, label_field)


def iter_language_lines(source: LanguageSource, decoder: ReplacementCounter,
                        text_field: str = DEFAULT_TEXT_FIELD) -> Iterator[str]:
    """Every line of a language (blank lines end documents), shard after shard."""
    for segment in split_work(source, 1)[0]:
        for text, _ in iter_segment_text(segment, decoder, text_field):
            yield from split_block_lines(text)
