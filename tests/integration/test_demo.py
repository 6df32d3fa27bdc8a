"""`make demo`, shortened: the README's first command runs end to end and leaves its report."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
@pytest.mark.multiprocess
def test_make_demo_runs_the_whole_pipeline(tmp_path):
    demo = tmp_path / "demo"
    result = subprocess.run(
        ["make", "demo", f"DEMO={demo}", "DEMO_SCALE=0.1", "DEMO_VOCAB=3000", "DEMO_BLOCK=64", "DEMO_STEPS=6",
         "DEMO_FIRST_STEPS=4", "DEMO_EVERY=2", "DEMO_FT_EPOCHS=1", "DEMO_TASK_LANGS=en de ru",
         "DEMO_MIN_LANGUAGE_DOCUMENTS=3", "DEMO_PROBE_LANGS=en de ru"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200, env={**os.environ, "CI": "true"})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for path in ("raw/crawl-000.jsonl.gz", "corpus/en.txt", "corpus/stats.json", "corpus/stats.png", "spm/spm.model", "data/manifest.json", "hf/model.safetensors",
                 "hf/tokenizer.json", "report.md", "loss.png", "lr.png", "task/README.md", "finetune/results.json",
                 "finetune/model/model.safetensors", "retrieval/results.json"):
        assert (demo / path).exists(), path
    report = (demo / "report.md").read_text()
    assert "From raw shards to the corpus" in report and "Languages recovered" in report
    assert report.index("## Did it learn?") < report.index("## How fast?") < report.index("## What data?") \
        < report.index("## How does it transfer?")
    assert "gain over the guess" in report and "Fill-mask on held-out text" in report
    assert (demo / "accuracy.csv").is_file() and (demo / "validation.csv").is_file()
    assert "Prompts unlike the corpus" in report and "Top answers that are words in the prompt's script:" in report
    assert "## Word order" in report and "word order is worth" in report and (demo / "eval.json").is_file()
    assert "### Fine-tuned on the source language" in report and "| ru |" in report and "average zero-shot" in report
    assert "resumed from" in result.stdout + result.stderr
    assert "Сегодня <mask> погода." in result.stdout
    # The libraries' noise is silenced where it starts (xlmr_ds/logs.py, the Makefile's launcher log level).
    output = result.stdout + result.stderr
    for noise in NOISE:
        assert noise not in output, output[max(0, output.find(noise) - 2000):output.find(noise) + 200]


# Lines the libraries print that a user cannot act on, each once seen in the demo's output.
NOISE = (
    "Attempting to get learning rate", "Unable to find hostfile", "FutureWarning", "[INFO]",
    "deepspeed_shm_comm_op built successfully",  # DeepSpeed, from every process that starts a process group
    "collect2: error", "cannot find -laio",  # the compiler's, when DeepSpeed's op builders probe for libaio
    "Processing zero checkpoint", "Parsing checkpoint created by", "Loading checkpoint shards",  # zero_to_fp32
    "Detected checkpoint of type", "Reconstructed fp32 state dict",
    "Loading weights",  # transformers' bar when a model is loaded (fill-mask, report)
    "xlmr_ds.train: error",  # the job names itself as every command does: `xlmr-ds train: error:`
)
