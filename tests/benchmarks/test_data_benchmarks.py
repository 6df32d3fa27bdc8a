"""Data-path throughput, each figure beside its baseline measured in the same run.

- binarize MB/s with 1 and 2 MPI ranks (aim: 2 ranks >= 1.7x on 2 cores) and against raw SentencePiece
  encoding of the same text on one core (aim: binarize >= 90% of it per rank);
- masked 512-token samples per second from the loader, without a recipe and with a three-phase one (aim: >= 2,000
  per core for both).
The ratios are printed and kept in pytest-benchmark's extra_info; they are measurements, not asserts.
"""

import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xlmr_ds.prep.corpus import discover_corpus
from xlmr_ds.prep.tokenizer import XLMRTokenizer

MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
REPORT = re.compile(r"([\d,.]+) MB in ([\d.]+) s with (\d+) rank\(s\)(?: on [^:]+)?: ([\d,.]+) MB/s")


LANGUAGES = {"en": 40_000, "ru": 25_000, "el": 10_000, "ar": 10_000, "hi": 8_000, "zh": 8_000}


@pytest.fixture(scope="module")
def large_corpus(tmp_path_factory):
    from corpus_factory import write_corpus

    return write_corpus(tmp_path_factory.mktemp("bench-corpus"),
                        LANGUAGES, seed=3)


def _binarize_mb_per_s(corpus, spm_model, out, ranks) -> float:
    command = [sys.executable, "-m", "xlmr_ds", "binarize", "--input", str(corpus), "--spm", str(spm_model),
               "--out", str(out), "--no-progress"]
    if ranks > 1:
        command = [MPIEXEC, "-n", str(ranks)] + command
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    return float(REPORT.search(result.stdout).group(4).replace(",", ""))


def _raw_encode_mb_per_s(corpus, spm_model) -> float:
    tokenizer = XLMRTokenizer(spm_model)
    lines = [raw.decode() for f in discover_corpus(corpus) for raw in f.shards[0].path.read_bytes().splitlines()]
    size = sum(len(line.encode()) + 1 for line in lines)
    start = time.perf_counter()
    for i in range(0, len(lines), 4096):
        tokenizer.sp.Encode(lines[i:i + 4096], num_threads=1)
    return size / 1e6 / (time.perf_counter() - start)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_binarize_throughput_one_vs_two_ranks(benchmark, large_corpus, spm_model, tmp_path):
    figures = {}

    def measure():
        figures["raw_encode_mb_s"] = _raw_encode_mb_per_s(large_corpus, spm_model)
        figures["one_rank_mb_s"] = _binarize_mb_per_s(large_corpus, spm_model, tmp_path / "r1", 1)
        figures["two_ranks_mb_s"] = _binarize_mb_per_s(large_corpus, spm_model, tmp_path / "r2", 2)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    figures["ratio_two_over_one"] = figures["two_ranks_mb_s"] / figures["one_rank_mb_s"]
    figures["ratio_one_rank_over_raw_encode"] = figures["one_rank_mb_s"] / figures["raw_encode_mb_s"]
    benchmark.extra_info.update(figures)
    print(f"\nbinarize: 1 rank {figures['one_rank_mb_s']:.2f} MB/s, 2 ranks {figures['two_ranks_mb_s']:.2f} MB/s, "
          f"ratio: {figures['ratio_two_over_one']:.2f} (aim >= 1.7); raw encode {figures['raw_encode_mb_s']:.2f} MB/s, "
          f"binarize/raw per rank: {figures['ratio_one_rank_over_raw_encode']:.2f} (aim >= 0.90)")
    assert (tmp_path / "r1" / "en.bin").read_bytes() == (tmp_path / "r2" / "en.bin").read_bytes()


@pytest.mark.slow
def test_loader_masked_512_token_samples_per_second(benchmark, large_corpus, spm_model, tmp_path):
    from xlmr_ds.dataset.loader import DataConfig, PretrainingData
    from xlmr_ds.dataset.recipe import load_recipe
    from xlmr_ds.prep.binarize import binarize_corpus
    from xlmr_ds.world import SingleProcess

    binarize_corpus(large_corpus, spm_model, tmp_path / "bin", SingleProcess(), progress=False)
    config = DataConfig(str(tmp_path / "bin"), block_size=512)
    # Three phases of 700 samples (batch 1): a subset at alpha 0.7 and 30% masking, alpha 0.5 -> 0.3, then 5%.
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(json.dumps({"phases": [
        {"steps": 700, "alpha": 0.7, "mask_prob": 0.3, "languages": ["en", "ru", "el", "ar"]},
        {"steps": 700, "alpha": {"start": 0.5, "end": 0.3}, "mask_prob": 0.15, "languages": list(LANGUAGES)},
        {"steps": 700, "alpha": 0.3, "mask_prob": 0.05}]}))
    loaders = {"one phase": PretrainingData(config),
               "three phases": PretrainingData(config, load_recipe(recipe_file), batch_size=1)}
    count = 2000
    for data in loaders.values():
        data.train_sample(0)  # build the first chunk of the order outside the timing
    timings = {name: [] for name in loaders}

    def measure():
        for _ in range(3):  # interleaved: the machine's noise falls on both alike
            for name, data in loaders.items():
                started = time.perf_counter()
                for g in range(count):
                    data.train_sample(g)
                timings[name].append(time.perf_counter() - started)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    rates = {name: count / statistics.median(times) for name, times in timings.items()}
    data = loaders["three phases"]
    tokens = sum(len(data.train_sample(g)["input_ids"]) for g in range(100)) / 100
    benchmark.extra_info.update(samples_per_s=rates["one phase"], phased_samples_per_s=rates["three phases"],
                                mean_tokens_per_sample=tokens)
    print(f"\nloader: {rates['one phase']:,.0f} masked samples/s on one core without a recipe, "
          f"{rates['three phases']:,.0f} with a three-phase recipe (mean {tokens:.0f} tokens); ratio to the 2,000/s "
          f"aim: {rates['one phase'] / 2000:.2f} and {rates['three phases'] / 2000:.2f}, phased/one phase: "
          f"{rates['three phases'] / rates['one phase']:.2f}")
