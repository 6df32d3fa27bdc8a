"""What a run leaves behind and how it ends: metrics, monitors, preemption, export, continued pretraining."""

import json
import signal
import subprocess
import time

import pytest
import torch
from launch import consumed, losses, model_args, train, train_command
from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

from xlmr_ds.engine.checkpoint import list_checkpoints
from xlmr_ds.engine.export import choose_checkpoint, load_checkpoint_model
from xlmr_ds.engine.metrics import read_metrics
from xlmr_ds.tokenizer import XLMRTokenizer

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]


def test_metrics_jsonl_and_monitors(unbroken_runs):
    save = unbroken_runs(2)
    records = read_metrics(save / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    for record in records:
        assert {"loss", "lr", "grad_norm", "consumed_samples", "tokens", "tokens_per_s", "mfu"} <= set(record)
        assert record["tokens"] > 0 and record["tokens_per_s"] > 0
    # DeepSpeed's WarmupDecayLR: the first two steps run at warmup_min_lr (0), then linear warmup over 10 steps.
    assert [r["lr"] for r in records] == pytest.approx([0.0, 0.0, 1e-4, 2e-4])
    assert list((save / "monitor").rglob("events.out.tfevents.*")), "no TensorBoard events"
    assert list((save / "monitor").rglob("*.csv")), "no CSV monitor output"


def test_sigterm_saves_a_checkpoint_and_the_resumed_run_is_exact(training_args, unbroken_runs, tmp_path):
    reference = unbroken_runs(2, 1, "python")
    command, env = train_command("python", 1, training_args(2, tmp_path, 400))
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count('"train"') >= 1):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert "stop requested (SIGTERM/SIGINT)" in output
    saved = [c for c in list_checkpoints(tmp_path) if c.complete]
    assert len(saved) == 1 and 1 <= saved[0].step < 400
    train(training_args(2, tmp_path, 4), processes=1, launcher="python")
    assert losses(tmp_path) == losses(reference)
    assert consumed(tmp_path) == [8, 16, 24, 32]


