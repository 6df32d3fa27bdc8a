"""benchmarks/data_scale.py: the synthetic CC-100 is the paper's shape in our format, and the benchmark measures,
fits and extrapolates from it."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from megatron.core.datasets.indexed_dataset import IndexedDataset as MegatronIndexedDataset

from xlmr_ds.dataset.config import DataConfig
from xlmr_ds.dataset.loader import PretrainingData

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "data_scale.py"
_spec = importlib.util.spec_from_file_location("data_scale", SCRIPT)
data_scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(data_scale)


def test_the_language_table_is_cc100s_hundred_languages():
    languages = data_scale.cc100_languages()
    assert len(languages) == 100 and max(languages, key=languages.get) == "en"
    assert languages["en"] == 55_608_000_000 and languages["as"] == 5_000_000
    # Conneau et al. 2019: 2.5 TB; the table's tokens add up to 315B, about 10B lines of 32 tokens.
    assert sum(languages.values()) == 314_918_000_000


@pytest.mark.parametrize("tokens", [2, 3, 31, 32, 33, 1000, 123_457, 2_000_003])
def test_synthetic_line_lengths_add_up_to_the_tokens_exactly(tokens):
    lengths = data_scale.synthetic_lengths(tokens, np.random.default_rng(tokens))
    assert lengths.dtype == np.int32 and int(lengths.sum()) == tokens and lengths.min() >= 2
    if tokens >= 100_000:
        assert abs(lengths.mean() - data_scale.LINE_TOKENS) < 1.0
        assert (lengths > data_scale.BLOCK_SIZE).any()  # some lines longer than a block


@pytest.mark.parametrize("lines,processes,expected", [
    ({"en": 100, "ru": 40, "sw": 1}, 1, 141),
    ({"en": 100, "ru": 40, "sw": 1}, 32, 100),  # the largest language bounds the build
    ({"a": 30, "b": 30, "c": 20, "d": 20}, 2, 50),
])
def test_the_32_process_estimate_takes_the_builds_own_assignment(lines, processes, expected):
    assert data_scale.slowest_share(lines, processes) == expected


def test_the_power_law_fit_recovers_its_exponent():
    lines = [1e6, 3e6, 1e7]
    c, k = data_scale.power_law(lines, [2.5 * x ** 1.2 for x in lines])
    assert k == pytest.approx(1.2) and c == pytest.approx(2.5)


def test_the_synthetic_dataset_is_a_binarize_output_of_cc100s_shape(tmp_path):
    fraction = 1e-6
    shape = data_scale.write_dataset(tmp_path / "data", fraction)
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    expected = {name: max(2, round(tokens * fraction)) for name, tokens in data_scale.cc100_languages().items()}
    assert {name: entry["tokens"] for name, entry in manifest["languages"].items()} == expected
    assert shape["tokens"] == sum(expected.values())
    english = MegatronIndexedDataset(str(tmp_path / "data" / "en"))  # megatron-core reads our .idx
    assert int(english.sequence_lengths.sum()) == expected["en"] and len(english) == shape["largest_language_lines"]
    assert (tmp_path / "data" / "en.bin").stat().st_size == 4 * expected["en"]  # int32 ids, sparse
    data = PretrainingData(DataConfig(str(tmp_path / "data"), block_size=512, valid_fraction=0.005))
    assert len(data.languages) == 100 and sum(len(train) for train, _ in data.blocks.values()) > 0


@pytest.mark.slow
def test_the_benchmark_measures_fits_and_extrapolates(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "scale"), "--fractions", "1e-5",
                             "3e-5", "--samples", "64", "--json", str(tmp_path / "scale.json")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "scale.json").read_text())
    assert [row["fraction"] for row in report["rows"]] == [1e-5, 3e-5]
    assert report["rows"][1]["lines"] > 2.5 * report["rows"][0]["lines"]
    for row in report["rows"]:
        assert row["blocks"] > 0 and row["startup_resume_seconds"] > 0 and row["samples_per_second_resume_cached"] > 0
        assert row["index_seconds_2_processes"] > 0
    assert set(report["fits"]) == {"index_seconds", "index_peak_rss_bytes", "startup_fresh_seconds",
                                   "startup_resume_seconds"}
    assert "all of CC-100: " in result.stdout and "start-up: fresh" in result.stdout
    assert report["extrapolated"]["index_minutes_32_processes"] > 0
