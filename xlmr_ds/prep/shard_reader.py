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
from typing import BinaryIO

import zstandard

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.prep.corpus import (
    LanguageSource,
    ReplacementCounter,
    Segment,
    Shard,
    iter_line_blocks,
    split_block_lines,
    split_work,
)

DEFAULT_TEXT_FIELD = "text"
_CHUNK = 1 << 20
_PARQUET_BATCH_ROWS = 1024
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
    """(bytes of whole lines, disk bytes consumed) for the segment; the last chunk may lack its newline."""
    shard = segment.shard
    if shard.splittable:
        for block in iter_line_blocks(shard.path, segment.start, segment.end, _CHUNK):
            yield block, len(block)
        return
    with open(shard.path, "rb") as raw:
        carry, consumed = b"", 0
        for chunk in _decompressed_chunks(raw, shard):
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
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


def _document_text(text: str) -> str:
    """A record's text as CC-100 lines: its non-blank lines, then the blank line that ends the document."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    lines = [line for line in lines if line and not line.isspace()]
    return "\n".join(lines) + "\n\n" if lines else ""


def _record_text(shard: Shard, line_number: int, line: str, text_field: str) -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise XLMRDSError(f"{shard.path}:{line_number}: not a JSON object ({error.msg} at column "
                          f"{error.colno}); every line of a JSON-lines shard must be one object") from None
    if not isinstance(record, dict):
        raise XLMRDSError(f"{shard.path}:{line_number}: expected a JSON object, got {type(record).__name__}")
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
    return _document_text(text)


def _jsonl_blocks(segment: Segment, decoder: ReplacementCounter, text_field: str) -> Iterator[tuple[str, int]]:
    line_number = 0
    try:
        for chunk, consumed in _line_chunks(segment):
            documents = []
            for line in decoder.decode(chunk).split("\n"):
                line_number += 1
                if line and not line.isspace():
                    documents.append(_record_text(segment.shard, line_number, line, text_field))
            line_number -= 1  # the piece after the chunk's last newline is not a line
            yield "".join(documents), consumed
    except _DAMAGED as error:
        raise _damaged(segment.shard, f"after line {line_number:,}", error) from None


def _parquet_blocks(segment: Segment, text_field: str) -> Iterator[tuple[str, int]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    shard = segment.shard
    try:
        parquet = pq.ParquetFile(shard.path)
    except (pa.ArrowException, OSError) as error:
        raise XLMRDSError(f"{shard.path}: not a readable parquet file ({error}); download or copy the shard "
                          f"again") from None
    names = parquet.schema_arrow.names
    if text_field not in names:
        raise XLMRDSError(f"{shard.path}: no column {text_field!r} (the file has: {', '.join(names)}); name the "
                          f"text column with --text-field")
    column_type = parquet.schema_arrow.field(text_field).type
    if not (pa.types.is_string(column_type) or pa.types.is_large_string(column_type)):
        raise XLMRDSError(f"{shard.path}: column {text_field!r} is {column_type}, expected strings")
    rows, total_rows, reported = 0, max(parquet.metadata.num_rows, 1), 0
    try:
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=[text_field]):
            texts = batch.column(0).to_pylist()
            rows += len(texts)
            progress = shard.size * rows // total_rows
            yield "".join(_document_text(text) for text in texts if text), progress - reported
            reported = progress
    except (pa.ArrowException, OSError) as error:
        raise _damaged(shard, f"after row {rows:,}", error) from None
    yield "", shard.size - reported


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


def iter_language_lines(source: LanguageSource, decoder: ReplacementCounter,
                        text_field: str = DEFAULT_TEXT_FIELD) -> Iterator[str]:
    """Every line of a language (blank lines end documents), shard after shard."""
    for segment in split_work(source, 1)[0]:
        for text, _ in iter_segment_text(segment, decoder, text_field):
            yield from split_block_lines(text)