@pytest.mark.parametrize("stage,model", [(2, "tiny"), (3, "tiny"), (3, "modern-tiny")])
def test_export_writes_a_hugging_face_model_with_our_logits(stage, model, unbroken_runs, binarized_dir, spm_model,
                                                            tmp_path):
    save = unbroken_runs(stage, model=model)
    result = subprocess.run(["xlmr-ds", "export", "--ckpt", str(save), "--out", str(tmp_path / "hf")],
                            capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode == 0, result.stderr
    ours = load_checkpoint_model(choose_checkpoint(save, None))
    theirs = AutoModelForMaskedLM.from_pretrained(tmp_path / "hf").eval()
    tokenizer = XLMRTokenizer(spm_model)
    ids = torch.tensor([[0, *tokenizer.encode("first document line one.").tolist(), 2]])
    with torch.no_grad():
        torch.testing.assert_close(theirs(input_ids=ids).logits, ours(ids).logits, rtol=0, atol=1e-5)
    hf_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf_tokenizer.mask_token_id == tokenizer.mask_id
    predictions = pipeline("fill-mask", model=str(tmp_path / "hf"), tokenizer=str(tmp_path / "hf"))(
        "line two of the <mask> document.")
    assert len(predictions) == 5 and all("sequence" in p for p in predictions)


@pytest.mark.parametrize("model", ["tiny", "modern-tiny"])
def test_continued_pretraining_starts_from_the_exported_weights(model, training_args, binarized_dir, tmp_path):
    first = tmp_path / "first"
    train(training_args(2, first, 3, "--eval-every", "3", *model_args(model)))
    subprocess.run(["xlmr-ds", "export", "--ckpt", str(first), "--out", str(tmp_path / "hf")], check=True,
                   capture_output=True, timeout=300, env=_env())
    second = tmp_path / "second"
    train(training_args(2, second, 1, "--eval-every", "1", "--init-from", str(tmp_path / "hf"), *model_args(model)))
    after_first = read_metrics(first / "metrics.jsonl", "eval")[-1]["languages"]
    before_second = read_metrics(second / "metrics.jsonl", "eval")[0]["languages"]
    for language, result in after_first.items():
        assert before_second[language]["loss"] == pytest.approx(result["loss"], abs=1e-5)
        # The same held-out masked tokens and the same context-free guess, whichever run measures them.
        assert before_second[language]["accuracy"] == result["accuracy"]
        assert before_second[language]["accuracy_context_free"] == result["accuracy_context_free"]
    # The held-out word probes: chosen by the same seeded rule in both runs, asked of the same weights.
    probes_after_first = read_metrics(first / "metrics.jsonl", "eval")[-1]["word_probes"]
    probes_before_second = read_metrics(second / "metrics.jsonl", "eval")[0]["word_probes"]
    assert len(probes_after_first) == 4 and [p["rank"] for p in probes_before_second] == \
        [p["rank"] for p in probes_after_first]
    assert [p["word"] for p in probes_before_second] == [p["word"] for p in probes_after_first]


BAD_TRAIN_ARGS = [
    (["--steps", "-1"], "argument --steps: -1 must be at least 1"),
    (["--model", "huge"], "invalid choice: 'huge'"),
    (["--resume", "/nonexistent/step_00000001"], "not a checkpoint directory"),
]


@pytest.mark.parametrize("extra,message", BAD_TRAIN_ARGS)
def test_bad_training_arguments_fail_with_one_line(extra, message, training_args, tmp_path):
    args = training_args(2, tmp_path, 2)
    for flag in ("--steps", "--model"):
        if flag in extra:
            index = args.index(flag)
            del args[index:index + 2]
    result = train(args + extra, processes=1, launcher="python", check=False)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_ckpt_list_shows_complete_and_incomplete_checkpoints(unbroken_runs, tmp_path):
    import shutil

    save = tmp_path / "run"
    shutil.copytree(unbroken_runs(2), save)
    (save / "step_00000004" / "xlmr_ds_checkpoint.json").unlink()
    result = subprocess.run(["xlmr-ds", "ckpt", "list", str(save)], capture_output=True, text=True, env=_env())
    lines = result.stdout.splitlines()
    assert any(line.startswith("step_00000004") and "INCOMPLETE" in line for line in lines)
    assert "world size" in lines[0]


def _env():
    from launch import environment

    return environment()


def test_eval_gives_the_same_table_from_the_checkpoint_and_from_the_export(unbroken_runs, binarized_dir, tmp_path):
    import csv

    save = unbroken_runs(2)
    subprocess.run(["xlmr-ds", "export", "--ckpt", str(save), "--out", str(tmp_path / "hf")], check=True,
                   capture_output=True, timeout=300, env=_env())
    tables = []
    for source in (["--ckpt", str(save)], ["--hf", str(tmp_path / "hf"), "--block-size", "64"]):
        out = tmp_path / f"eval{len(tables)}.json"
        result = subprocess.run(["xlmr-ds", "eval", *source, "--data", str(binarized_dir), "--samples", "16",
                                 "--json", str(out), "--csv", str(out.with_suffix(".csv")), "--shuffled-order"],
                                capture_output=True, text=True, timeout=300, env=_env())
        assert result.returncode == 0, result.stderr
        assert "perplexity" in result.stdout and "accuracy" in result.stdout
        tables.append(json.loads(out.read_text())["languages"])
        rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
        assert {row["language"] for row in rows} == set(tables[-1])
        assert "word order is worth" in result.stdout and all(float(row["loss_shuffled_order"]) > 0 for row in rows)
    assert tables[0].keys() == tables[1].keys() and len(tables[0]) == 6
    for language in tables[0]:
        for key in ("loss", "loss_shuffled_order"):
            assert tables[1][language][key] == pytest.approx(tables[0][language][key], abs=1e-5)
        assert 0.0 <= tables[0][language]["accuracy"] <= 1.0


def test_ckpt_universal_converts_a_checkpoint_for_another_world_size(unbroken_runs, tmp_path):
    import shutil

    save = tmp_path / "run"
    shutil.copytree(unbroken_runs(2), save)
    result = subprocess.run(["xlmr-ds", "ckpt", "universal", str(save / "step_00000004")], capture_output=True,
                            text=True, timeout=300, env=_env())
    assert result.returncode == 0, result.stderr
    universal = save / "step_00000004" / "universal"
    assert (universal / ".complete").exists() and (universal / "zero").is_dir()
    assert [c.step for c in list_checkpoints(save)] == [4]  # not listed as a checkpoint of its own


def test_a_finished_job_leaves_no_shared_memory_behind(training_args, tmp_path):
    from pathlib import Path

    def segments():
        return {p.name for p in Path("/dev/shm").glob("deepspeed_allreduce_buffer_*")}

    before = segments()
    train(training_args(2, tmp_path, 1))
    assert segments() - before == set()
