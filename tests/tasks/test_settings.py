"""Fine-tuning and retrieval settings (tasks/settings.py): the rules they hold themselves to, the same in Python as
on the command line, and `xlmr-ds finetune`'s flags made from FinetuneSettings' fields."""

import argparse
import dataclasses
from pathlib import Path

import pytest

from xlmr_ds.cli.arguments import field_default, field_help, literal_choices
from xlmr_ds.cli.finetune import FLAGS, add_arguments, settings_from_args
from xlmr_ds.config import PolicySettings
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.tasks.formats import TaskFile
from xlmr_ds.tasks.settings import FinetuneSettings, RetrievalSettings

FILES = {"train": (TaskFile(Path("train.tsv"), None),), "test": (TaskFile(Path("de.tsv"), "de"),)}


def _finetune(**changes) -> FinetuneSettings:
    return FinetuneSettings(**{"task": "pair-classification", "model": "hf", "out": "out", **FILES, **changes})


# (id, settings built in Python, the error's whole message: the one the command line prints after
# "xlmr-ds finetune: error: ")
INVALID_SETTINGS = [
    ("an unknown task", lambda: _finetune(task="translation"),
     "--task='translation' must be one of pair-classification, sequence-classification, token-classification, "
     "question-answering"),
    ("no epochs", lambda: _finetune(epochs=0), "--epochs=0 must be at least 1"),
    ("a learning rate of 0", lambda: _finetune(lr=0.0), "--lr=0.0 must be more than 0"),
    ("an empty batch", lambda: _finetune(batch_size=0), "--batch-size=0 must be at least 1"),
    ("no tokens", lambda: _finetune(max_length=0), "--max-length=0 must be at least 1"),
    ("a stride of 0", lambda: _finetune(doc_stride=0), "--doc-stride=0 must be at least 1"),
    ("an empty scoring batch", lambda: _finetune(eval_batch_size=-1), "--eval-batch-size=-1 must be at least 1"),
    ("warming up the whole run", lambda: _finetune(warmup_fraction=1.0), "--warmup-fraction=1.0 must be in [0, 1)"),
    ("a negative warmup", lambda: _finetune(warmup_fraction=-0.1), "--warmup-fraction=-0.1 must be in [0, 1)"),
    ("an unknown dev-set choice", lambda: _finetune(select_on="target"),
     "--select-on='target' must be one of source, all"),
    ("retrieval without tokens", lambda: RetrievalSettings("hf", (), max_length=0), "--max-length=0 must be at least 1"),
    ("retrieval in empty batches", lambda: RetrievalSettings("hf", (), batch_size=0),
     "--batch-size=0 must be at least 1"),
]


@pytest.mark.parametrize("build,message", [case[1:] for case in INVALID_SETTINGS],
                         ids=[case[0] for case in INVALID_SETTINGS])
def test_settings_refuse_what_the_command_line_refuses(build, message):
    with pytest.raises(XLMRDSError) as error:
        build()
    assert str(error.value) == message


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


REQUIRED = ["--task", "pair-classification", "--model", "hf", "--train", "train.tsv", "--test", "de=de.tsv",
            "--out", "out"]


def test_the_command_line_builds_the_same_settings_and_refuses_alike():
    assert settings_from_args(_parser().parse_args(REQUIRED)) == _finetune()
    with pytest.raises(XLMRDSError, match=r"^--warmup-fraction=1\.5 must be in \[0, 1\)$"):
        settings_from_args(_parser().parse_args([*REQUIRED, "--warmup-fraction", "1.5"]))


def test_the_command_prints_the_settings_error_on_one_line(tmp_path):
    import subprocess
    import sys

    command = [str(Path(sys.executable).parent / "xlmr-ds"), "finetune", *REQUIRED[:-1], str(tmp_path / "out"),
               "--warmup-fraction", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "xlmr-ds finetune: error: --warmup-fraction=1.0 must be in [0, 1)"
    assert not (tmp_path / "out").exists()


def test_every_finetune_setting_has_its_flag_with_the_fields_default_help_and_choices():
    flagged = {flag.field for flag in FLAGS if flag.settings is FinetuneSettings}
    assert flagged == {field.name for field in dataclasses.fields(FinetuneSettings)}
    assert [(flag.settings, flag.field) for flag in FLAGS if flag.settings is not FinetuneSettings] == [
        (PolicySettings, "dist_timeout_minutes")]
    actions = _parser()._option_string_actions
    flag_names = {flag.field: flag.name for flag in FLAGS}
    for flag in FLAGS:
        action = actions[flag.name]
        assert action.default == field_default(flag.settings, flag.field), flag.name
        assert action.help == field_help(flag.settings, flag.field, flag_names), flag.name
        choices = literal_choices(flag.settings, flag.field)
        assert choices is None or tuple(action.choices) == choices, flag.name
    assert actions["--select-on"].choices == ("source", "all")
    assert "--step" in actions["--model"].help  # a field named in `backquotes` is named by its flag
