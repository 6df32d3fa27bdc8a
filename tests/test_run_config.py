"""The run's settings (xlmr_ds/config.py): one typed config, what a resumed run reports as changed, the rules
it holds itself to (the same in Python as on the command line), and the train flags made from its fields."""

import argparse
import dataclasses
import typing
from dataclasses import replace

import pytest

from xlmr_ds.cli.arguments import field_default, field_docs, field_help, literal_choices
from xlmr_ds.cli.train import FLAGS, add_arguments, run_config
from xlmr_ds.config import (
    CheckpointSettings,
    LoggingSettings,
    ModelSettings,
    OptimizationSettings,
    PolicySettings,
    RunConfig,
)
from xlmr_ds.dataset.config import DataConfig
from xlmr_ds.errors import XLMRDSError


def test_a_resumed_run_names_the_settings_that_changed():
    saved = RunConfig(DataConfig("data"), OptimizationSettings("ds.json", 4, exit_at_step=2))
    resumed = replace(saved, optimization=OptimizationSettings("ds.json", 6),
                      checkpointing=CheckpointSettings(save_every=2))
    assert resumed.changes_since(saved.to_dict()) == [
        "checkpointing.save_every: 0 -> 2", "optimization.exit_at_step: 2 -> None", "optimization.steps: 4 -> 6"]
    assert saved.changes_since(saved.to_dict()) == []


def _settings_classes():
    import xlmr_ds.config
    import xlmr_ds.dataset.config
    import xlmr_ds.tasks.settings

    for module in (xlmr_ds.config, xlmr_ds.dataset.config, xlmr_ds.tasks.settings):
        yield from (value for value in vars(module).values()
                    if dataclasses.is_dataclass(value) and value.__module__ == module.__name__)


def test_every_setting_has_a_docstring():
    """The docstrings are the flags' help (cli/arguments.py field_help), so none may be missing."""
    for settings in _settings_classes():
        for field in dataclasses.fields(settings):
            assert field_docs(settings).get(field.name), f"{settings.__name__}.{field.name} has no docstring"


def _run(**changes) -> RunConfig:
    """A valid RunConfig with some of its groups (or loader_workers) replaced."""
    return RunConfig(**{"data": DataConfig("data"), "optimization": OptimizationSettings("ds.json", 4), **changes})


# (id, settings built in Python, the error's whole message: the one the command line prints after
# "xlmr-ds train: error: ")
INVALID_SETTINGS = [
    ("no steps without a recipe", lambda: _run(optimization=OptimizationSettings("ds.json", None)),
     "--steps is required (or a --recipe, whose phases give the run's length)"),
    ("steps below 1", lambda: OptimizationSettings("ds.json", -1), "--steps=-1 must be at least 1"),
    ("exit at step 0", lambda: OptimizationSettings("ds.json", 4, exit_at_step=0), "--exit-at-step=0 must be at least 1"),
    ("a branch without a save directory", lambda: CheckpointSettings(branch_from="other/step_00000002"),
     "--branch-from needs --save: a branch is a run of its own, in a directory of its own"),
    ("a branch and a resume", lambda: CheckpointSettings("run", resume="none", branch_from="other/step_00000002"),
     "--branch-from and --resume none both say where to start; give one"),
    ("save every -1", lambda: CheckpointSettings(save_every=-1), "--save-every=-1 must be 0 or more"),
    ("keep -1", lambda: CheckpointSettings(keep=-1), "--keep=-1 must be 0 or more"),
    ("eval every -1", lambda: LoggingSettings(eval_every=-1), "--eval-every=-1 must be 0 or more"),
    ("no eval samples", lambda: LoggingSettings(eval_samples=0), "--eval-samples=0 must be at least 1"),
    ("peak TFLOP/s of 0", lambda: LoggingSettings(peak_tflops=0.0), "--peak-tflops=0.0 must be more than 0"),
    ("a timeout of 0", lambda: PolicySettings(dist_timeout_minutes=0), "--dist-timeout-minutes=0 must be more than 0"),
    ("an unknown non-finite policy", lambda: PolicySettings(nonfinite_loss="halt"),
     "--nonfinite-loss='halt' must be one of stop, skip"),
    ("an unknown dropout key", lambda: ModelSettings(dropout_keys="seed"),
     "--dropout-keys='seed' must be one of sample, rank"),
    ("an unknown preset", lambda: ModelSettings("huge"), "--model='huge' must be one of tiny, small, base, large, modernbert-base, "
                                                            "modernbert-large, mmbert-small, mmbert-base, modern-tiny"),
    ("no model shape", lambda: ModelSettings(None), "no model shape: give --model, --model-config or --init-from"),
    ("workers -1", lambda: _run(loader_workers=-1), "--num-workers=-1 must be 0 or more"),
    ("blocks shorter than 8", lambda: DataConfig("data", block_size=4), "--block-size=4 must be at least 8"),
    ("nothing held out", lambda: DataConfig("data", valid_fraction=0.0), "--valid-fraction=0.0 must be in (0, 1)"),
    ("everything held out", lambda: DataConfig("data", valid_fraction=1), "--valid-fraction=1 must be in (0, 1)"),
    ("alpha 0", lambda: DataConfig("data", alpha=0), "alpha=0 must be in (0, 1]"),
    ("every token masked", lambda: DataConfig("data", mask_prob=1.0), "mask_prob=1.0 must be in (0, 1)"),
]


