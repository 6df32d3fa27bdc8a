"""`corpus build` against a one-process reference written the simple way: documents in input order, a set of
paragraph hashes seen so far, fastText called directly, the filters. Its output must be the build's,
byte for byte, for 1, 2 and 3 workers and any number of hash partitions; a killed build must rerun to it.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import fasttext
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from warcio.warcwriter import WARCWriter

import xlmr_ds.prep.corpus.build as corpus_build
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.prep.corpus.build import BuildSettings, build_corpus
from xlmr_ds.prep.corpus.filters import FilterSettings, failed_filter, repeated_line_share, script_share
from xlmr_ds.prep.corpus.langid import default_model_path
from xlmr_ds.prep.corpus.paragraphs import normalize_paragraph, paragraph_hash, paragraph_hashes
from xlmr_ds.prep.corpus.shards import discover_corpus
from xlmr_ds.prep.demo.corpus import write_demo_corpus
from xlmr_ds.prep.demo.crawl import write_demo_crawl
from xlmr_ds.world import SingleProcess

MPIEXEC = str(Path(sys.executable).parent / "mpiexec")


@pytest.mark.parametrize("line, normalized", [
    ("  Hello World  ", "hello world"),
    ("Prices: 12.50 EUR, 3 items!", "prices 0000 eur 0 items"),  # digits -> 0, punctuation deleted
    ("Café crème, s'il vous plaît.", "cafe creme sil vous plait"),  # accents removed
    ("Ελληνικά ΚΕΙΜΕΝΑ", "ελληνικα κειμενα"),  # Greek tonos is a diacritic
    ("किताब पढ़ो।", "किताब पढ़ो"),  # Devanagari vowel signs are letters of the word: kept; danda deleted
    ("٣ كتب، ٤٥ قلم", "0 كتب 00 قلم"),  # Arabic-Indic digits are digits; the Arabic comma is punctuation
    ("「東京」は大きい。", "東京は大きい"),
    ("tab\tand\x07bell", "tabandbell"),  # control characters deleted, the tab too (as CCNet does)
])
def test_paragraphs_are_normalized_as_ccnet_does_plus_accents(line, normalized):
    assert normalize_paragraph(line) == normalized


def test_copies_differing_in_case_digits_punctuation_and_accents_hash_alike():
    copies = ["Copyright © 2021 All rights reserved.", "COPYRIGHT © 2024 ALL RIGHTS RESERVED",
              "  copyright © 2019 all rights reserved!"]
    assert len({paragraph_hash(line) for line in copies}) == 1
    assert paragraph_hash("किताब") != paragraph_hash("कितब")
    assert paragraph_hashes(copies).tolist() == [paragraph_hash(line) for line in copies]


@pytest.mark.parametrize("text, language, share", [
    ("Привет мир", "ru", 1.0), ("Привет hello", "ru", 6 / 11), ("hello мир", "en", 5 / 8),
    ("किताब पढ़ो", "hi", 1.0), ("東京はひらがなカタカナ", "ja", 1.0), ("한국어 漢字", "ko", 1.0),
    ("Привет", "eng_Latn", 0.0), ("anything", "xx-unknown", None), ("1234 !!", "en", None),
])
def test_script_share(text, language, share):
    assert script_share(text, language) == (pytest.approx(share) if share is not None else None)


@pytest.mark.parametrize("lines, kept, language, settings, failed", [
    (["a long enough line"], ["a long enough line"], "en", FilterSettings(min_chars=10), None),
    (["short"], ["short"], "en", FilterSettings(min_chars=10), "min_chars"),
    (["Привет мир", "hello there my friend"], ["Привет мир", "hello there my friend"], "ru", FilterSettings(),
     "script_share"),
    (["same", "same", "other"], ["same", "other"], "en", FilterSettings(), "repeated_lines"),
    (["same", "same", "other"], ["same", "other"], "en", FilterSettings(max_repeated_line_share=1.0), None),
])
def test_filters(lines, kept, language, settings, failed):
    assert failed_filter(settings, lines, kept, language) == failed
    assert repeated_line_share(["a", "a", "a", "b"]) == 0.5


# ---- the raw input: a crawl of the demo corpus in every raw format ------------------------------------------


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]


def _write_wet(path: Path, records: list[dict]) -> None:
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        writer.write_record(writer.create_warc_record("", "warcinfo", payload=io.BytesIO(b"software: test\r\n")))
        for record in records:
            writer.write_record(writer.create_warc_record(
                record["url"], "conversion", payload=io.BytesIO(record["text"].encode()),
                warc_headers_dict={"Content-Type": "text/plain", "WARC-Identified-Content-Language": record["language"]}))


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw-build")
    write_demo_corpus(root / "corpus", seed=1, scale=0.12)
    write_demo_crawl(root / "corpus", root / "crawl", shards=5, seed=1)
    shards = sorted((root / "crawl").iterdir())
    raw = root / "raw"
    raw.mkdir()
    (raw / "a-crawl.jsonl.gz").write_bytes(shards[0].read_bytes())
    (raw / "b-crawl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _records(shards[1])))
    text = "".join(r["text"] + "\n\n" for r in _records(shards[2])).encode()
    (raw / "c-crawl.txt.zst").write_bytes(zstandard.ZstdCompressor().compress(text))
    buffer = io.BytesIO()
    records = _records(shards[3])
    pq.write_table(pa.table({"text": [r["text"] for r in records], "language": [r["language"] for r in records]}),
                   buffer, row_group_size=50)
    (raw / "d-crawl.parquet").write_bytes(buffer.getvalue())
    _write_wet(raw / "e-crawl.warc.wet.gz", _records(shards[4]))
    return raw


def _input_documents(raw: Path) -> list[list[str]]:
    """The documents in input order, read the plain way from each format."""
    documents = []
    for path in sorted(raw.iterdir()):
        if path.name.endswith(".jsonl.gz"):
            texts = [r["text"] for r in _records(path)]
        elif path.name.endswith(".jsonl"):
            texts = [json.loads(line)["text"] for line in path.read_text().splitlines()]
        elif path.name.endswith(".txt.zst"):
            texts = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(path.read_bytes())).read().decode() \
                .split("\n\n")
        elif path.name.endswith(".parquet"):
            texts = pq.read_table(path).column("text").to_pylist()
        else:
            from warcio.archiveiterator import ArchiveIterator

            with open(path, "rb") as stream:
                texts = [r.content_stream().read().decode() for r in ArchiveIterator(stream)
                         if r.rec_type == "conversion"]
        documents += [lines for text in texts if (lines := [x for x in text.split("\n") if x.strip()])]
    return documents


def reference_build(raw: Path, settings: BuildSettings) -> tuple[dict[str, bytes], dict]:
    model = fasttext.load_model(str(default_model_path()))
    seen: set[int] = set()
    out: dict[str, list[str]] = defaultdict(list)
    removed: dict[str, int] = defaultdict(int)
    for lines in _input_documents(raw):
        kept = []
        for line in lines:
            if paragraph_hash(line) not in seen:
                seen.add(paragraph_hash(line))
                kept.append(line)
        if not kept:
            removed["dedup"] += 1
            continue
        labels, probabilities = model.predict(" ".join(kept), k=1)
        language = labels[0].removeprefix("__label__")
        if probabilities[0] < settings.lid_threshold:
            removed["lid"] += 1
            continue
        failed = failed_filter(settings.filters, lines, kept, language)
        if failed:
            removed[failed] += 1
            continue
        out[language].append("\n".join(kept) + "\n\n")
    return {f"{lang}.txt": "".join(docs).encode() for lang, docs in out.items()}, dict(removed)


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".txt"}


def _build_with_mpi(raw: Path, out: Path, ranks: int, *flags: str) -> subprocess.CompletedProcess:
    command = [MPIEXEC, "-n", str(ranks), sys.executable, "-m", "xlmr_ds", "corpus", "build", "--input", str(raw),
               "--out", str(out), "--no-progress", *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def reference(raw):
    return reference_build(raw, BuildSettings())


@pytest.fixture(scope="module")
def one_worker(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("one-worker") / "corpus"
    summary = build_corpus([str(raw)], out, BuildSettings(known_language_field="language"), SingleProcess(),
                           progress=False)
    return out, summary


def test_the_build_is_the_reference_dedup_lid_and_filters(one_worker, reference):
    out, summary = one_worker
    expected, removed = reference
    assert _outputs(out) == expected
    assert {stage: c["documents"] for stage, c in summary["removed"].items() if c["documents"]} == removed
    assert removed["dedup"] > 0 and summary["duplicate_paragraphs"]["paragraphs"] > 100  # the crawl repeats itself
    # Every paragraph is in the output once: no two kept paragraphs share a hash.
    kept = [line for text in expected.values() for line in text.decode().split("\n") if line]
    assert len(set(paragraph_hashes(kept).tolist())) == len(kept)


def test_stats_add_up_and_say_how_well_languages_were_recovered(one_worker):
    out, summary = one_worker
    assert json.loads((out / "stats.json").read_text()) == summary
    assert (out / "stats.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    read, kept, removed = summary["read"], summary["kept"], summary["removed"]
    assert read["documents"] == kept["documents"] + sum(c["documents"] for c in removed.values())
    assert read["bytes"] == kept["bytes"] + summary["duplicate_paragraphs"]["bytes"] + sum(
        c["bytes"] for c in removed.values())
    assert summary["languages"].keys() == {p.stem for p in out.glob("*.txt")}
    # The known language comes from JSON fields, parquet columns and WET headers (the .txt.zst shard has none).
    known = summary["known_languages"]
    assert sum(sum(row.values()) for row in known.values()) < read["documents"]
    right = sum(row.get(lang, 0) for lang, row in known.items())
    kept_known = sum(n for row in known.values() for to, n in row.items() if not to.startswith("removed"))
    assert right / kept_known > 0.9


def test_the_output_is_a_corpus_the_rest_reads(one_worker):
    out, _ = one_worker
    languages = [source.language for source in discover_corpus(out)]
    assert {"en", "de", "ru", "zh"} <= set(languages)


@pytest.mark.parametrize("partitions", [1, 7])
def test_the_number_of_hash_partitions_does_not_change_the_output(raw, reference, partitions, tmp_path):
    build_corpus([str(raw)], tmp_path / "out", BuildSettings(hash_partitions=partitions), SingleProcess(),
                 progress=False)
    assert _outputs(tmp_path / "out") == reference[0]


@pytest.mark.multiprocess
def test_two_and_three_workers_write_the_same_corpus(raw, reference, tmp_path):
    for ranks in (2, 3):
        result = _build_with_mpi(raw, tmp_path / f"w{ranks}", ranks, "--hash-partitions", "5")
        assert result.returncode == 0, result.stderr
        assert _outputs(tmp_path / f"w{ranks}") == reference[0], ranks
        assert f"with {ranks} worker(s)" in result.stdout


class Killed(BaseException):
    """What a kill leaves: nothing after the point runs (not even the error handling of XLMRDSError)."""


def _kill_at(monkeypatch, module_function: str, after_calls: int = 0):
    original = getattr(corpus_build, module_function)
    calls = {"n": 0}

    def dying(*args, **kwargs):
        if calls["n"] >= after_calls:
            raise Killed
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(corpus_build, module_function, dying)


@pytest.mark.parametrize("kill_at, after_calls", [("_identify_and_filter", 0), ("_write_language", 3)])
def test_a_killed_build_is_not_taken_for_complete_and_reruns_to_the_same_output(raw, reference, kill_at,
                                                                              after_calls, monkeypatch, tmp_path):
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        _kill_at(patch, kill_at, after_calls)
        with pytest.raises(Killed):
            build_corpus([str(raw)], out, BuildSettings(), SingleProcess(), progress=False)
    assert not (out / "stats.json").exists()
    with pytest.raises(XLMRDSError, match="a corpus build into it did not finish"):
        discover_corpus(out)
    build_corpus([str(raw)], out, BuildSettings(), SingleProcess(), progress=False)
    assert _outputs(out) == reference[0] and not (out / ".build-tmp").exists()


def test_a_new_build_replaces_an_older_one_only_when_it_completes(raw, reference, monkeypatch, tmp_path):
    out = tmp_path / "out"
    strict = BuildSettings(filters=FilterSettings(min_chars=400))
    build_corpus([str(raw)], out, strict, SingleProcess(), progress=False)
    older = _outputs(out)
    assert older != reference[0]
    with pytest.raises(XLMRDSError, match="no document is left"):  # a failed build leaves the older one as it was
        build_corpus([str(raw)], out, BuildSettings(filters=FilterSettings(min_chars=10**9)), SingleProcess(),
                     progress=False)
    assert _outputs(out) == older and (out / "stats.json").exists() and not (out / ".build-tmp").exists()
    with monkeypatch.context() as patch:  # killed while swapping the files in: not complete; a rerun finishes
        original = corpus_build.os.replace
        renamed = {"n": 0}

        def dying_replace(source, target):
            if str(target).endswith(".txt") and renamed["n"] == 2:
                raise Killed
            renamed["n"] += str(target).endswith(".txt")
            return original(source, target)

        patch.setattr(corpus_build.os, "replace", dying_replace)
        with pytest.raises(Killed):
            build_corpus([str(raw)], out, BuildSettings(), SingleProcess(), progress=False)
    with pytest.raises(XLMRDSError, match="did not finish"):
        discover_corpus(out)
    build_corpus([str(raw)], out, BuildSettings(), SingleProcess(), progress=False)
    assert _outputs(out) == reference[0]


def test_languages_found_in_few_documents_are_left_out(raw, reference, one_worker, tmp_path):
    _, everything = one_worker
    counts = {lang: c["documents"] for lang, c in everything["languages"].items()}
    assert min(counts.values()) < 20 <= max(counts.values())
    summary = build_corpus([str(raw)], tmp_path / "out", BuildSettings(min_language_documents=20,
                                                                       known_language_field="language"),
                           SingleProcess(), progress=False)
    common = {lang for lang, n in counts.items() if n >= 20}
    assert _outputs(tmp_path / "out") == {name: text for name, text in reference[0].items() if name[:-4] in common}
    assert summary["removed"]["rare_language"]["documents"] == sum(n for n in counts.values() if n < 20)
    identified = {to for row in summary["known_languages"].values() for to in row}
    assert not identified & (set(counts) - common) and "removed: rare_language" in identified
