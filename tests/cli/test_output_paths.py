"""Every path a command writes is checked by one shared check before any work starts: a path that is a file
where a directory is wanted, lies under a file, or is a directory where a file is wanted is one line."""

from __future__ import annotations

import argparse

import pytest

from xlmr_ds.cli.arguments import OUTPUT_TYPES
from xlmr_ds.cli.main import build_parser
from xlmr_ds.cli.train import add_arguments as add_train_arguments
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.outputs import check_output_directory, check_output_file, check_output_prefix, write_text_atomically

WRITING_FLAGS = {"--out", "--save", "--json", "--csv", "--metrics-file", "--write-config"}
# Flags of those names that name no path this process writes, and why.
NOT_WRITTEN_HERE = {
    ("launch check", "--save"): "the directory every host of a job must share; checked on each host by the probe",
}


def _parsers(parser: argparse.ArgumentParser, name: str = ""):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}".strip())


def _writing_options():
    train = argparse.ArgumentParser()
    add_train_arguments(train)
    for command, parser in [*_parsers(build_parser()), ("python -m xlmr_ds.train", train)]:
        for action in parser._actions:
            flags = WRITING_FLAGS.intersection(action.option_strings)
            if flags and action.nargs != 0 and (command, *flags) not in NOT_WRITTEN_HERE:
                yield command, next(iter(flags)), action


WRITING_OPTIONS = list(_writing_options())


def test_the_walk_finds_the_commands_that_write():
    found = {(command, flag) for command, flag, _ in WRITING_OPTIONS}
    assert {("export", "--out"), ("compare", "--out"), ("spm train", "--out"), ("eval", "--json"),
            ("python -m xlmr_ds.train", "--save"), ("finetune", "--out"), ("binarize", "--out")} <= found


@pytest.mark.parametrize("command,flag,action", WRITING_OPTIONS, ids=[f"{c} {f}" for c, f, _ in WRITING_OPTIONS])
def test_every_written_path_is_checked_when_the_command_line_is_read(command, flag, action):
    assert action.type in OUTPUT_TYPES, f"{command} {flag} is written without the shared output check"


def _tree(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "old.json").write_text("{}")
    return tmp_path


# (check, the path under tmp_path, the error expected: None where the path is accepted)
CASES = [
    ("directory", "new/deeper", None),
    ("directory", "dir", None),
    ("directory", "file", "file: exists and is not a directory; choose another --out"),
    ("directory", "file/run", "file is a file, so nothing can be written under it; choose another --out"),
    ("directory", "file/a/b", "file is a file, so nothing can be written under it"),
    ("file", "dir/old.json", None),
    ("file", "new/report.md", None),
    ("file", "dir", "dir: is a directory, not a file name; choose another --out"),
    ("file", "file/report.md", "file is a file, so nothing can be written under it"),
    ("prefix", "new/spm", None),
    ("prefix", "file/spm", "spm.model: "),
    ("prefix", "dir/old", None),
]
CHECKS = {"directory": check_output_directory, "file": check_output_file,
          "prefix": lambda path, flag: check_output_prefix(path, (".model", ".vocab"), flag)}


@pytest.mark.parametrize("kind,relative,error", CASES, ids=[f"{k}:{r}" for k, r, _ in CASES])
def test_output_path_checks(tmp_path, kind, relative, error):
    root = _tree(tmp_path)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    if error is None:
        CHECKS[kind](root / relative, "--out")
    else:
        with pytest.raises(XLMRDSError) as raised:
            CHECKS[kind](root / relative, "--out")
        assert error in str(raised.value) and str(raised.value).startswith(f"--out {root / relative}")
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before, "a check must write nothing"


def test_a_prefix_that_is_a_directory_of_its_files_is_refused(tmp_path):
    (tmp_path / "spm.model").mkdir()
    with pytest.raises(XLMRDSError, match=r"spm\.model: is a directory"):
        check_output_prefix(tmp_path / "spm", (".model", ".vocab"))


def test_a_file_written_atomically_leaves_no_temporary_and_replaces_the_old_one(tmp_path):
    path = tmp_path / "sub" / "table.csv"
    write_text_atomically(path, "old\r\n", newline="")
    write_text_atomically(path, "a,b\r\n", newline="")
    assert path.read_bytes() == b"a,b\r\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["table.csv"]
