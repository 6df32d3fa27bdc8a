"""benchmarks/corpus_scale.py: the synthetic text is what it says (sizes, copies, documents, a function of the seed),
and the benchmark measures, fits and extrapolates from its rows."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "corpus_scale.py"
_spec = importlib.util.spec_from_file_location("corpus_scale", SCRIPT)
corpus_scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus_scale)


def _documents(raw: Path) -> list[list[str]]:
    text = "".join(path.read_text(encoding="utf-8") for path in sorted(raw.glob("raw-*.txt")))
    return [block.split("\n") for block in text.split("\n\n") if block.strip()]


@pytest.mark.parametrize("megabytes, seed", [(0.3, 0), (0.3, 1), (1.0, 0)])
def test_the_synthetic_text_has_its_size_copies_and_documents(tmp_path, megabytes, seed):
    written = corpus_scale.write_corpus(tmp_path / "raw", megabytes, seed)
    shards = sorted((tmp_path / "raw").glob("raw-*.txt"))
    assert written["shards"] == len(shards) == corpus_scale.SHARDS
    assert written["bytes"] == sum(path.stat().st_size for path in shards)
    assert megabytes * 1e6 <= written["bytes"] < megabytes * 1e6 * 1.2
    documents = _documents(tmp_path / "raw")
    lines = [line for document in documents for line in document]
    assert len(documents) == written["documents"] and len(lines) == written["lines"]
    low, high = corpus_scale.DOCUMENT_LINES
    assert all(low <= len(document) <= high and all(line.strip() for line in document) for document in documents)
    assert written["copied_lines"] / written["lines"] == pytest.approx(corpus_scale.DUPLICATE_SHARE, abs=0.02)
    # Copies are exact: the distinct lines are about those not copied.
    assert len(set(lines)) == pytest.approx(written["lines"] - written["copied_lines"], rel=0.01)


def test_the_synthetic_text_is_a_function_of_the_seed(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        corpus_scale.write_corpus(tmp_path / name, 0.2, seed)
    contents = {name: [p.read_bytes() for p in sorted((tmp_path / name).glob("raw-*.txt"))] for name in "abc"}
    assert contents["a"] == contents["b"] != contents["c"]


@pytest.mark.parametrize("c, k", [(2.5, 1.0), (1e-6, 1.2), (40.0, 0.5)])
def test_the_power_law_fit_recovers_its_exponent(c, k):
    sizes = [1e7, 3e7, 1e8]
    fitted_c, fitted_k = corpus_scale.power_law(sizes, [c * x ** k for x in sizes])
    assert fitted_k == pytest.approx(k) and fitted_c == pytest.approx(c)


def _rows(exponent: float = 1.0) -> list[dict]:
    """Rows of a benchmark whose every measure is a known power law of its size."""
    rows = []
    for raw in (1e7, 3e7, 1e8):
        corpus, largest = 0.9 * raw, 0.2 * raw
        rows.append({
            "raw_bytes": raw, "corpus_bytes": corpus,
            "baseline": {"build_peak_rss_bytes": 1e8, "binarize_peak_rss_bytes": 5e7},
            "build": {"seconds": raw / 2e6, "added_rss_bytes": 4e-3 * raw ** exponent, "paragraphs": raw / 100},
            "dedup_one_partition": {"seconds": 1e-8 * raw, "added_rss_bytes": 0.5 * raw},
            "binarize": {"seconds": corpus / 2e7, "added_rss_bytes": 0.1 * largest, "largest_language_bytes": largest},
            "binarize_ranks": {"seconds": corpus / 3e7},
        })
    return rows


@pytest.mark.parametrize("exponent, faster", [(1.0, False), (1.3, True)])
def test_fits_come_from_the_rows(exponent, faster):
    fits = corpus_scale.fit_rows(_rows(exponent))
    assert set(fits) == set(corpus_scale.FITTED)
    assert fits["build_seconds"]["exponent"] == pytest.approx(1.0)
    assert fits["build_seconds"]["c"] == pytest.approx(1 / 2e6)
    assert fits["build_added_rss_bytes"]["exponent"] == pytest.approx(exponent)
    assert (fits["build_added_rss_bytes"]["exponent"] > corpus_scale.SUPERLINEAR) is faster
    assert fits["binarize_added_rss_bytes"]["x"] == "largest_language_bytes"
    assert fits["binarize_added_rss_bytes"]["c"] == pytest.approx(0.1)


@pytest.mark.parametrize("nodes, cores", [(32, 16), (1, 1), (4, 8)])
def test_the_extrapolation_spreads_cc100_over_the_ranks(nodes, cores):
    rows = _rows()
    e = corpus_scale.extrapolate(rows, corpus_scale.fit_rows(rows), nodes, cores)
    ranks = nodes * cores
    assert e["ranks"] == ranks and e["total_bytes"] == 2.5e12
    assert e["build_bytes_per_second_per_core"] == pytest.approx(2e6)
    assert e["binarize_bytes_per_second_per_core"] == pytest.approx(2e7)
    assert e["binarize_bytes_per_second_per_core_2_ranks"] == pytest.approx(1.5e7)
    assert e["build_hours_linear"] == pytest.approx(2.5e12 / 2e6 / ranks / 3600)
    assert e["build_hours"] == pytest.approx(e["build_hours_linear"])  # a linear fit agrees with the rate
    assert e["binarize_hours"] == pytest.approx(2.5e12 / 2e7 / ranks / 3600)
    assert e["paragraphs"] == pytest.approx(2.5e10)
    assert e["dedup_bytes_per_paragraph"] == pytest.approx(50)  # 0.5 bytes per raw byte, 100 bytes a line
    assert e["dedup_partition_rss_bytes_linear"] == pytest.approx(50 * 2.5e10 / 64)
    assert e["dedup_partition_rss_bytes"] == pytest.approx(e["dedup_partition_rss_bytes_linear"])
    assert e["dedup_partition_rss_bytes_k_equals_ranks"] == pytest.approx(50 * 2.5e10 / max(ranks, 64))
    english = 2.5e12 * corpus_scale.largest_language_share()
    assert e["binarize_rank0_peak_rss_bytes"] == pytest.approx(5e7 + 0.1 * english)


def test_english_is_cc100s_largest_language_by_bytes():
    assert corpus_scale.largest_language_share() == pytest.approx(0.12, abs=0.01)  # 300.8 GiB of 2.5 TB


@pytest.mark.slow
@pytest.mark.multiprocess
def test_the_benchmark_measures_fits_and_extrapolates(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "scale"), "--megabytes", "0.5",
                             "1.5", "--spm-vocab", "4000", "--nodes", "2", "--cores-per-node", "4", "--json",
                             str(tmp_path / "scale.json")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "scale.json").read_text())
    rows = report["rows"]
    assert [row["megabytes"] for row in rows] == [0.5, 1.5]
    assert rows[1]["raw_bytes"] > 2.5 * rows[0]["raw_bytes"]
    for row in rows:
        assert row["build"]["seconds"] > 0 and row["build"]["paragraphs"] == row["written"]["lines"]
        assert 0.05 < row["build"]["duplicate_paragraphs"] / row["build"]["paragraphs"] < 0.15
        # One partition or 64: the same copies (which copy is kept does not depend on K).
        assert row["dedup_one_partition"]["duplicates"] == row["build"]["duplicate_paragraphs"] > 0
        assert 0 < row["corpus_bytes"] <= row["raw_bytes"]
        assert row["binarize"]["bytes"] == row["binarize_ranks"]["bytes"] == row["corpus_bytes"]
        for measured in (row["build"], row["binarize"], row["binarize_ranks"]):
            assert measured["peak_rss_bytes"] > 10 * 2**20 and measured["added_rss_bytes"] >= 0
    assert report["fits"] == json.loads(json.dumps(corpus_scale.fit_rows(rows)))
    assert report["extrapolated"]["ranks"] == 8
    assert report["extrapolated"] == json.loads(json.dumps(corpus_scale.extrapolate(rows, report["fits"], 2, 4)))
    assert set(report["faster_than_linear"]) <= set(corpus_scale.FITTED)
    assert "all of CC-100 (2.5 TB" in result.stdout and "faster than linear" in result.stdout
