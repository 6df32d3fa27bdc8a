"""Data-path throughput, each figure beside its baseline measured in the same run.

- binarize MB/s with 1 and 2 MPI ranks (aim: 2 ranks >= 1.7x on 2 cores) and against raw SentencePiece
  encoding of the same text on one core (aim: binarize >= 90% of it per rank);
- masked 512-token samples per second from the loader (aim: >= 2,000 per core).
The ratios are printed and kept in pytest-benchmark's extra_info; they are measurements, not asserts.
"""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xlmr_ds.prep.corpus import discover_corpus, iter_raw_lines
from xlmr_ds.prep.tokenizer import XLMRTokenizer

MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
REPORT = re.compile(r"([\d,.]+) MB in ([\d.]+) s with (\d+) rank\(s\)(?: on [^:]+)?: ([\d,.]+) MB/s")


@pytest.fixture(scope="module")
def large_corpus(tmp_path_factory):
    from corpus_factory import write_corpus

    return write_corpus(tmp_path_factory.mktemp("bench-corpus"),
                        {"en": 40_000, "ru": 25_000, "el": 10_000, "ar": 10_000, "hi": 8_000, "zh": 8_000}, seed=3)


def _binarize_mb_per_s(corpus, spm_model, out, ranks) -> float:
    command = [sys.executable, "-m", "xlmr_ds", "binarize", "--input", str(corpus), "--spm", str(spm_model),
               "--out", str(out), "--no-progress"]
    if ranks > 1:
        command = [MPIEXEC, "-n", str(ranks)] + command
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    return float(REPORT.search(result.stdout).group(4).replace(",", ""))


def _raw_encode_mb_per_s(corpus, spm_model) -> float:
    tokenizer = XLMRTokenizer(spm_model)
    lines = [raw.decode() for f in discover_corpus(corpus) for raw in iter_raw_lines(f.path)]
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
    from xlmr_ds.prep.binarize import binarize_corpus
    from xlmr_ds.world import SingleProcess

    binarize_corpus(large_corpus, spm_model, tmp_path / "bin", SingleProcess(), progress=False)
    data = PretrainingData(DataConfig(str(tmp_path / "bin"), block_size=512))
    count = 2000
    data.train_sample(0)  # build the first chunk of the order outside the timing

    def read_samples():
        for g in range(count):
            data.train_sample(g)

    benchmark.pedantic(read_samples, rounds=3, iterations=1)
    per_second = count / benchmark.stats.stats.median
    tokens = sum(len(data.train_sample(g)["input_ids"]) for g in range(100)) / 100
    benchmark.extra_info.update(samples_per_s=per_second, mean_tokens_per_sample=tokens)
    print(f"\nloader: {per_second:,.0f} masked samples/s on one core (mean {tokens:.0f} tokens), "
          f"ratio to the 2,000/s aim: {per_second / 2000:.2f}")
