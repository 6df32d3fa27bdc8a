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
@pytest.mark.parametrize("window", [None, 8], ids=["full", "sliding window"])
def test_the_sweep_measures_every_provider_pass_and_shape(window, tmp_path):
    out = tmp_path / "sweep.json"
    extra = [] if window is None else ["--window", str(window)]
    result = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out), *extra], capture_output=True,
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
    assert report["window"] == window and all(r["window"] == window for r in rows)


@pytest.mark.parametrize("window", [0, 3, 100])
def test_the_mask_sdpa_and_eager_get_is_the_kernels_window(window):
    """Without dropout, SDPA with the sweep's additive mask computes what our windowed kernel computes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kernel_sweep", SCRIPT)
    sweep = importlib.util.module_from_spec(spec)
    sys.modules["kernel_sweep"] = sweep  # dataclasses look their module up there
    spec.loader.exec_module(sweep)
    generator = torch.Generator().manual_seed(window)
    q, k, v = (torch.randn(2, 2, 20, 32, generator=generator) for _ in range(3))
    mask = torch.ones(2, 20, dtype=torch.long)
    mask[1, 13:] = 0
    bias = sweep.window_bias(mask, 20, window, q.dtype, q.device)
    expected = sweep.flash_attention(q, k, v, mask, window=window)
    got = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(got[1, :, :13], expected[1, :, :13], rtol=0, atol=1e-5)
