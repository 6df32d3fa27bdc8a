"""Faults survived: real processes killed, hung, preempted, out of disk or fed a NaN, each bounded in time.

The promise: a run never loses more than the work since its last complete checkpoint, never resumes from a
broken one, and never hangs forever. Faults are placed with XLMR_DS_FAULT (tests/plugins/xlmr_ds_faults.py) so that they
hit a known step; the kills themselves come from outside, as they do in real life.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from jobs import errors
from launch import environment, losses, train

from xlmr_ds.engine.checkpoint import MARKER, list_checkpoints
from xlmr_ds.engine.export import load_checkpoint_model
from xlmr_ds.engine.metrics import read_metrics

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]
CONFIGS = Path(__file__).parents[2] / "ds_configs"


def complete_steps(save: Path) -> list[int]:
    return [c.step for c in list_checkpoints(save) if c.complete]


def test_a_killed_rank_ends_the_job_at_once_and_a_restart_resumes_exactly(jobs, training_args, unbroken_runs,
                                                                           tmp_path):
    save = tmp_path / "run"
    # Rank 1 stops at the start of step 3, after checkpoint 2; rank 0 waits for it in a collective.
    job = jobs.start(training_args(2, save, 4, "--save-every", "2"), env={"XLMR_DS_FAULT": "step:3:1:stall"})
    job.wait_for_output("step:3 rank 1: stall")
    os.kill(job.rank_pid(1), signal.SIGKILL)
    killed = time.monotonic()
    assert job.wait(timeout=120) != 0
    assert time.monotonic() - killed < 45, "the surviving rank did not end soon after its peer died"
    assert "Traceback" not in job.output()
    assert any("lost contact with another process of the job during step 3" in e and "step_00000002" in e
               for e in job.errors()), job.output()[-2000:]

    result = train(training_args(2, save, 4))
    assert f"resumed from {save / 'step_00000002'} at step 2" in result.stdout + result.stderr
    assert losses(save) == losses(unbroken_runs(2))


def test_a_hung_rank_ends_the_others_within_the_timeout_even_without_a_launcher(jobs, training_args, tmp_path):
    # No launcher to notice anything, as for ranks on other nodes: only rank 0's own watchdog can end it.
    ranks = jobs.start_ranks(training_args(2, tmp_path / "run", 4, "--dist-timeout-minutes", "0.25"),
                             env={"XLMR_DS_FAULT": "step:3:1:stall"})
    ranks[1].wait_for_output("step:3 rank 1: stall")
    os.kill(ranks[1].pid, signal.SIGSTOP)  # hung for good, as a frozen node: its sockets stay open
    hung = time.monotonic()
    assert ranks[0].wait(timeout=120) == 124
    assert 15 - 5 < time.monotonic() - hung < 15 + 30
    assert len(ranks[0].errors()) == 1 and re.fullmatch(
        r"xlmr-ds train: error: no progress for \d+ s during step 3 \(limit 15 s, --dist-timeout-minutes\): "
        r"another process of the job has probably died or hangs; exiting so that the job can be restarted, "
        r"it resumes from the newest complete checkpoint", ranks[0].errors()[0]), ranks[0].output()[-2000:]
    assert "[rank 0] xlmr-ds train: error: no progress" in ranks[0].output()
    assert "Traceback" not in ranks[0].output()


def test_a_job_killed_while_saving_resumes_from_the_previous_checkpoint(jobs, training_args, unbroken_runs, tmp_path):
    save = tmp_path / "run"
    job = jobs.start(training_args(2, save, 4, "--save-every", "1"), env={"XLMR_DS_FAULT": "save:3:0:stall"})
    job.wait_for_output("save:3 rank 0: stall")  # DeepSpeed's files of step 3 are written, the marker is not
    job.kill()  # kill -9 of the launcher and every rank
    partial = save / "step_00000003"
    assert partial.is_dir() and any(partial.iterdir()) and not (partial / MARKER).exists()
    assert complete_steps(save) == [1, 2]

    result = train(training_args(2, save, 4))
    output = result.stdout + result.stderr
    assert f"ignoring incomplete checkpoint {partial} (no {MARKER}: its save did not finish); removing it" in output
    assert f"resumed from {save / 'step_00000002'} at step 2" in output
    assert losses(save) == losses(unbroken_runs(2))
    assert [c.step for c in list_checkpoints(save)] == complete_steps(save) == [1, 2, 4]


def test_sigterm_saves_a_checkpoint_and_the_resumed_run_is_exact(jobs, training_args, unbroken_runs, tmp_path):
    save = tmp_path / "run"
    # Both ranks pause 3 s before step 2, so that the signal arrives at a known step. (tests/engine covers a
    # single plain process; here two ranks under the deepspeed launcher.)
    job = jobs.start(training_args(2, save, 4), env={"XLMR_DS_FAULT": "step:2:*:sleep3"})
    job.wait_for_output("step:2 rank 0: sleep3")
    processes = job.processes()
    # Preemption as SLURM does it: SIGTERM to every process of the job. (The `deepspeed` runner alone does
    # not forward a SIGTERM on one node: it dies and leaves its ranks running; see docs/training.md.)
    os.killpg(job.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(processes, timeout=120)
    assert not alive
    output = job.output()
    assert "stop requested (SIGTERM/SIGINT): saving at step 2 and exiting" in output
    assert f"saved {save / 'step_00000002'}" in output
    assert job.errors() == [] and "Traceback" not in output
    assert complete_steps(save) == [2]

    train(training_args(2, save, 4))
    assert losses(save) == losses(unbroken_runs(2))


def _finetune_job_args(pretrained_hf: Path, root: Path, out: Path, *extra: str) -> list[str]:
    """A two-label sentence task of 64 examples: 2 epochs of 8 steps at batch 8."""
    rows = "".join(f"{'good' if i % 2 else 'bad'} film number {i}\t{'pos' if i % 2 else 'neg'}\n" for i in range(64))
    (root / "train.en.tsv").write_text(rows)
    return ["--task", "sequence-classification", "--model", str(pretrained_hf), "--train", str(root / "train.en.tsv"),
            "--test", f"en={root / 'train.en.tsv'}", "--out", str(out), "--epochs", "2", "--batch-size", "8", *extra]


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def test_sigterm_ends_a_finetune_in_one_line_and_leaves_an_earlier_result_as_it_was(jobs, pretrained_hf, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text('{"an earlier": "result"}\n')
    args = _finetune_job_args(pretrained_hf, tmp_path, out)
    before = _files(out)
    # Both ranks pause 3 s before step 3, so that the signal arrives at a known step.
    job = jobs.start(args, env={"XLMR_DS_FAULT": "finetune-step:3:*:sleep3"}, module="xlmr_ds.finetune")
    job.wait_for_output("finetune-step:3 rank 0: sleep3")
    processes = job.processes()
    os.killpg(job.pid, signal.SIGTERM)  # preemption: SIGTERM to every process of the job
    _, alive = psutil.wait_procs(processes, timeout=120)
    assert not alive
    output = job.output()
    assert job.popen.returncode != 0 and "Traceback" not in output
    assert job.errors() and all(e.startswith("xlmr-ds finetune: error: stopped at step 3 of 16 (SIGTERM/SIGINT): "
                                             "fine-tuning keeps no checkpoints, so nothing was written") for e in
                                job.errors()), output[-3000:]
    assert _files(out) == before  # the earlier result intact, no staging directory left beside it
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_a_finetune_without_progress_ends_by_its_watchdog(jobs, pretrained_hf, tmp_path):
    args = _finetune_job_args(pretrained_hf, tmp_path, tmp_path / "out", "--dist-timeout-minutes", "0.05")
    job = jobs.start(args, processes=1, launcher="python", env={"XLMR_DS_FAULT": "finetune-step:2:*:stall"},
                     module="xlmr_ds.finetune")
    assert job.wait(timeout=120) == 124
    assert len(job.errors()) == 1 and re.fullmatch(
        r"xlmr-ds finetune: error: no progress for \d\.\d s during step 2 \(limit 3 s, --dist-timeout-minutes\): "
        r"another process of the job has probably died or hangs; exiting so that the job can be run again "
        r"\(fine-tuning keeps no checkpoints\)", job.errors()[0]), job.output()[-3000:]
    assert not (tmp_path / "out").exists()


@pytest.fixture
def small_disk(tmp_path, unbroken_runs):
    """A tmpfs with room for one checkpoint of the tiny model and its logs, not for two."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    checkpoint_bytes = sum(p.stat().st_size for p in (unbroken_runs(2) / "step_00000004").iterdir())
    mount = tmp_path / "disk"
    mount.mkdir()
    size_kib = int(checkpoint_bytes * 1.4) // 1024 + 512
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_during_a_save_is_one_line_and_the_previous_checkpoint_resumes_exactly(
        small_disk, training_args, unbroken_runs, tmp_path):
    save = small_disk / "run"
    result = train(training_args(2, save, 4, "--save-every", "1"), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output
    full = (f"xlmr-ds train: error: saving checkpoint {save / 'step_00000002'} failed: no space left on the device "
            f"of {save}; free space there or point --save at a larger disk; the newest complete checkpoint, "
            f"{save / 'step_00000001'}, is intact and --resume auto uses it")
    lines = errors(output)
    assert full in lines, output[-3000:]
    # A rank whose own writes went through sees its peer leave.
    assert all(line == full or "lost contact with another process" in line for line in lines), lines
    assert [c.step for c in list_checkpoints(save)] == [1, 2] and complete_steps(save) == [1]

    copy = tmp_path / "copy"  # the next start, once there is space
    shutil.copytree(save, copy)
    result = train(training_args(2, copy, 4))
    output = result.stdout + result.stderr
    assert f"ignoring incomplete checkpoint {copy / 'step_00000002'}" in output
    assert f"resumed from {copy / 'step_00000001'} at step 1" in output
    assert losses(copy) == losses(unbroken_runs(2))


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    info = next(c for c in list_checkpoints(checkpoint.parent) if c.path == checkpoint)
    return load_checkpoint_model(info).state_dict()


def test_nan_loss_with_skip_leaves_the_model_unchanged_and_counts_the_step(training_args, unbroken_runs, tmp_path):
    save = tmp_path / "run"
    # One rank's loss turns NaN in step 3 (learning rate 1e-4 there, so an applied step would change weights).
    train(training_args(2, save, 4, "--save-every", "1", "--nonfinite-loss", "skip"),
          extra_env={"XLMR_DS_FAULT": "loss:3:1:nan"})
    records = read_metrics(save / "metrics.jsonl")
    assert [(r["step"], r["skipped"], r["skipped_steps"]) for r in records] == [
        (1, False, 0), (2, False, 0), (3, True, 1), (4, False, 1)]
    assert np.isnan(records[2]["loss"]) and np.isfinite(records[3]["loss"])
    assert [r["loss"] for r in records[:2]] == losses(unbroken_runs(2))[:2]
    before, skipped, after = (weights(save / f"step_0000000{k}") for k in (2, 3, 4))
    assert all(torch.equal(before[name], skipped[name]) for name in before)
    assert not all(torch.equal(before[name], after[name]) for name in before)
    assert all(torch.isfinite(tensor).all() for tensor in after.values())


def test_nan_loss_with_stop_names_the_step_and_saves_nothing_after_it(training_args, tmp_path):
    save = tmp_path / "run"
    result = train(training_args(3, save, 4, "--save-every", "2"), check=False,
                   extra_env={"XLMR_DS_FAULT": "loss:3:0:nan"})
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output
    lines = errors(output)
    assert lines and set(lines) == {
        f"xlmr-ds train: error: the loss is nan at step 3 (not finite on 1 of 2 processes); stopping (--nonfinite-loss stop): DeepSpeed "
        f"skipped the update and nothing was saved after it; the newest complete checkpoint is "
        f"{save / 'step_00000002'}. Lower the learning rate or check the data, then resume (--resume auto), or pass "
        f"--nonfinite-loss skip to skip such steps"}, output[-3000:]
    assert [c.step for c in list_checkpoints(save)] == [2]


def run_python(code: str, *args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = environment()
    if fault:
        env["XLMR_DS_FAULT"] = fault
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, env=env)


CLI = "import sys; from xlmr_ds.cli.main import main; sys.exit(main(sys.argv[1:]))"
BINARIZE = "import sys; from xlmr_ds.cli.main import main; sys.exit(main(['binarize', '--no-progress', *sys.argv[1:]]))"


def test_a_killed_binarize_leaves_nothing_that_a_later_run_takes_for_complete(corpus_dir, spm_model, tmp_path):
    out = tmp_path / "out"
    args = ["--input", str(corpus_dir), "--spm", str(spm_model), "--out", str(out)]
    assert run_python(BINARIZE, *args).returncode == 0
    first = {p.name: p.read_bytes() for p in out.glob("*.[bi][id][nx]")}
    # A second run over the complete output is killed after rewriting 'el' (languages go in name order).
    killed = run_python(BINARIZE, *args, fault="binarize:el:0:kill")
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "manifest.json").exists()
    inspect = run_python(CLI, "data", "inspect", str(out / "en"))
    training = train(["--deepspeed_config", str(CONFIGS / "tiny_cpu_zero2.json"), "--data", str(out), "--steps", "1"],
                     processes=1, launcher="python", check=False)
    for result in (inspect, training):
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert f"manifest.json: not found; {out} is not a complete `xlmr-ds binarize` output" in result.stderr
    assert run_python(BINARIZE, *args).returncode == 0
    assert {p.name: p.read_bytes() for p in out.glob("*.[bi][id][nx]")} == first
    assert not (out / ".binarize-tmp").exists()


