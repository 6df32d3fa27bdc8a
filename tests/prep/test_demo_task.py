"""`xlmr-ds task demo`: the CLDR task and parallel strings are readable by finetune / eval retrieval, their test
entities are never trained on, and the same seed writes the same bytes."""

import json
from collections import Counter

import pytest

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.prep.demo.task import write_demo_task
from xlmr_ds.tasks.formats import TaskFile
from xlmr_ds.tasks.kinds import KINDS
from xlmr_ds.tasks.settings import FinetuneSettings, RetrievalSettings
from xlmr_ds.tasks.task_config import read_task_config

LANGUAGES = ("en", "de", "ru")


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-task") / "task"
    write_demo_task(out, LANGUAGES, seed=0)
    return out


def read_names(task, name):
    return KINDS["sequence-classification"].read(TaskFile(task / "names" / name, None))


def test_task_files_read_as_a_balanced_sequence_task(task):
    train, language = read_names(task, "train.en.tsv")
    assert language == "en"
    assert set(Counter(e.label for e in train).values()) == {90}
    for lang in LANGUAGES:
        test, found = read_names(task, f"test.{lang}.tsv")
        assert found == lang and Counter(e.label for e in test) == {"country": 30, "language": 30, "currency": 30}


def test_test_entities_are_never_trained_on(task):
    train = {e.text_a for e in read_names(task, "train.en.tsv")[0]}
    for split in ("dev", "test"):
        held_out = {e.text_a for e in read_names(task, f"{split}.en.tsv")[0]}
        assert not train & held_out


def test_task_files_for_eval_transfer_and_parallel_lines(task):
    finetune = read_task_config(task / "names.json", "model", "out")
    assert isinstance(finetune, FinetuneSettings) and [f.language for f in finetune.test] == list(LANGUAGES)
    retrieval = read_task_config(task / "retrieval.json", "model", "out")
    assert isinstance(retrieval, RetrievalSettings) and [p.language for p in retrieval.pairs] == ["de", "ru"]
    for pair in retrieval.pairs:
        source = open(pair.source, encoding="utf-8").read().splitlines()
        target = open(pair.target, encoding="utf-8").read().splitlines()
        assert len(source) == len(target) > 100 and all(a != b for a, b in zip(source, target))
    assert "Unicode License" in (task / "README.md").read_text()


def test_same_seed_same_bytes(task, tmp_path):
    again = tmp_path / "again"
    write_demo_task(again, LANGUAGES, seed=0)
    for path in task.rglob("*"):
        if path.is_file():
            assert (again / path.relative_to(task)).read_bytes() == path.read_bytes(), path
    assert json.loads((again / "names.json").read_text())["task"] == "sequence-classification"


@pytest.mark.parametrize("languages,error", [(("de", "fr"), "must include the source language 'en'"),
                                             (("en", "qq-zz"), "not a CLDR locale")])
def test_bad_languages(tmp_path, languages, error):
    with pytest.raises(XLMRDSError, match=error):
        write_demo_task(tmp_path / "t", languages)
    assert not (tmp_path / "t").exists()
