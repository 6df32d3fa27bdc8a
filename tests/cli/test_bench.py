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


@pytest.mark.parametrize("task", ["pair-classification", "token-classification", "question-answering"])
def test_synthetic_batches_for_a_fine_tuning_task_carry_class_labels(task):
    from xlmr_ds.tools.bench import CLASSIFICATION_LABELS

    batch = SyntheticBatches(preset("tiny"), 8, 64, 0.2, seed=1, rank=0, task=task)(0)
    labels, mask = batch["labels"], batch["attention_mask"].bool()
    mask_id = preset("tiny").vocab_size - 1
    assert not batch["input_ids"].eq(mask_id).any()  # a fine-tuning input has no <mask>
    if task == "question-answering":  # an answer span inside each sequence's real tokens
        lengths = mask.sum(dim=1)
        assert labels.shape == (8, 2) and (labels[:, 0] <= labels[:, 1]).all() and (labels[:, 1] < lengths).all()
    elif task == "token-classification":
        assert labels.shape == batch["input_ids"].shape and labels[~mask].eq(-100).all()
        assert labels[mask].min() >= 0 and labels[mask].max() < CLASSIFICATION_LABELS
    else:
        assert labels.shape == (8,) and 0 <= labels.min() and labels.max() < CLASSIFICATION_LABELS


@pytest.mark.parametrize("model", ["tiny", "modern-tiny"])
@pytest.mark.parametrize("task", ["masked-lm", "pair-classification", "token-classification", "question-answering"])
def test_both_implementations_build_the_same_model_for_each_task(task, model):
    from xlmr_ds.model.architectures import preset_config
    from xlmr_ds.tools.bench_worker import build_model

    ours, theirs = (build_model(impl, preset_config(model), False, task) for impl in ("xlmr-ds", "hf"))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    assert type(theirs).__name__.endswith({"masked-lm": "MaskedLM", "pair-classification": "SequenceClassification",
                                           "token-classification": "TokenClassification",
                                           "question-answering": "QuestionAnswering"}[task])


@pytest.mark.slow
@pytest.mark.parametrize("task,model", [("pair-classification", "tiny"), ("question-answering", "tiny"),
                                        ("masked-lm", "modern-tiny")])
def test_the_bench_prints_the_ratio_last(tmp_path, task, model):
    import json

    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "xlmr_ds", "bench", "--task", task, "--model", model, "--seq", "32",
                             "--micro-batch", "4", "--steps", "2", "--warmup-steps", "1", "--repeats", "1",
                             "--compare", "hf", "--padding", "0.2", "--json", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("ratio: ") and last.endswith(" (xlmr-ds / hf)")
    report = json.loads(out.read_text())
    assert [r["task"] for r in report["results"]] == [task] * 2
    assert report["results"][0]["parameters"] == report["results"][1]["parameters"]
    assert float(last.split()[1]) == pytest.approx(report["ratio"], abs=0.005)
