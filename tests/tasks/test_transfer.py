"""`xlmr-ds eval transfer`: a task file run on every checkpoint of a pretraining run, one result per step and
a summary by step; a step scored before is not run again; bad task files are one line naming the key."""

import json
import subprocess

import pytest
from launch import BIN, environment, train
from task_factory import corpus_words, pair_examples, write_xnli, write_xnli_mt

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.tasks.settings import FinetuneSettings, RetrievalSettings
from xlmr_ds.tasks.task_config import read_task_config
from xlmr_ds.world import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_with_two_checkpoints(training_args, tmp_path_factory):
    save = tmp_path_factory.mktemp("run") / "ckpt"
    train(training_args(2, save, 4, "--save-every", "2"), processes=1, launcher="python")
    return save


@pytest.fixture(scope="module")
def task_dir(corpus_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer-tasks")
    en, ru = corpus_words(corpus_dir, "en"), corpus_words(corpus_dir, "ru")
    write_xnli_mt(root / "multinli.train.en.tsv", pair_examples(en, 32, 1))
    write_xnli(root / "xnli.test.tsv", {"en": pair_examples(en, 16, 2), "ru": pair_examples(ru, 16, 3)})
    (root / "en.txt").write_text("\n".join(" ".join(en[i:i + 4]) for i in range(20)) + "\n")
    (root / "ru.txt").write_text("\n".join(" ".join(ru[i:i + 4]) for i in range(20)) + "\n")
    (root / "xnli.json").write_text(json.dumps({
        "task": "pair-classification", "train": ["multinli.train.en.tsv"],
        "test": ["en=xnli.test.tsv", "ru=xnli.test.tsv"], "epochs": 1, "batch_size": 8, "lr": 1e-3}))
    (root / "retrieval.json").write_text(json.dumps({"task": "retrieval", "pairs": ["ru=en.txt:ru.txt"]}))
    return root


def transfer(*args):
    result = subprocess.run([str(BIN / "xlmr-ds"), "eval", "transfer", *map(str, args)], capture_output=True,
                            text=True, env=environment(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_retrieval_on_every_checkpoint_and_a_rerun_scores_nothing_again(run_with_two_checkpoints, task_dir):
    run = run_with_two_checkpoints
    transfer("--ckpt", run, "--task-config", task_dir / "retrieval.json", "--all-checkpoints")
    out = run / "transfer" / "retrieval"
    summary = json.loads((out / "transfer.json").read_text())
    assert [s["step"] for s in summary["steps"]] == [2, 4]
    for entry in summary["steps"]:
        step_results = json.loads((out / f"step_{entry['step']:08d}" / "results.json").read_text())
        assert entry["languages"]["ru"] == step_results["languages"]["ru"]["accuracy@1"]
        assert step_results["pretraining_step"] == entry["step"]
    assert (out / "transfer.csv").read_text().splitlines()[0] == "step,ru,average,average_zero_shot"
    before = (out / "step_00000002" / "results.json").stat().st_mtime_ns
    again = transfer("--ckpt", run, "--task-config", task_dir / "retrieval.json", "--all-checkpoints")
    assert "scored before" in again.stdout + again.stderr
    assert (out / "step_00000002" / "results.json").stat().st_mtime_ns == before


def test_finetune_task_on_the_newest_checkpoint(run_with_two_checkpoints, task_dir, tmp_path):
    out = tmp_path / "sweep"
    result = transfer("--ckpt", run_with_two_checkpoints, "--task-config", task_dir / "xnli.json", "--out", out)
    summary = json.loads((out / "transfer.json").read_text())
    assert [s["step"] for s in summary["steps"]] == [4] and summary["source"] == ["en"]
    assert summary["steps"][0]["average_zero_shot"] == summary["steps"][0]["languages"]["ru"]
    assert (out / "step_00000004" / "model" / "config.json").is_file()
    assert "average zero-shot" in result.stdout


# (name, the task file's content, the error: a regex)
BAD_TASK_FILES = [
    ("unknown task", {"task": "qa"}, r"task='qa'; expected one of pair-classification"),
    ("unknown key", {"task": "pair-classification", "train": ["a"], "test": ["de=b"], "epoch": 2},
     r"unknown key 'epoch'; did you mean 'epochs'\?"),
    ("no train", {"task": "pair-classification", "test": ["de=b"]}, r"'train' is missing"),
    ("test without a language", {"task": "pair-classification", "train": ["a"], "test": ["b"]},
     r"test b: expected LANG=FILE"),
    ("wrong type", {"task": "pair-classification", "train": ["a"], "test": ["de=b"], "lr": "fast"},
     r"lr='fast' must be a positive number"),
    ("zero epochs", {"task": "pair-classification", "train": ["a"], "test": ["de=b"], "epochs": 0},
     r"epochs=0 must be a positive integer"),
    ("bad select_on", {"task": "pair-classification", "train": ["a"], "test": ["de=b"], "select_on": "dev"},
     r"select_on='dev' must be one of source, all"),
    ("zero doc_stride", {"task": "question-answering", "train": ["a"], "test": ["de=b"], "doc_stride": 0},
     r"doc_stride=0 must be a positive integer"),
    ("retrieval without pairs", {"task": "retrieval"}, r"'pairs' must be a non-empty list"),
    ("retrieval pair spec", {"task": "retrieval", "pairs": ["de=a.txt"]}, r"expected LANG=SRC:TGT"),
]


@pytest.mark.parametrize("name,content,error", BAD_TASK_FILES, ids=[c[0] for c in BAD_TASK_FILES])
def test_bad_task_files(tmp_path, name, content, error):
    path = tmp_path / "task.json"
    path.write_text(json.dumps(content))
    with pytest.raises(XLMRDSError, match=error):
        read_task_config(path, "model", "out")


def test_question_answering_task_file_keeps_its_doc_stride(tmp_path):
    path = tmp_path / "task.json"
    path.write_text(json.dumps({"task": "question-answering", "train": ["train-v1.1.json"],
                                "test": ["de=xquad.de.json"], "max_length": 384, "doc_stride": 64}))
    settings = read_task_config(path, "m", "o")
    assert (settings.task, settings.max_length, settings.doc_stride) == ("question-answering", 384, 64)


def test_task_file_paths_are_relative_to_it(tmp_path):
    path = tmp_path / "sub" / "task.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"task": "pair-classification", "train": ["t.tsv"], "test": ["de=/abs/x.tsv"],
                                "deepspeed_config": "ds.json"}))
    settings = read_task_config(path, "m", "o")
    assert isinstance(settings, FinetuneSettings)
    assert settings.train[0].path == path.parent.resolve() / "t.tsv" and str(settings.test[0].path) == "/abs/x.tsv"
    assert settings.deepspeed_config == str(path.parent.resolve() / "ds.json")
    path.write_text(json.dumps({"task": "retrieval", "pairs": ["de=a.txt:b.txt"], "layer": 1}))
    retrieval = read_task_config(path, "m", "o")
    assert isinstance(retrieval, RetrievalSettings) and retrieval.pairs[0].source == str(path.parent.resolve() / "a.txt")


