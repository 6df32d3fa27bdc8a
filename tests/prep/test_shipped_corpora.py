"""Corpora as they are shipped (compressed text, JSON lines, parquet, shard folders) read as their plain form.

The reference for every format is the same text written as one CC-100-style <lang>.txt: a record is a
document of its non-blank lines, the end of a shard ends a document. Binarizing the shipped corpus with 1, 2
or 3 ranks must give the .bin/.idx files that the plain corpus gives with one.
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from sentencepiece import sentencepiece_model_pb2 as model_pb2

from xlmr_ds.dataset.manifest import read_manifest
from xlmr_ds.prep.corpus.reader import iter_language_lines, iter_segment_text
from xlmr_ds.prep.corpus.shards import ReplacementCounter, discover_corpus, split_work
from xlmr_ds.prep.spm.train import train_sentencepiece

MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
COMPRESS = {"xz": lzma.compress, "gz": gzip.compress, "zst": lambda data: zstandard.ZstdCompressor().compress(data)}


def documents_of(path: Path) -> list[list[str]]:
    documents, current = [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            current.append(line)
        elif current:
            documents.append(current)
            current = []
    return documents + ([current] if current else [])


def text_shard(documents: list[list[str]]) -> bytes:
    return "".join("\n".join(doc) + "\n\n" for doc in documents).encode()


def jsonl_shard(documents: list[list[str]], field: str = "text") -> bytes:
    records = [{field: "\n".join(doc), "id": i} for i, doc in enumerate(documents)]
    if records:  # what crawls have: CRLF line ends, blank lines inside a record, an empty and a null text
        records[0][field] = records[0][field].replace("\n", "\r\n\r\n  \n")
        records.insert(1, {field: "", "id": -1})
        records.insert(2, {field: None, "id": -2})
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode()


def parquet_shard(documents: list[list[str]], field: str = "text") -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(len(documents))), field: ["\n".join(d) for d in documents]}),
                   buffer, row_group_size=7)
    return buffer.getvalue()


def chunks(documents: list, parts: int) -> list[list]:
    size = -(-len(documents) // parts)
    return [documents[i:i + size] for i in range(0, len(documents), size)]


# language -> its shards as (file name, how it is written, share of the language's documents).
LAYOUT = {
    "en": [("en.txt.xz", "text:xz")],
    "ru": [("ru/00.txt", "text"), ("ru/01.txt.gz", "text:gz"), ("ru/02.txt.zst", "text:zst"), ("ru/03.txt", "text")],
    "el": [("el/part-0.jsonl.gz", "jsonl:gz"), ("el/part-1.jsonl.gz", "jsonl:gz"), ("el/_SUCCESS", "marker")],
    "ar": [("ar/000_00000.parquet", "parquet"), ("ar/000_00001.parquet", "parquet")],
    "hi": [("hi.jsonl.zst", "jsonl:zst")],
    "zh": [("zh/c4-zh.tfrecord-00000-of-00002.json.gz", "jsonl:gz"), ("zh/c4-zh.tfrecord-00001-of-00002.parquet",
                                                                       "parquet")],
}


def write_shipped(corpus_dir: Path, shipped: Path, plain: Path) -> None:
    plain.mkdir(parents=True)
    for language, shards in LAYOUT.items():
        data_shards = [shard for shard in shards if shard[1] != "marker"]
        parts = chunks(documents_of(corpus_dir / f"{language}.txt"), len(data_shards))
        plain_text = b""
        for (name, kind), documents in zip(data_shards, parts):
            record_format, _, codec = kind.partition(":")
            content = {"text": text_shard, "jsonl": jsonl_shard, "parquet": parquet_shard}[record_format](documents)
            path = shipped / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(COMPRESS[codec](content) if codec else content)
            plain_text += text_shard(documents)
        for name, kind in shards:
            if kind == "marker":
                (shipped / name).write_bytes(b"")
        (plain / f"{language}.txt").write_bytes(plain_text)


@pytest.fixture(scope="module")
def corpora(corpus_dir, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("shipped")
    write_shipped(corpus_dir, root / "shipped", root / "plain")
    return root / "shipped", root / "plain"


def test_every_format_reads_as_its_plain_text(corpora):
    shipped, plain = corpora
    sources = discover_corpus(shipped)
    assert [s.language for s in sources] == sorted(LAYOUT)
    for source in sources:
        lines = list(iter_language_lines(source, ReplacementCounter()))
        expected = (plain / f"{source.language}.txt").read_text(encoding="utf-8").split("\n")[:-1]
        # Blank lines only mark document ends: compare the documents, not how many blank lines separate them.
        assert _documents(lines) == _documents(expected), source.language


def _documents(lines: list[str]) -> list[list[str]]:
    documents, current = [], []
    for line in lines + [""]:
        if line.strip():
            current.append(line)
        elif current:
            documents.append(current)
            current = []
    return documents


@pytest.mark.parametrize("parts", [1, 2, 3, 5, 8])
def test_work_split_reads_every_language_once_in_order(corpora, parts):
    shipped, _ = corpora
    for source in discover_corpus(shipped):
        work = split_work(source, parts)
        assert len(work) == parts
        segments = [segment for rank_segments in work for segment in rank_segments]
        whole = split_work(source, 1)[0]
        for shard in source.shards:
            mine = [s for s in segments if s.shard == shard]
            # A shard is read once: whole if it cannot be entered in the middle, else in adjacent pieces.
            assert mine[0].start == 0 and mine[-1].end == shard.size
            assert all(a.end == b.start for a, b in zip(mine, mine[1:]))
            assert shard.splittable or len(mine) == 1
        assert [s.shard for s in segments] == sorted((s.shard for s in segments),
                                                     key=[w.shard for w in whole].index)
        text = "".join(t for segment in segments for t, _ in iter_segment_text(segment, ReplacementCounter()))
        assert text == "".join(t for segment in whole for t, _ in iter_segment_text(segment, ReplacementCounter()))


def test_plain_shards_are_cut_at_line_starts(corpora):
    shipped, _ = corpora
    ru = next(s for s in discover_corpus(shipped) if s.language == "ru")
    pieces = [seg for rank_segments in split_work(ru, 8) for seg in rank_segments if seg.shard.splittable]
    assert any(0 < seg.start for seg in pieces), "a plain shard should be split between ranks"
    for segment in pieces:
        data = segment.shard.path.read_bytes()
        assert segment.start == 0 or data[segment.start - 1:segment.start] == b"\n"


def test_a_zstd_file_of_several_frames_reads_whole(tmp_path):
    frames = b"".join(zstandard.ZstdCompressor().compress(b"frame %d line.\n\n" % i) for i in range(3))
    (tmp_path / "en.txt.zst").write_bytes(frames)
    [source] = discover_corpus(tmp_path)
    assert [line for line in iter_language_lines(source, ReplacementCounter()) if line] == [
        "frame 0 line.", "frame 1 line.", "frame 2 line."]


def test_text_field_names_the_json_field_and_the_parquet_column(corpus_dir, tmp_path):
    documents = documents_of(corpus_dir / "el.txt")[:5]
    (tmp_path / "el").mkdir()
    (tmp_path / "el" / "a.jsonl").write_bytes(jsonl_shard(documents[:2], field="body"))
    (tmp_path / "el" / "b.parquet").write_bytes(parquet_shard(documents[2:], field="body"))
    [source] = discover_corpus(tmp_path)
    assert _documents(list(iter_language_lines(source, ReplacementCounter(), text_field="body"))) == documents


def test_the_tokenizer_trained_on_shipped_shards_is_the_one_trained_on_plain_text(corpora, tmp_path):
    shipped, plain = corpora
    # Enough sample lines for every line of every language: the same lines whatever each language's size on disk.
    for name, corpus in (("shipped", shipped), ("plain", plain)):
        train_sentencepiece(corpus, tmp_path / name, vocab_size=300, sample_lines=50_000, seed=0, progress=False)
    # The protos differ only in the trainer's temporary file names: compare the pieces and their scores.
    pieces = {}
    for name in ("shipped", "plain"):
        proto = model_pb2.ModelProto()
        proto.ParseFromString((tmp_path / f"{name}.model").read_bytes())
        pieces[name] = [(p.piece, p.score, p.type) for p in proto.pieces]
    assert pieces["shipped"] == pieces["plain"] and len(pieces["plain"]) == 300


def _binarize(corpus: Path, spm_model: Path, out: Path, ranks: int) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "xlmr_ds", "binarize", "--input", str(corpus), "--spm", str(spm_model),
               "--out", str(out), "--no-progress"]
    if ranks > 1:
        command = [MPIEXEC, "-n", str(ranks)] + command
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.multiprocess
def test_shipped_corpus_binarizes_as_its_plain_text_for_any_rank_count(corpora, spm_model, tmp_path):
    shipped, plain = corpora
    reference = tmp_path / "plain"
    assert _binarize(plain, spm_model, reference, 1).returncode == 0
    datasets = sorted(p.name for p in reference.iterdir() if p.suffix in (".bin", ".idx"))
    assert len(datasets) == 2 * len(LAYOUT)
    for ranks in (1, 2, 3):
        out = tmp_path / f"shipped-{ranks}"
        result = _binarize(shipped, spm_model, out, ranks)
        assert result.returncode == 0, result.stderr
        for name in datasets:
            assert (out / name).read_bytes() == (reference / name).read_bytes(), (ranks, name)
        counts = {lang: {k: v for k, v in stats.items() if k != "bytes_read"}
                  for lang, stats in read_manifest(out)["languages"].items()}
        assert counts == {lang: {k: v for k, v in stats.items() if k != "bytes_read"}
                          for lang, stats in read_manifest(reference)["languages"].items()}


@pytest.mark.multiprocess
def test_a_damaged_shard_read_by_one_rank_stops_every_rank_with_one_error(corpus_dir, spm_model, tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "en").mkdir(parents=True)
    text = (corpus_dir / "en.txt").read_bytes()
    (corpus / "en" / "00.txt.xz").write_bytes(lzma.compress(text))
    (corpus / "en" / "01.txt.xz").write_bytes(lzma.compress(text)[:-100])  # rank 1's shard of 2
    result = _binarize(corpus, spm_model, tmp_path / "out", 2)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "01.txt.xz: after line" in errors[0] and "Traceback" not in result.stderr, \
        result.stderr
    assert not (tmp_path / "out").exists()
