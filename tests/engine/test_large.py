"""The real size: the 550M-parameter Large model trains under ZeRO-3 with 2 CPU processes, within the memory
`xlmr-ds info` predicts for fp32 training."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from launch import train

from xlmr_ds.engine.metrics import read_metrics
from xlmr_ds.prep.binarize import binarize_corpus
from xlmr_ds.world import SingleProcess

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]
GIB = 2**30
RUNTIME_GIB = 1.0
"""What a process holds besides model states: torch, DeepSpeed, the data index, activations at seq 128."""


def test_large_trains_two_steps_under_zero3_within_the_predicted_memory(tmp_path):
    from corpus_factory import write_corpus
    from released_size_spm import write_released_size_spm

    spm_model = write_released_size_spm(tmp_path / "sentencepiece.bpe.model")
    corpus = write_corpus(tmp_path / "corpus", {"en": 300})
    binarize_corpus(corpus, spm_model, tmp_path / "data", SingleProcess(), progress=False)
    assert json.loads((tmp_path / "data" / "manifest.json").read_text())["tokenizer"]["vocab_size"] == 250_002
    metrics = tmp_path / "metrics.jsonl"
    train(["--deepspeed_config", str(Path(__file__).parents[2] / "ds_configs" / "large_cpu_zero3.json"), "--data", str(tmp_path / "data"),
           "--model", "large", "--block-size", "128", "--steps", "2", "--metrics-file", str(metrics)],
          processes=2, timeout=1200)
    steps = read_metrics(metrics)
    assert [s["step"] for s in steps] == [1, 2]
    assert all(s["loss"] > 0 and not s["skipped"] for s in steps)
    peaks = read_metrics(metrics, "summary")[0]["peak_rss_gib"]

    info = subprocess.run([sys.executable, "-m", "xlmr_ds", "info", "--model", "large", "--gpus-per-node", "2",
                           "--nodes", "1", "--precision", "fp32", "--json"],
                          capture_output=True, text=True, timeout=120, check=True)
    zero3 = json.loads(info.stdout)["zero"]["3"]
    predicted = (zero3["total"] + zero3["gathered"]) / GIB + RUNTIME_GIB
    # Seen: 9.2 GiB against 8.1 predicted. Without host_memory.py's allocator setting it was 11.0 (1.36x).
    for peak in peaks:
        assert 0.8 * predicted <= peak <= 1.25 * predicted, (peak, predicted)
