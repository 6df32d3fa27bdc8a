"""benchmarks/gpu_smoke.sh, the first call a lent GPU gets, runs here as its CPU twin (DeepSpeed's CPU accelerator,
fp32, no kernel tests): every job it starts (data, pretraining with a save, an exit and a resume, fine-tuning,
a bench pair) must end well and say so in one line, so that the script a GPU session runs unread has run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.multiprocess
def test_the_gpu_smoke_script_runs_every_job_on_the_cpu(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "SMOKE_DEVICE": "cpu", "OUT": str(out), "PYTHON": sys.executable,
           "SMOKE_PORT": str(29700 + os.getpid() % 200)}
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_smoke.sh")], env=env, capture_output=True,
                            text=True, timeout=900)
    lines = result.stdout.splitlines()
    assert lines == ["data: ok", "train: ok", "finetune: ok", "bench: ok", "smoke on cpu: 0 failed"], \
        result.stdout + result.stderr[-3000:]
    assert result.returncode == 0
    train = (out / "train.txt").read_text()
    assert "--exit-at-step 2: saving at step 2 and exiting" in train and "resumed from" in train
    assert "peak memory per process" in train
    assert (out / "work" / "finetune" / "results.json").is_file()
    assert (out / "bench.json").is_file()