@pytest.mark.parametrize("build,message", [case[1:] for case in INVALID_SETTINGS],
                         ids=[case[0] for case in INVALID_SETTINGS])
def test_settings_refuse_what_the_command_line_refuses(build, message):
    with pytest.raises(XLMRDSError) as error:
        build()
    assert str(error.value) == message


def test_replacing_a_setting_is_checked_as_building_it():
    with pytest.raises(XLMRDSError, match="--keep=-2"):
        replace(CheckpointSettings(), keep=-2)


def test_the_settings_that_go_together_are_accepted():
    assert _run(data=DataConfig("data", recipe="recipe.json"), optimization=OptimizationSettings("ds.json", None))
    assert _run(checkpointing=CheckpointSettings("run", branch_from="other/step_00000002"), loader_workers=0)
    assert ModelSettings(None, init_from="hf").preset is None and ModelSettings(None, "model.json")


# (id, the flags besides --deepspeed_config and --data, the INVALID_SETTINGS case whose message the command prints)
INVALID_FLAGS = [
    ("no --steps", [], "no steps without a recipe"),
    ("--branch-from without --save", ["--steps", "2", "--branch-from", "other/step_00000002"],
     "a branch without a save directory"),
    ("--branch-from and --resume", ["--steps", "2", "--save", "{tmp}/run", "--branch-from", "other/step_00000002",
                                    "--resume", "none"], "a branch and a resume"),
    ("--valid-fraction 0", ["--steps", "2", "--valid-fraction", "0"], "nothing held out"),
]


@pytest.mark.parametrize("flags,case", [case[1:] for case in INVALID_FLAGS], ids=[case[0] for case in INVALID_FLAGS])
def test_the_training_command_prints_the_settings_error_on_one_line(flags, case, tmp_path):
    """One process each (about 2 s: the job imports torch before it reads its settings)."""
    from launch import train  # tests/engine/launch.py

    message = {case[0]: case[2] for case in INVALID_SETTINGS}[case]
    args = ["--deepspeed_config", "ds.json", "--data", str(tmp_path / "data"),
            *(flag.format(tmp=tmp_path) for flag in flags)]
    result = train(args, processes=1, launcher="python", check=False, timeout=300)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert lines == [f"xlmr-ds train: error: {message}"], result.stderr
    assert "Traceback" not in result.stderr


PUBLIC_FLAGS = ["--deepspeed_config", "--data", "--model", "--model-config", "--steps", "--recipe", "--exit-at-step",
                "--save", "--metrics-file", "--save-every", "--eval-every", "--eval-samples", "--probe-languages", "--keep", "--seed",
                "--init-from", "--resume", "--branch-from", "--valid-fraction", "--block-size",
                "--activation-checkpointing", "--dropout-keys", "--num-workers", "--peak-tflops",
                "--dist-timeout-minutes", "--nonfinite-loss"]
"""The train command's flags, a public interface: scripts and launchers name them."""

WITHOUT_FLAGS = {(DataConfig, "alpha"), (DataConfig, "split_seed"), (DataConfig, "mask_prob")}
"""RunConfig's fields that only Python sets: a recipe's phases change the sampling and masking rates."""


def _leaf_fields(settings: type = RunConfig):
    """(settings class, field) of every setting of a run, inside its groups."""
    hints = typing.get_type_hints(settings)
    for field in dataclasses.fields(settings):
        if dataclasses.is_dataclass(hints[field.name]):
            yield from _leaf_fields(hints[field.name])
        else:
            yield settings, field.name


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def test_every_run_setting_has_one_flag_unless_only_python_sets_it():
    assert [flag.name for flag in FLAGS] == PUBLIC_FLAGS
    flagged = [(flag.settings, flag.field) for flag in FLAGS]
    assert len(set(flagged)) == len(flagged)
    assert set(flagged) | WITHOUT_FLAGS == set(_leaf_fields()) and not set(flagged) & WITHOUT_FLAGS


def test_each_flag_takes_its_default_help_and_choices_from_its_field():
    actions = _parser()._option_string_actions
    flag_names = {flag.field: flag.name for flag in FLAGS}
    for flag in FLAGS:
        action = actions[flag.name]
        # --model alone: not given is kept apart from the default preset (see FLAGS in cli/train.py).
        assert action.default == (None if flag.name == "--model" else field_default(flag.settings, flag.field))
        assert action.help == field_help(flag.settings, flag.field, flag_names)
        choices = literal_choices(flag.settings, flag.field)
        assert choices is None or tuple(action.choices) == choices, flag.name
    assert actions["--save-every"].help == "Save every this many steps (0: only at the end, and when stopped). Default: 0."
    assert actions["--metrics-file"].help == ("Where metrics.jsonl goes (default: --save/metrics.jsonl; this allows "
                                              "metrics without --save).")
    assert actions["--nonfinite-loss"].choices == ("stop", "skip")


def test_the_flags_left_out_give_the_settings_defaults():
    required = ["--deepspeed_config", "ds.json", "--data", "data", "--steps", "4"]
    assert run_config(_parser().parse_args(required)) == _run()
    from_directory = run_config(_parser().parse_args([*required, "--init-from", "hf"]))
    assert from_directory.model == ModelSettings(None, init_from="hf")
