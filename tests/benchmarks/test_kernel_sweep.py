"""benchmarks/kernel_sweep.py: every configuration of the sweep is measured for every provider and pass, in
one run, and written as JSON with the device named. On a CPU it runs its smoke shapes in Triton's
interpreter, where the times mean nothing; the GPU sweep is in benchmarks/GPU.md."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "kernel_sweep.py"


@pytest.mark.slow
def test_the_sweep_measures_every_provider_pass_and_shape(tmp_path):
    out = tmp_path / "sweep.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["device"] and report["torch"] == torch.__version__
    sweep, rows = report["sweep"], report["rows"]
    measured = {(r["seq"], r["head_dim"], r["padding"], r["pass"], r["provider"]) for r in rows}
    for seq, head_dim, padding, passes in itertools.product(sweep["seqs"], sweep["head_dims"], sweep["paddings"],
                                                            ("forward", "backward", "forward+backward")):
        providers = {"xlmr-ds", "sdpa", "eager"} | ({"xlmr-ds varlen"} if padding else set())
        assert {p for (s, d, pad, ps, p) in measured if (s, d, pad, ps) == (seq, head_dim, padding, passes)} == providers
    assert all(r["median_ms"] > 0 and r["tflops"] > 0 for r in rows)
    assert all(r["speedup_vs_sdpa"] == pytest.approx(1.0) for r in rows if r["provider"] == "sdpa")
    assert all((r["peak_memory_mib"] is not None) == torch.cuda.is_available() for r in rows)
    assert "vs sdpa" in result.stdout  # the table a person reads
