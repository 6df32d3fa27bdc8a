"""Every line-end convention reads as the same lines and documents, in every shard format and however the
shard is cut into reads: LF, CRLF, a lone CR (old Mac text) and files that mix them. Unicode separators
(U+2028, U+2029, U+0085) are part of a line, as `wc -l` counts lines. A byte-order mark that starts a shard
is not text."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import zstandard

from xlmr_ds.prep.corpus import reader as shard_reader
from xlmr_ds.prep.corpus.reader import iter_language_lines
from xlmr_ds.prep.corpus.shards import ReplacementCounter, discover_corpus, end_of_last_line

DOCUMENTS = [["first document, line one.", "line two\u2028with a line separator."],
             ["second document.", "next\x85line and\u2029paragraph separators inside one line."],
             ["third."]]

LINE_ENDS = {
    "lf": lambda lines: "\n".join(lines) + "\n",
    "crlf": lambda lines: "\r\n".join(lines) + "\r\n",
    "cr": lambda lines: "\r".join(lines) + "\r",
    # every line's end chosen in turn from the three conventions
    "mixed": lambda lines: "".join(line + ("\n", "\r\n", "\r")[i % 3] for i, line in enumerate(lines)),
}


def _text_lines(documents: list[list[str]]) -> list[str]:
    return [line for document in documents for line in [*document, ""]]


def _write(directory, shard_format: str, line_end: str, byte_order_mark: bool = False) -> None:
    end = LINE_ENDS[line_end]
    if shard_format in ("jsonl", "jsonl.zst"):  # the convention inside each record's text; records one per LF line
        content = "".join(json.dumps({"text": end(document)}) + "\n" for document in DOCUMENTS).encode()
    elif shard_format == "jsonl-records":  # the convention between the records themselves
        content = end([json.dumps({"text": "\n".join(document)}) for document in DOCUMENTS]).encode()
    else:
        content = end(_text_lines(DOCUMENTS)).encode()
    content = "\ufeff".encode() + content if byte_order_mark else content
    name = {"txt": "en.txt", "txt.gz": "en.txt.gz", "jsonl": "en.jsonl", "jsonl-records": "en.jsonl",
            "jsonl.zst": "en.jsonl.zst"}[shard_format]
    compress = {".gz": gzip.compress, ".zst": zstandard.ZstdCompressor().compress}.get(Path(name).suffix)
    (directory / name).write_bytes(compress(content) if compress else content)


def _documents(lines: list[str]) -> list[list[str]]:
    documents, current = [], []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line)
        elif current:
            documents.append(current)
            current = []
    return documents


CASES = [(shard_format, line_end) for shard_format in ("txt", "txt.gz", "jsonl", "jsonl-records")
         for line_end in LINE_ENDS]


@pytest.mark.parametrize("read_bytes", [1 << 20, 3, 7], ids=["whole", "reads-of-3-bytes", "reads-of-7-bytes"])
@pytest.mark.parametrize("shard_format,line_end", CASES, ids=[f"{f}-{e}" for f, e in CASES])
def test_every_line_end_reads_as_the_same_documents(tmp_path, monkeypatch, shard_format, line_end, read_bytes):
    monkeypatch.setattr(shard_reader, "_CHUNK", read_bytes)
    _write(tmp_path, shard_format, line_end)
    (source,) = discover_corpus(tmp_path)
    assert _documents(list(iter_language_lines(source, ReplacementCounter()))) == DOCUMENTS


@pytest.mark.parametrize("shard_format", ["txt", "txt.gz", "jsonl", "jsonl.zst"])
def test_a_byte_order_mark_that_starts_a_shard_is_not_text(tmp_path, shard_format):
    _write(tmp_path, shard_format, "crlf", byte_order_mark=True)
    (source,) = discover_corpus(tmp_path)
    assert _documents(list(iter_language_lines(source, ReplacementCounter()))) == DOCUMENTS


# (bytes read so far, where the complete lines in them end)
LAST_LINE_ENDS = [
    (b"", 0), (b"no line end", 0), (b"a\nb", 2), (b"a\r\nb", 3), (b"a\rb", 2), (b"a\nb\r", 2), (b"a\r", 0),
    (b"a\r\n", 3), (b"a\n\r\n", 4), (b"a\r\r", 2),
]


@pytest.mark.parametrize("data,end", LAST_LINE_ENDS, ids=[repr(d) for d, _ in LAST_LINE_ENDS])
def test_a_read_is_cut_after_its_last_complete_line_end(data, end):
    # A trailing CR is not complete: the LF of a CRLF may come with the next read.
    assert end_of_last_line(data) == end
