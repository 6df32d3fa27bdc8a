"""`xlmr-ds bench`: both implementations run on the same batches and the report carries what the issue names."""

import subprocess
import sys

import pytest

from xlmr_ds.model import preset
from xlmr_ds.tools.bench_worker import SyntheticBatches


@pytest.mark.parametrize("padding", [0.0, 0.15])
def test_synthetic_batches_are_deterministic_masked_and_padded_as_asked(padding):
    batches = SyntheticBatches(preset("tiny"), micro_batch=16, seq=128, padding=padding, seed=1, rank=0)
    first, again, other_rank = batches(3), batches(3), SyntheticBatches(preset("tiny"), 16, 128, padding, 1, 1)(3)
    assert all(first[key].equal(again[key]) for key in first)
    assert not first["input_ids"].equal(other_rank["input_ids"])
    share = 1 - first["attention_mask"].float().mean().item()
    assert abs(share - padding) < 0.06
    labelled = (first["labels"] != -100).float().sum() / first["attention_mask"].sum()
    assert 0.10 < labelled < 0.20


@pytest.mark.parametrize("args,message", [
    (["--micro-batch", "0"], "--micro-batch=0 must be at least 1"),
    (["--seq", "600"], "--seq=600 must be between 8 and 512"),
    (["--padding", "0.95"], "--padding=0.95 must be between 0 and 0.9"),
    (["--deepspeed_config", "/nonexistent.json"], "no such file"),
])
def test_bad_bench_arguments_fail_with_one_line(args, message):
    result = subprocess.run([sys.executable, "-m", "xlmr_ds", "bench", *args], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_runs_interleave_hf_and_ours_for_three_pairs_by_default():
    from xlmr_ds.cli.main import build_parser
    from xlmr_ds.tools.bench import Run, run_order

    assert build_parser().parse_args(["bench", "--compare", "hf"]).repeats == 3
    assert run_order(compare_hf=True, data_gap=False, repeats=3) == [Run("hf"), Run("xlmr-ds")] * 3
    assert run_order(compare_hf=True, data_gap=True, repeats=2) == [Run("hf"), Run("xlmr-ds"), Run("xlmr-ds", True)] * 2
    assert run_order(compare_hf=False, data_gap=False, repeats=3) == [Run("xlmr-ds")] * 3
