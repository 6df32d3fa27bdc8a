"""`xlmr-ds compare`: resource groups, group perplexities, and the alpha study's answer, from the runs' files."""

import json
import math
import subprocess
import sys

import pytest

from xlmr_ds.engine.checkpoint import MARKER
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.tools.compare import resource_groups, write_comparison


def make_run(root, name, data_dir, alpha, curves):
    """A finished run's files: metrics.jsonl with `eval` records of `curves` ({step: {language: loss}}) and a
    complete checkpoint whose marker records the data and alpha."""
    run = root / name
    (run / "step_00000010").mkdir(parents=True)
    marker = {"run_config": {"data": {"data_dir": str(data_dir), "alpha": alpha, "recipe": None}}}
    (run / "step_00000010" / MARKER).write_text(json.dumps(marker))
    records = [{"type": "train", "step": 1, "loss": 9.0}]
    records += [{"type": "eval", "step": step, "languages": {lang: {"loss": loss} for lang, loss in losses.items()}}
                for step, losses in curves.items()]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


@pytest.mark.parametrize("tokens, expected", [
    ({"a": 9, "b": 8, "c": 7, "d": 6, "e": 5, "f": 4}, {"high": ["a", "b"], "mid": ["c", "d"], "low": ["e", "f"]}),
    ({"a": 1, "b": 50, "c": 7, "d": 6}, {"high": ["b", "c"], "mid": ["d"], "low": ["a"]}),
    ({"x": 3, "y": 3, "z": 1}, {"high": ["x"], "mid": ["y"], "low": ["z"]}),
], ids=["six", "four: the first third takes the remainder", "ties by name"])
def test_resource_groups_are_thirds_by_tokens(tokens, expected):
    assert resource_groups(tokens) == expected


# binarized_dir's languages by tokens: en, ru | el, ar | hi, zh.
ALPHAS = {"alpha-1.0": (1.0, 2.0, 4.0), "alpha-0.7": (0.7, 2.1, 3.5), "alpha-0.3": (0.3, 2.3, 3.0)}


def losses_for(high, low):
    return {"en": high, "ru": high + 0.2, "el": 3.0, "ar": 3.1, "hi": low, "zh": low + 0.4}


def test_report_has_the_group_perplexities_and_answers_the_alpha_question(binarized_dir, tmp_path):
    runs = [make_run(tmp_path, name, binarized_dir, alpha, {5: losses_for(5.0, 6.0), 10: losses_for(high, low)})
            for name, (alpha, high, low) in ALPHAS.items()]
    out = write_comparison([str(r) for r in runs], tmp_path / "report" / "report.md").path
    text = out.read_text()
    # alpha 0.7: high = exp(mean(2.1, 2.3)), low = exp(mean(3.5, 3.9))
    assert f"| alpha-0.7 | {math.exp(2.2):.2f} | {math.exp(3.05):.2f} | {math.exp(3.7):.2f} |" in text
    assert "low-resource perplexity improves: **yes**" in text
    assert "high-resource perplexity degrades: **yes**" in text
    assert "high: en, ru; mid: el, ar; low: hi, zh" in text
    for group in ("high", "mid", "low"):
        assert (out.parent / f"compare_{group}.png").stat().st_size > 1000


def test_a_finding_the_numbers_do_not_show_is_reported_as_no(binarized_dir, tmp_path):
    runs = [make_run(tmp_path, "a", binarized_dir, 1.0, {10: losses_for(2.0, 3.0)}),
            make_run(tmp_path, "b", binarized_dir, 0.3, {10: losses_for(1.9, 3.2)})]
    text = write_comparison([str(r) for r in runs], tmp_path / "report.md").path.read_text()
    assert "low-resource perplexity improves: **no**" in text
    assert "high-resource perplexity degrades: **no**" in text


@pytest.mark.parametrize("make, expected", [
    (lambda tmp: tmp / "nothing", "no metrics.jsonl; expected a training --save directory"),
    (lambda tmp: (tmp / "r").mkdir() or (tmp / "r" / "metrics.jsonl").write_text('{"type": "eval", "step": 0}\n')
     and tmp / "r", "no training step recorded; expected the metrics.jsonl of a training run"),
], ids=["not a run", "no training"])
def test_a_directory_that_is_not_a_finished_run_is_refused(tmp_path, make, expected):
    with pytest.raises(XLMRDSError, match=expected):
        write_comparison([str(make(tmp_path))], tmp_path / "report.md")


def make_unvalidated_run(root, name, data_dir, train_losses):
    """A finished run trained without --eval-every: only `train` records."""
    run = make_run(root, name, data_dir, 0.3, {})
    (run / "metrics.jsonl").write_text("".join(json.dumps({"type": "train", "step": step, "loss": loss}) + "\n"
                                               for step, loss in enumerate(train_losses, start=1)))
    return run


