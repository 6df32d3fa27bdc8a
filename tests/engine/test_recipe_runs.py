"""Training with a recipe: phases change languages, alpha, mask rate, block size, batch size and learning rate,
and a run stopped anywhere (inside a phase, exactly at a boundary) resumes bit-identically, on ZeRO 1/2/3; on
another number of processes it continues the same samples with the same dropout masks."""

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from launch import consumed, losses, model_args, train

from xlmr_ds.engine.metrics import read_metrics

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

# Six steps: a warmup phase of short blocks, then a phase with more languages, longer blocks, a lower mask rate,
# a batch that grows from 8 to 16 and a 1-sqrt decay. Batch sizes are multiples of micro 2 x 2 processes.
RECIPE = {"phases": [
    {"name": "short", "steps": 3, "alpha": 0.7, "languages": ["en", "ru", "el"], "mask_prob": 0.3, "block_size": 32,
     "lr": {"shape": "warmup", "end": 0.002}},
    {"name": "long", "steps": 3, "alpha": {"start": 0.5, "end": 0.3}, "mask_prob": 0.1, "block_size": 64,
     "languages": ["en", "ru", "el", "ar", "hi", "zh"], "batch_size": {"start": 8, "end": 16, "multiple": 4},
     "lr": {"shape": "1-sqrt"}},
]}
STEPS = 6
BATCHES = [8, 8, 8, 8, 12, 16]


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("recipe") / "two_phases.json"
    path.write_text(json.dumps(RECIPE))
    return path


@pytest.fixture(scope="module")
def unbroken_recipe_runs(training_args, recipe_file, tmp_path_factory):
    """Per ZeRO stage and model, the recipe trained in one go on 2 processes, saving after every step: the
    reference, and the checkpoints that the stopped runs below continue from."""
    cache = {}

    def get(stage: int, model: str = "tiny"):
        if (stage, model) not in cache:
            save = tmp_path_factory.mktemp(f"recipe-unbroken-z{stage}-{model}")
            train(training_args(stage, save, STEPS, "--recipe", str(recipe_file), "--save-every", "1",
                                *model_args(model)))
            cache[stage, model] = save
        return cache[stage, model]
    return get


def stopped_at(reference, step: int, save):
    """`save` as a run of the reference's recipe stopped after `step` leaves it: that step's checkpoint and the
    metrics up to it (a checkpoint saved mid-run holds what one saved on exit holds)."""
    tag = f"step_{step:08d}"
    shutil.copytree(reference / tag, save / tag)
    records = [line for line in (reference / "metrics.jsonl").read_text().splitlines() if json.loads(line)["step"] <= step]
    (save / "metrics.jsonl").write_text("".join(line + "\n" for line in records))
    return save / tag


def train_records(save):
    return read_metrics(save / "metrics.jsonl")


@pytest.mark.parametrize("stage,model", [(1, "tiny"), (2, "tiny"), (3, "tiny"), (2, "modern-tiny")])
def test_stopped_inside_a_phase_and_at_its_boundary_resumes_bit_identically(stage, model, training_args, recipe_file,
                                                                            unbroken_recipe_runs, tmp_path):
    reference = unbroken_recipe_runs(stage, model)
    records = train_records(reference)
    assert [r["phase"] for r in records] == ["short"] * 3 + ["long"] * 3
    assert [r["batch_size"] for r in records] == BATCHES
    assert [r["lr"] for r in records] == pytest.approx([0.002 / 3, 0.004 / 3, 0.002, 0.002,
                                                        0.002 * (1 - (1 / 3) ** 0.5), 0.002 * (1 - (2 / 3) ** 0.5)])
    for step in (2, 3):  # inside the first phase, and exactly at its end
        resumed = tmp_path / f"from-{step}"
        stopped_at(reference, step, resumed)
        result = train(training_args(stage, resumed, STEPS, "--recipe", str(recipe_file), *model_args(model)))
        assert f"at step {step}" in result.stdout + result.stderr
        assert losses(resumed) == losses(reference)
        assert [r["lr"] for r in train_records(resumed)] == [r["lr"] for r in records]
        assert consumed(resumed) == consumed(reference)


def test_the_run_writes_what_each_phase_draws(unbroken_recipe_runs):
    report = json.loads((unbroken_recipe_runs(2) / "sampling.json").read_text())
    short, long = report["phases"]
    assert set(short["languages"]) <= {"en", "ru", "el"} and short["samples"] == 24
    assert long["samples"] == 8 + 12 + 16 and long["block_size"] == 64
    assert sum(v["samples"] for v in long["languages"].values()) == 36


@pytest.mark.parametrize("before, after", [(2, 1), (1, 2)])
def test_resume_on_another_world_size_continues_the_recipes_samples(before, after, training_args, recipe_file,
                                                                    unbroken_recipe_runs, tmp_path):
    reference = unbroken_recipe_runs(2)
    if before == 2:
        stopped_at(reference, 4, tmp_path)
    else:
        train(training_args(2, tmp_path, STEPS, "--recipe", str(recipe_file), "--exit-at-step", "4"), processes=1)
    result = train(training_args(2, tmp_path, STEPS, "--recipe", str(recipe_file)), processes=after)
    assert "universal form" in result.stdout + result.stderr
    assert consumed(tmp_path) == consumed(reference)
    assert [r["lr"] for r in train_records(tmp_path)] == [r["lr"] for r in train_records(reference)]
    # The same dropout masks (keyed by sample), another order of the gradient sums: equal to 1e-4.
    assert losses(tmp_path) == pytest.approx(losses(reference), rel=1e-4)


def test_decay_branches_from_one_stable_checkpoint_run_side_by_side(training_args, recipe_file, unbroken_recipe_runs,
                                                                    tmp_path):
    reference = unbroken_recipe_runs(2)
    source = tmp_path / "source"
    stable = stopped_at(reference, 3, source)
    before = sorted((p.relative_to(source), p.stat().st_mtime_ns) for p in source.rglob("*"))
    linear = json.loads(json.dumps(RECIPE))
    linear["phases"][1]["lr"] = {"shape": "linear", "end": 0.0005}
    other_recipe = tmp_path / "linear_decay.json"
    other_recipe.write_text(json.dumps(linear))
    branches = {"same": (tmp_path / "same", recipe_file), "linear": (tmp_path / "linear", other_recipe)}
    with ThreadPoolExecutor(2) as pool:  # both at once, from the same checkpoint
        results = list(pool.map(lambda b: train(training_args(2, b[0], STEPS, "--recipe", str(b[1]),
                                                              "--branch-from", str(stable))), branches.values()))
    assert all("branching from" in r.stdout + r.stderr for r in results)
    assert sorted((p.relative_to(source), p.stat().st_mtime_ns) for p in source.rglob("*")) == before
    # The same recipe from the stable checkpoint is the unbroken run; its curve starts with the source's steps.
    same, other = (branches[name][0] for name in ("same", "linear"))
    assert losses(same) == losses(reference)
    assert json.loads((same / "branch.json").read_text()) == {"branch_from": str(stable.resolve()), "step": 3}
    # Another decay: the same first three steps and data, its own learning rates after them.
    # Both decays start at the stable rate: the losses part at step 6, after the first update that differs.
    assert losses(other)[:5] == losses(reference)[:5] and losses(other)[5] != losses(reference)[5]
    assert consumed(other) == consumed(reference)
    assert [r["lr"] for r in train_records(other)][3:] == pytest.approx([0.002, 0.002 - 0.0015 / 3,
                                                                         0.002 - 0.003 / 3])
