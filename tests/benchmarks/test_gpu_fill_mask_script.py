"""benchmarks/gpu_fill_mask.sh (GPU.md item 8) runs end to end: it trains, saves every EVERY steps, and scores every
checkpoint on the fill-mask panel, with the demo's four prompts counted apart. Here on the CPU with a few steps
of the tests' corpus, so that the script a GPU session runs unread has run before; its figures mean nothing."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PANEL = (ROOT / "benchmarks" / "fill_mask_panel.txt").read_text().splitlines()


@pytest.mark.slow
@pytest.mark.multiprocess
def test_every_checkpoint_is_scored_on_the_panel(binarized_dir, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OUT": str(out), "DATA": str(binarized_dir),
           "WORK": str(tmp_path / "work"), "STEPS": "4", "EVERY": "2", "BATCH": "4", "TRAIN_SECONDS": "300",
           "COMMIT": "test", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_fill_mask.sh")], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "training: exit 0" in result.stdout
    scored = re.findall(r"^step (\d+): the demo's four prompts (\d) of 4; the panel (\d+) of 20$", result.stdout, re.M)
    assert [int(step) for step, _, _ in scored] == [2, 4]
    report = (out / "fill_mask.txt").read_text()
    for step in (2, 4):
        section = report.split(f"## step {step} ")[1].split("## step")[0]
        assert [line for line in section.splitlines() if not line.startswith(("  -> ", "top answers", "("))] == PANEL
    assert "commit: test" in (out / "env.txt").read_text()
    assert (out / "train.txt").read_text().splitlines()[-1].startswith("train: 100%")
    assert len((out / "metrics.jsonl").read_text().splitlines()) >= 4


def test_without_the_demo_data_it_says_what_to_carry(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "DATA": str(tmp_path / "missing"), "WORK": str(tmp_path / "w")}
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_fill_mask.sh")], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "carry runs/demo/data" in result.stdout