# (name, runs as (name, validated?), what the report says, what it must not)
MIXES = [
    ("none validated", [("a", False), ("b", False)],
     ["| a | 12 | 6.2500 | 10 steps |", "| b | 12 | 5.2500 | 10 steps |", "Validation was not run in any of these runs",
      "| a | `", "| not validated |"], ["## Final validation perplexity"]),
    ("one of two validated", [("a", True), ("b", False)],
     ["Not validated (trained without --eval-every): b; they are compared on training loss only.",
      "| run | high | mid | low | all |", "| b | 12 | 5.2500 | 10 steps |"], ["Validation was not run"]),
]


@pytest.mark.parametrize("runs,expected,absent", [m[1:] for m in MIXES], ids=[m[0] for m in MIXES])
def test_runs_without_validation_are_compared_on_their_training_loss(binarized_dir, tmp_path, runs, expected,
                                                                      absent):
    # Training losses 10 - step/2 ("a") and 9 - step/2 ("b") over 12 steps: the last 10 average to 6.25 and 5.25.
    dirs = []
    for offset, (name, validated) in enumerate(runs):
        losses = [10.0 - offset - step / 2 for step in range(1, 13)]
        run = make_unvalidated_run(tmp_path, name, binarized_dir, losses)
        if validated:
            with open(run / "metrics.jsonl", "a") as metrics:
                metrics.write(json.dumps({"type": "eval", "step": 12, "languages": {
                    lang: {"loss": loss} for lang, loss in losses_for(2.0, 3.0).items()}}) + "\n")
        dirs.append(str(run))
    comparison = write_comparison(dirs, tmp_path / "report.md")
    text = comparison.path.read_text()
    for line in expected:
        assert line in text
    for line in absent:
        assert line not in text
    assert (tmp_path / "compare_train_loss.png").stat().st_size > 1000
    assert comparison.plots[0] == tmp_path / "compare_train_loss.png"


def test_reach_needs_a_validated_baseline(binarized_dir, tmp_path):
    runs = [make_run(tmp_path, "a", binarized_dir, 0.3, {10: losses_for(2.0, 3.0)}),
            make_unvalidated_run(tmp_path, "b", binarized_dir, [5.0, 4.0])]
    with pytest.raises(XLMRDSError, match=r"--reach hi: .*b \(the baseline, the last run\) was trained without "
                                          r"--eval-every"):
        write_comparison([str(r) for r in runs], tmp_path / "report.md", reach="hi")


def test_the_command_prints_the_finding(binarized_dir, tmp_path):
    runs = [make_run(tmp_path, name, binarized_dir, alpha, {10: losses_for(high, low)})
            for name, (alpha, high, low) in ALPHAS.items()]
    result = subprocess.run([sys.executable, "-m", "xlmr_ds", "compare", *map(str, runs), "--out",
                             str(tmp_path / "out" / "report.md"), "--names", "one", "seven", "three"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "low-resource perplexity improves: **yes**" in result.stdout
    assert "three (alpha 0.3)" in result.stdout


def test_reach_counts_the_steps_to_the_baselines_final_loss(binarized_dir, tmp_path):
    # mean init reaches hi's final loss of random init (3.0 at step 30) at step 10: 3x sooner; "slow" never does.
    # "dips" gets there at step 10, goes back above and stays from step 30.
    curves = {"mean": {0: 3.6, 10: 2.9, 20: 2.7, 30: 2.6}, "slow": {0: 4.0, 10: 3.9, 20: 3.8, 30: 3.7},
              "dips": {0: 3.6, 10: 2.9, 20: 3.1, 30: 2.9}, "random": {0: 4.5, 10: 3.8, 20: 3.2, 30: 3.0}}
    runs = [make_run(tmp_path, name, binarized_dir, 0.3, {step: losses_for(2.0, loss) for step, loss in c.items()})
            for name, c in curves.items()]
    text = write_comparison([str(r) for r in runs], tmp_path / "report.md", reach="hi").path.read_text()
    assert "Target: random's final validation loss on hi, 3.0000" in text
    assert "| mean | 10 | 3.00x | 10 | 3.00x |" in text and "| slow | not reached | - | not reached | - |" in text
    assert "| dips | 10 | 3.00x | 30 | 1.00x |" in text and "| random | 30 | 1.00x | 30 | 1.00x |" in text
    with pytest.raises(XLMRDSError, match="--reach xx: .* has no validation loss for xx"):
        write_comparison([str(r) for r in runs], tmp_path / "report.md", reach="xx")
