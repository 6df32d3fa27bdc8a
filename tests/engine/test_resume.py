"""Checkpoints resume exactly; on another world size they resume through DeepSpeed's universal format."""

import shutil

import pytest
from launch import consumed, losses, model_args, train

from xlmr_ds.engine.checkpoint import MARKER, list_checkpoints

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]


# (ZeRO stage, model): XLM-R at every stage; ModernBERT at ZeRO-3, whose initialization runs module by module.
RESUME_CASES = [(1, "tiny"), (2, "tiny"), (3, "tiny"), (3, "modern-tiny")]


@pytest.mark.parametrize("stage,model", RESUME_CASES)
def test_stopped_and_resumed_run_has_bit_identical_losses(stage, model, training_args, unbroken_runs, tmp_path):
    # torch AdamW ("torch_adam" in the tiny configs): DeepSpeed's CPU FusedAdam rounds differently on
    # freshly created and on loaded optimizer states, which breaks bit-identity (not correctness).
    reference = unbroken_runs(stage, model=model)
    train(training_args(stage, tmp_path, 2, *model_args(model)))
    train(training_args(stage, tmp_path, 4, *model_args(model)))
    assert losses(tmp_path) == losses(reference)
    assert consumed(tmp_path) == consumed(reference) == [8, 16, 24, 32]
    assert [c.step for c in list_checkpoints(tmp_path) if c.complete] == [2, 4]


# ZeRO-3 here; ZeRO-2 on another world size is test_recipe_runs.py's (with a recipe).
@pytest.mark.parametrize("stage", [3])
@pytest.mark.parametrize("before,after,model", [(2, 1, "tiny"), (1, 2, "tiny"), (2, 1, "modern-tiny")])
def test_resume_on_another_world_size_continues_the_same_samples(stage, before, after, model, training_args,
                                                                 unbroken_runs, tmp_path):
    reference = unbroken_runs(stage, model=model)
    train(training_args(stage, tmp_path, 2, *model_args(model)), processes=before)
    result = train(training_args(stage, tmp_path, 4, *model_args(model)), processes=after)
    assert "universal form" in result.stdout + result.stderr
    assert (tmp_path / "step_00000002" / "universal").is_dir()
    assert consumed(tmp_path) == [8, 16, 24, 32]
    # The same dropout masks (keyed by sample), another order of the gradient sums: equal to 1e-4.
    assert losses(tmp_path)[2:] == pytest.approx(losses(reference)[2:], rel=1e-4)


def test_an_incomplete_newest_checkpoint_is_ignored_and_reported(training_args, unbroken_runs, tmp_path):
    train(training_args(2, tmp_path, 2, "--save-every", "1"))
    (tmp_path / "step_00000002" / MARKER).unlink()  # as if killed during the save of step 2
    result = train(training_args(2, tmp_path, 4))
    output = result.stdout + result.stderr
    assert "ignoring incomplete checkpoint" in output and "step_00000002" in output
    assert "resumed from" in output and "step_00000001 at step 1" in output
    assert losses(tmp_path) == losses(unbroken_runs(2))


def _files(directory):
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.rglob("*")
            if p.is_file()}


@pytest.mark.parametrize("processes,launcher", [(2, "deepspeed"), (1, "python")],
                         ids=["same world size", "another world size"])
def test_a_rerun_with_nothing_left_to_train_changes_no_record(processes, launcher, training_args, unbroken_runs,
                                                              tmp_path):
    # The run is at its last step; a rerun with another setting must not rewrite sampling.json for steps it did
    # not train, add a summary line to metrics.jsonl, open monitor files or write a universal form, and says
    # what differs from the checkpoint.
    save = tmp_path / "run"
    shutil.copytree(unbroken_runs(2), save)
    before = _files(save)
    result = train([*training_args(2, save, 4), "--block-size", "32"], processes=processes, launcher=launcher)
    output = result.stdout + result.stderr
    assert "nothing to train" in output and "step_00000004 is at step 4 and this run has 4 steps" in output
    assert "settings changed since step_00000004: " in output and "data.block_size: 64 -> 32" in output, output
    assert _files(save) == before


def test_keep_deletes_older_checkpoints_only_after_a_newer_one_is_complete(training_args, tmp_path):
    train(training_args(2, tmp_path, 4, "--save-every", "1", "--keep", "2"))
    assert [c.step for c in list_checkpoints(tmp_path)] == [3, 4]


def test_mpiexec_and_the_deepspeed_launcher_train_identically(training_args, unbroken_runs, tmp_path):
    train(training_args(2, tmp_path, 4), processes=2, launcher="mpiexec")
    assert losses(tmp_path) == losses(unbroken_runs(2))


@pytest.mark.parametrize("model,steps", [("tiny", 10), ("modern-tiny", 4)])
def test_one_and_two_processes_train_the_same_run(model, steps, training_args, tmp_path):
    """World-size invariance: ZeRO-2, the same global batches on one plain process (4 micro-batches per step)
    and on two (2 each). XLM-R's dropout is keyed by sample (ModernBERT has none), so the losses differ only by
    the order of the gradient sums: within 1e-4 relative at every step."""
    one, two = tmp_path / "one", tmp_path / "two"
    train(training_args(2, one, steps, *model_args(model)), processes=1, launcher="python")
    train(training_args(2, two, steps, *model_args(model)), processes=2)
    assert consumed(one) == consumed(two) == [8 * step for step in range(1, steps + 1)]
    for step, (a, b) in enumerate(zip(losses(one), losses(two)), start=1):
        assert abs(a - b) <= 1e-4 * abs(b), f"step {step}: {a} on 1 process, {b} on 2"


def test_a_checkpoint_of_another_model_or_stage_is_refused(training_args, unbroken_runs, tmp_path):
    save = tmp_path / "run"
    shutil.copytree(unbroken_runs(2), save)
    result = train(training_args(3, save, 6), processes=1, launcher="python", check=False)
    assert result.returncode == 1
    assert "saved with ZeRO stage 2 but the config uses stage 3" in result.stderr
    config = tmp_path / "wide.json"
    config.write_text('{"hidden_size": 64, "num_layers": 2, "num_heads": 2, "ffn_size": 128}')
    args = training_args(2, save, 6)
    args[args.index("--model"):args.index("--model") + 2] = ["--model-config", str(config)]
    result = train(args, processes=1, launcher="python", check=False)
    assert result.returncode == 1
    assert "saved for another model (ffn_size 512 vs 128, hidden_size 128 vs 64" in result.stderr
    assert "Traceback" not in result.stderr
