"""The helpers that write files and directories whole (xlmr_ds/outputs.py): each output appears complete or not
at all, a failure part-way leaves the old output and no temporary, and listings skip the temporaries."""

from __future__ import annotations

import json
import os
from contextlib import nullcontext

import pytest

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.outputs import (
    is_temporary,
    listed,
    replaced_directory,
    replaced_file,
    staging_directory,
    temporary_path,
    write_bytes_atomically,
    write_json_atomically,
    write_text_atomically,
)


def _stream(path, data: bytes) -> None:
    with replaced_file(path) as temporary, open(temporary, "wb") as out:
        out.write(data)


# (name, write(path), the file's bytes afterwards)
WRITERS = [
    ("text", lambda path: write_text_atomically(path, "a\nb\n"), b"a\nb\n"),
    ("text with its newlines kept", lambda path: write_text_atomically(path, "a,b\r\n", newline=""), b"a,b\r\n"),
    ("text as UTF-8", lambda path: write_text_atomically(path, "Brücke\n"), "Brücke\n".encode()),
    ("bytes", lambda path: write_bytes_atomically(path, b"\x00\xff"), b"\x00\xff"),
    ("JSON", lambda path: write_json_atomically(path, {"a": [1]}), json.dumps({"a": [1]}, indent=1).encode() + b"\n"),
    ("JSON, indent 2", lambda path: write_json_atomically(path, {"a": 1}, indent=2), b'{\n  "a": 1\n}\n'),
    ("a streaming writer", lambda path: _stream(path, b"streamed"), b"streamed"),
]


@pytest.mark.parametrize("name,write,expected", WRITERS, ids=[case[0] for case in WRITERS])
@pytest.mark.parametrize("old", [None, b"the old file"], ids=["new", "replacing"])
def test_a_file_appears_whole_and_leaves_no_temporary(tmp_path, name, write, expected, old):
    path = tmp_path / "sub" / "out.txt"
    if old is not None:
        path.parent.mkdir()
        path.write_bytes(old)
    write(path)
    assert path.read_bytes() == expected
    assert os.listdir(path.parent) == ["out.txt"]


class Killed(BaseException):
    """Not an Exception: what a signal or KeyboardInterrupt raises inside the write."""


def _half_then_killed(path):
    with replaced_file(path) as temporary:
        temporary.write_bytes(b"half")
        raise Killed


def _rename_fails(path, monkeypatch):
    def no_space(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    write_bytes_atomically(path, b"new")


# (name, a write that fails part-way, the error it raises)
FAILURES = [
    ("killed while streaming", lambda path, _: _half_then_killed(path), Killed),
    ("text that is not encodable", lambda path, _: write_text_atomically(path, "new \ud800"), UnicodeEncodeError),
    ("a value that is not JSON", lambda path, _: write_json_atomically(path, {"new": object()}), TypeError),
    ("the rename fails", _rename_fails, OSError),
]


@pytest.mark.parametrize("name,write,error", FAILURES, ids=[case[0] for case in FAILURES])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, name, write, error):
    path = tmp_path / "out.json"
    path.write_text("old")
    with pytest.raises(error):
        write(path, monkeypatch)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]


@pytest.mark.parametrize("fails", [False, True], ids=["completes", "killed"])
def test_a_directory_appears_whole_or_the_old_one_stays(tmp_path, fails):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(Killed) if fails else nullcontext():
        with replaced_directory(out) as staging:
            assert is_temporary(staging) and staging.parent == tmp_path
            (staging / "new.txt").write_text("new")
            if fails:
                raise Killed
    assert os.listdir(out) == (["old.txt"] if fails else ["new.txt"])
    assert os.listdir(tmp_path) == ["out"]


# (name, True when the name is a temporary of a write under way)
NAMES = [
    (temporary_path("out/stats.json").name, True),
    (".metrics.jsonl.tmp", True),
    (".out.k2j3h4.tmp", True),
    ("stats.json", False),
    ("en.tmp", False),  # a user's file: not hidden
    (".hidden", False),  # hidden, but not one of ours
]


@pytest.mark.parametrize("name,temporary", NAMES)
def test_the_temporary_name_convention(name, temporary):
    assert is_temporary(name) is temporary


def test_a_listing_skips_temporaries_of_files_and_directories(tmp_path):
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / ".hidden").write_text("")
    temporary_path(tmp_path / "a.txt").write_text("half")
    staging_directory(tmp_path / "model")
    (tmp_path / "a.txt").write_text("a")
    assert [p.name for p in listed(tmp_path)] == [".hidden", "a.txt", "b.txt"]


REPLACED_DIRECTORIES = [
    ([], None),                              # an empty directory
    (["en.txt", "de.txt"], None),            # the command's own earlier output
    (["en.txt", "notes.md"], "notes.md"),    # anything else: refused, nothing removed
    ([".en.txt.tmp"], None),                 # a killed write's temporary is not the user's
]


@pytest.mark.parametrize("present,refused", REPLACED_DIRECTORIES)
def test_a_replaced_directory_holds_only_what_its_command_writes(tmp_path, present, refused):
    out = tmp_path / "out"
    out.mkdir()
    for name in present:
        (out / name).write_text("old")
    own = lambda entry: entry.suffix == ".txt"  # noqa: E731
    if refused:
        with pytest.raises(XLMRDSError, match=f"holds files that `xlmr-ds corpus demo` does not write \\({refused}\\)"):
            with replaced_directory(out, own, "xlmr-ds corpus demo") as staging:
                (staging / "en.txt").write_text("new")
        assert sorted(p.name for p in out.iterdir()) == sorted(present)
    else:
        with replaced_directory(out, own, "xlmr-ds corpus demo") as staging:
            (staging / "en.txt").write_text("new")
        assert [p.name for p in out.iterdir()] == ["en.txt"] and (out / "en.txt").read_text() == "new"