def test_a_checkpoint_whose_tokenizer_is_gone_is_one_line(run_with_two_checkpoints, tmp_path):
    import shutil

    from xlmr_ds.engine.checkpoint import MARKER
    from xlmr_ds.engine.pretrained import load_pretrained

    run = tmp_path / "run"
    shutil.copytree(run_with_two_checkpoints, run, ignore=shutil.ignore_patterns("transfer"))
    marker = run / "step_00000004" / MARKER
    values = json.loads(marker.read_text())
    values["tokenizer"]["path"] = str(tmp_path / "moved" / "spm.model")
    marker.write_text(json.dumps(values))
    with pytest.raises(XLMRDSError, match=r"step_00000004: the run's SentencePiece model \(.*moved/spm.model\) is not "
                                          r"there; export the checkpoint with --spm MODEL"):
        load_pretrained(run)


@pytest.mark.multiprocess
def test_transfer_under_the_deepspeed_launcher(run_with_two_checkpoints, task_dir, tmp_path):
    """`deepspeed --module xlmr_ds eval transfer`: the launcher's --local_rank comes before the command."""
    out = tmp_path / "sweep"
    command = [str(BIN / "deepspeed"), "--num_gpus", "2", "--master_port", str(free_port()),
               "--module", "xlmr_ds", "eval", "transfer", "--ckpt", str(run_with_two_checkpoints),
               "--task-config", str(task_dir / "retrieval.json"), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env=environment(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [s["step"] for s in json.loads((out / "transfer.json").read_text())["steps"]] == [4]