BUILD_INDEX = ("import sys; from xlmr_ds.dataset.loader import DataConfig, PretrainingData; "
               "data = PretrainingData(DataConfig(sys.argv[1], block_size=64)); "
               "print({lang: len(data.blocks[lang][0]) for lang in data.languages})")


def test_a_killed_index_build_leaves_nothing_that_a_later_run_takes_for_complete(binarized_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(binarized_dir, data, ignore=shutil.ignore_patterns(".index"))
    killed = run_python(BUILD_INDEX, str(data), fault="index:el:*:kill")
    assert killed.returncode == -signal.SIGKILL
    left = list((data / ".index").iterdir())
    assert left and all(not (d / "complete.json").exists() for d in left)  # only a staging directory
    rebuilt = run_python(BUILD_INDEX, str(data))
    assert rebuilt.returncode == 0, rebuilt.stderr
    fresh = run_python(BUILD_INDEX, str(binarized_dir))
    assert rebuilt.stdout == fresh.stdout
    # The killed build's staging directory is gone (its process is dead); only the complete cache remains.
    caches = list((data / ".index").iterdir())
    assert len(caches) == 1 and json.loads((caches[0] / "complete.json").read_text())["block_size"] == 64


@pytest.mark.parametrize("device", ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def test_fp16_nan_loss_is_skipped_by_the_loss_scaler(device, training_args, tmp_path):
    """The fp16 row of the policy table, run for real. On the CPU DeepSpeed's accelerator is told that fp16 is
    supported (tests/plugins/xlmr_ds_fp16_on_cpu.py says why that is sound); on a GPU nothing is overridden."""
    config = json.loads((CONFIGS / "tiny_cpu_zero2.json").read_text())
    config.update(train_batch_size=8, train_micro_batch_size_per_gpu=2, fp16={"enabled": True, "initial_scale_power": 8})
    extra_env = {"XLMR_DS_FAULT": "loss:3:0:nan"}
    if device == "cpu":
        extra_env["XLMR_DS_TEST_PLUGINS"] = "xlmr_ds_fp16_on_cpu"
    else:  # DeepSpeed's fused Adam, as a GPU run would use
        config["optimizer"]["params"].pop("torch_adam", None)
    path = tmp_path / "fp16.json"
    path.write_text(json.dumps(config))
    save = tmp_path / "run"
    result = train(training_args(2, save, 4, "--save-every", "1", "--deepspeed_config", str(path)), processes=1,
                   extra_env=extra_env)
    assert "step skipped (fp16 loss scaler)" in result.stdout + result.stderr
    records = read_metrics(save / "metrics.jsonl")
    assert [r["skipped"] for r in records] == [False, False, True, False]
    assert np.isfinite(records[3]["loss"])
    before, skipped = (weights(save / f"step_0000000{k}") for k in (2, 3))
    assert all(torch.equal(before[name], skipped[name]) for name in before)


BUILD = "import sys; from xlmr_ds.cli.main import main; sys.exit(main(['corpus', 'build', '--no-progress', *sys.argv[1:]]))"


def test_a_killed_corpus_build_leaves_nothing_that_a_later_run_takes_for_complete(tmp_path):
    from xlmr_ds.prep.demo.corpus import write_demo_corpus
    from xlmr_ds.prep.demo.crawl import write_demo_crawl

    write_demo_corpus(tmp_path / "source", seed=3, scale=0.05)
    write_demo_crawl(tmp_path / "source", tmp_path / "raw", shards=2, seed=3)
    args = ["--input", str(tmp_path / "raw"), "--out", str(tmp_path / "corpus")]
    assert run_python(BUILD, *args[:-1], str(tmp_path / "unbroken")).returncode == 0
    unbroken = {p.name: p.read_bytes() for p in (tmp_path / "unbroken").glob("*.txt")}
    killed = run_python(BUILD, *args, fault="build:identify:0:kill")  # SIGKILL: nothing after it runs
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "corpus" / "stats.json").exists() and (tmp_path / "corpus" / ".build-tmp").is_dir()
    refused = run_python(CLI, "spm", "train", "--input", str(tmp_path / "corpus"), "--out", str(tmp_path / "spm"),
                         "--vocab-size", "100")
    assert refused.returncode == 1 and "a corpus build into it did not finish" in refused.stderr
    assert run_python(BUILD, *args).returncode == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "corpus").glob("*.txt")} == unbroken
    assert not (tmp_path / "corpus" / ".build-tmp").exists()
