"""`xlmr-ds finetune` end to end: from a Hugging Face directory and from a pretraining checkpoint, one process
and two under ZeRO-3; its scores equal sklearn's / seqeval's on the predictions transformers makes with the
exported model (question answering: MLQA's F1 and exact match of transformers' best spans); its losses equal transformers' for the same weights, order and optimizer; bad input is one
line and leaves nothing in --out."""

import json
import math
import re
import subprocess
from pathlib import Path

import pytest
import torch
from launch import BIN, environment, train
from task_factory import (
    corpus_words,
    pair_examples,
    qa_examples,
    token_sentences,
    write_conll,
    write_squad,
    write_xnli,
    write_xnli_mt,
)

from xlmr_ds.cli.main import build_parser

CONFIGS = Path(__file__).parents[2] / "ds_configs"
TEST_LANGUAGES = ("en", "ru", "el")


@pytest.fixture(scope="module")
def task_files(corpus_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tasks")
    words = {lang: corpus_words(corpus_dir, lang) for lang in TEST_LANGUAGES}
    files = {
        "pair_train": write_xnli_mt(root / "multinli.train.en.tsv", pair_examples(words["en"], 96, 1)),
        "pair_dev": write_xnli(root / "xnli.dev.tsv", {lang: pair_examples(words[lang], 16, 10 + i)
                                                        for i, lang in enumerate(TEST_LANGUAGES)}),
        "pair_test": write_xnli(root / "xnli.test.tsv", {lang: pair_examples(words[lang], 24, 20 + i)
                                                          for i, lang in enumerate(TEST_LANGUAGES)}),
        "token_train": write_conll(root / "train-en.tsv", token_sentences(words["en"], 64, 1), "en"),
    }
    files["qa_train"] = write_squad(root / "train-v1.1.json", qa_examples(words["en"], 48, 1, (8, 40)))
    for i, lang in enumerate(TEST_LANGUAGES):
        files[f"token_test_{lang}"] = write_conll(root / f"test-{lang}.tsv", token_sentences(words[lang], 20, 5 + i),
                                                  lang)
        files[f"qa_test_{lang}"] = write_squad(root / f"xquad.{lang}.json", qa_examples(words[lang], 12, 5 + i, (8, 40)))
    return files


def pair_args(files, model, out, *extra):
    return ["--task", "pair-classification", "--model", str(model), "--train", str(files["pair_train"]),
            "--valid", f"en={files['pair_dev']}", "--test", *(f"{lang}={files['pair_test']}" for lang in TEST_LANGUAGES),
            "--out", str(out), "--epochs", "2", "--batch-size", "16", "--lr", "1e-3", *extra]


def token_args(files, model, out, *extra):
    return ["--task", "token-classification", "--model", str(model), "--train", str(files["token_train"]),
            "--test", *(f"{lang}={files[f'token_test_{lang}']}" for lang in TEST_LANGUAGES),
            "--out", str(out), "--epochs", "2", "--batch-size", "8", "--lr", "1e-3", *extra]


def qa_args(files, model, out, *extra):
    return ["--task", "question-answering", "--model", str(model), "--train", f"en={files['qa_train']}",
            "--test", *(f"{lang}={files[f'qa_test_{lang}']}" for lang in TEST_LANGUAGES), "--out", str(out),
            "--epochs", "2", "--batch-size", "8", "--lr", "1e-3", "--max-length", "32", "--doc-stride", "8", *extra]


def hf_predictions_by_language(model_dir: Path, task: str, files: dict) -> dict[str, tuple[list, list]]:
    """(predicted, gold) per test language, computed by transformers alone from the exported directory."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    from xlmr_ds.tasks.formats import TaskFile
    from xlmr_ds.tasks.kinds import KINDS

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    auto = AutoModelForTokenClassification if task == "token-classification" else AutoModelForSequenceClassification
    model = auto.from_pretrained(model_dir, use_safetensors=True).eval()
    id2label = model.config.id2label
    out = {}
    for lang in TEST_LANGUAGES:
        path = files[f"token_test_{lang}"] if task == "token-classification" else files["pair_test"]
        examples, _ = KINDS[task].read(TaskFile(path, lang))
        predicted, gold = [], []
        for example in examples:
            with torch.no_grad():
                if task == "token-classification":
                    encoding = tokenizer(list(example.tokens), is_split_into_words=True, return_tensors="pt")
                    best = model(**encoding).logits.argmax(-1)[0].tolist()
                    words, previous = [], None
                    for position, word in enumerate(encoding.word_ids()):
                        if word is not None and word != previous:
                            words.append(id2label[best[position]])
                        previous = word
                    predicted.append(words)
                    gold.append(list(example.labels))
                else:
                    encoding = tokenizer(example.text_a, example.text_b, return_tensors="pt")
                    predicted.append(id2label[int(model(**encoding).logits.argmax(-1))])
                    gold.append(example.label)
        out[lang] = (predicted, gold)
    return out


def test_finetune_from_hf_directory_scores_as_sklearn_on_transformers_predictions(task_files, pretrained_hf, tmp_path):
    from sklearn.metrics import accuracy_score
    from transformers import pipeline

    out = tmp_path / "out"
    train(pair_args(task_files, pretrained_hf, out), processes=1, launcher="python", module="xlmr_ds.finetune")
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl", "model", "results.csv", "results.json",
                                                     "results.md", "settings.json"]
    assert not list(tmp_path.glob(".out.*.tmp"))
    results = json.loads((out / "results.json").read_text())
    assert results["source"] == ["en"] and list(results["languages"]) == list(TEST_LANGUAGES)
    for lang, (predicted, gold) in hf_predictions_by_language(out / "model", "pair-classification", task_files).items():
        assert results["languages"][lang]["accuracy"] == pytest.approx(accuracy_score(gold, predicted), abs=1e-12)
    scores = [results["languages"][lang]["accuracy"] for lang in TEST_LANGUAGES]
    assert results["average"] == pytest.approx(sum(scores) / 3)
    assert results["average_zero_shot"] == pytest.approx(sum(scores[1:]) / 2)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if r["type"] == "train"]
    assert len(train_records) == 2 * math.ceil(96 / 16) and all(r["tokens_per_s"] > 0 for r in train_records)
    assert [r["epoch"] for r in records if r["type"] == "eval"] == [1, 2]
    assert "| en (source) |" in (out / "results.md").read_text()
    assert (out / "results.csv").read_text().splitlines()[0] == "language,accuracy,examples"
    classify = pipeline("text-classification", model=str(out / "model"))
    assert classify("a b c")[0]["label"] in {"contradiction", "entailment"}


def test_question_answering_scores_transformers_best_spans_as_mlqa_does(task_files, pretrained_hf, tmp_path):
    from test_spans import transformers_answer
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from xlmr_ds.tasks.answers import answer_scores
    from xlmr_ds.tasks.formats import TaskFile
    from xlmr_ds.tasks.kinds import KINDS

    out = tmp_path / "out"
    train(qa_args(task_files, pretrained_hf, out), processes=1, launcher="python", module="xlmr_ds.finetune")
    results = json.loads((out / "results.json").read_text())
    assert (results["task"], results["metric"], results["details"]) == ("question-answering", "f1", ["exact_match"])
    assert results["source"] == ["en"] and list(results["languages"]) == list(TEST_LANGUAGES)
    model = AutoModelForQuestionAnswering.from_pretrained(out / "model", use_safetensors=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    for lang in TEST_LANGUAGES:
        examples, _ = KINDS["question-answering"].read(TaskFile(task_files[f"qa_test_{lang}"], lang))
        predicted = [transformers_answer(model, tokenizer, e, 32, 8) for e in examples]
        exact, f1 = answer_scores(predicted, [[t for _, t in e.answers] for e in examples], lang)
        scores = results["languages"][lang]
        assert (scores["f1"], scores["exact_match"], scores["examples"]) == (pytest.approx(f1), pytest.approx(exact), 12)
    assert results["average_zero_shot"] == pytest.approx((results["languages"]["ru"]["f1"]
                                                          + results["languages"]["el"]["f1"]) / 2)
    assert (out / "results.csv").read_text().splitlines()[0] == "language,f1,exact_match,examples"
    assert 0 < results["languages"]["en"]["f1"]  # some answer found, so the comparison above means something
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    windows = [r for r in records if r["type"] == "train"]
    assert len(windows) > 2 * math.ceil(48 / 8)  # long contexts are trained on as several windows


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.parametrize("model", ["tiny", "modern-tiny"])
def test_finetune_from_a_pretraining_checkpoint_on_two_processes_under_zero3(model, task_files, unbroken_runs,
                                                                            tmp_path):
    from seqeval.metrics import f1_score
    from transformers import pipeline

    out = tmp_path / "out"
    run = unbroken_runs(2, model=model)  # a ZeRO-2 pretraining run of 2 processes, 4 steps
    train(token_args(task_files, run, out, "--deepspeed_config", str(CONFIGS / "tiny_cpu_zero3.json")),
          processes=2, module="xlmr_ds.finetune")
    results = json.loads((out / "results.json").read_text())
    assert results["pretraining_step"] == 4 and results["metric"] == "f1"
    for lang, (predicted, gold) in hf_predictions_by_language(out / "model", "token-classification", task_files).items():
        assert results["languages"][lang]["f1"] == pytest.approx(f1_score(gold, predicted), abs=1e-12)
    assert (out / "monitor").is_dir()  # the config's TensorBoard/CSV monitors write under --out
    tagger = pipeline("token-classification", model=str(out / "model"))
    assert isinstance(tagger("a b"), list)
    assert type(tagger.model).__name__ == {"tiny": "XLMRobertaForTokenClassification",
                                           "modern-tiny": "ModernBertForTokenClassification"}[model]


def test_losses_equal_transformers_for_the_same_weights_order_and_optimizer(task_files, spm_model, tmp_path):
    """fp32, one process, dropout 0 (so that the random streams need not match): the first steps' losses
    within 1e-4 relative. The learning rate of each step is the one the run logged (DeepSpeed's schedule)."""
    from transformers import AutoModelForSequenceClassification

    from xlmr_ds.engine.build import parameter_groups
    from xlmr_ds.engine.finetune import build_classifier, epoch_batches, load_task_data
    from xlmr_ds.model import XLMRForMaskedLM, preset
    from xlmr_ds.model.hf import save_hf
    from xlmr_ds.tasks.encoding import collate
    from xlmr_ds.tasks.formats import TaskFile
    from xlmr_ds.tasks.settings import FinetuneSettings
    from xlmr_ds.tokenizer import XLMRTokenizer

    tokenizer = XLMRTokenizer(spm_model)
    config = preset("tiny", vocab_size=tokenizer.vocab_size, max_position_embeddings=130, hidden_dropout=0.0,
                    attention_dropout=0.0)
    torch.manual_seed(1)
    pretrained = tmp_path / "pretrained"
    save_hf(XLMRForMaskedLM(config), pretrained, tokenizer_model=spm_model)
    out = tmp_path / "out"
    train(pair_args(task_files, pretrained, out, "--epochs", "1"), processes=1, launcher="python",
          module="xlmr_ds.finetune")
    ours = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["type"] == "train"]

    settings = FinetuneSettings("pair-classification", str(pretrained), (TaskFile(task_files["pair_train"], None),),
                                (), str(tmp_path / "unused"), batch_size=16, lr=1e-3)
    data = load_task_data(settings, tokenizer, 128)
    from xlmr_ds.model.hf import load_hf

    classifier = build_classifier(settings.task, load_hf(pretrained), data.labels, settings.seed)
    save_hf(classifier, tmp_path / "initial")
    reference = AutoModelForSequenceClassification.from_pretrained(tmp_path / "initial", use_safetensors=True)
    reference.train()
    groups = parameter_groups(reference)
    optimizer = torch.optim.AdamW(groups, lr=0.0, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    expected = []
    for step, indices in enumerate(epoch_batches(len(data.train), 16, settings.seed, 1)[:6]):
        batch = collate([data.train[i] for i in indices])
        for group in optimizer.param_groups:
            group["lr"] = ours[step]["lr"]
        loss = reference(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        expected.append(loss.item())
    assert any(r["lr"] > 0 for r in ours[:6])  # the steps compared do move the weights
    for step, (mine, theirs) in enumerate(zip([r["loss"] for r in ours[:6]], expected, strict=True)):
        assert mine == pytest.approx(theirs, rel=1e-4), f"step {step + 1}"


def _bad_inputs(files, model, tmp_path):
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_tokenizer / name).write_bytes((model / name).read_bytes())
    (tmp_path / "other.tsv").write_text("a\tb\tentailment\nc\td\tmaybe\n")
    (tmp_path / "narrow.tsv").write_text("a\tentailment\n")
    (tmp_path / "empty.tsv").write_text("")
    (tmp_path / "short.conll").write_text("en:a\tO\nen:b\n")
    (tmp_path / "moved.json").write_text(json.dumps({"data": [{"paragraphs": [{"context": "a b", "qas": [
        {"id": "m", "question": "q", "answers": [{"text": "b", "answer_start": 0}]}]}]}]}))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    base = pair_args(files, model, tmp_path / "out")
    # (name, arguments, the error: a regex)
    return [
        ("a label missing from training", pair_args(files, model, tmp_path / "out") + ["--test", f"de={tmp_path}/other.tsv"],
         r"other\.tsv:2: label 'maybe' does not occur in the training files"),
        ("wrong column count", base[:5] + [f"{tmp_path}/narrow.tsv"] + base[6:], r"narrow\.tsv:1: 2 columns, expected 3"),
        ("empty file", base + ["--test", f"de={tmp_path}/empty.tsv"], r"empty\.tsv: no examples"),
        ("token and label counts differ", token_args(files, model, tmp_path / "out") + ["--test", f"de={tmp_path}/short.conll"],
         r"short\.conll:2: one column"),
        ("a test language without a file", base + ["--test", "de"], r"--test de: expected LANG=FILE"),
        ("a test file that is not there", base + ["--test", f"de={tmp_path}/none.tsv"], r"none\.tsv: not found"),
        ("a model without a tokenizer", pair_args(files, no_tokenizer, tmp_path / "out"),
         r"no-tokenizer: no sentencepiece\.bpe\.model"),
        ("a run without checkpoints", pair_args(files, tmp_path / "busy", tmp_path / "out"), r"no complete checkpoint"),
        ("an --out with other files", pair_args(files, model, tmp_path / "busy"), r"--out .*busy: exists and is not"),
        ("an answer not at its offset", qa_args(files, model, tmp_path / "out") + ["--test", f"de={tmp_path}/moved.json"],
         r"moved\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\] \(id m\)\.answers\[0\]: the context at answer_start=0"),
        ("windows smaller than their stride", qa_args(files, model, tmp_path / "out") + ["--doc-stride", "30"],
         r"train-v1\.1\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\] \(id q1-0\): --max-length=32 leaves \d+ context "
         r"pieces per window after this question's \d+, not more than --doc-stride=30"),
        ("no dev file of the source", pair_args(files, model, tmp_path / "out")[:7] + [f"ru={files['pair_dev']}"]
         + base[8:], r"--valid: no file of the source language"),
    ]


def test_bad_input_is_one_line_and_leaves_no_output(task_files, pretrained_hf, tmp_path, capsys):
    for name, args, error in _bad_inputs(task_files, pretrained_hf, tmp_path):
        parsed = build_parser().parse_args(["finetune", *args])
        code = parsed.run(parsed)  # not main(): a finished job's main() ends the process (guards/teardown.py)
        err = capsys.readouterr().err
        assert code == 1, name
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (name, err)
        assert re.search(error, err), (name, err)
        assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*.tmp")), name
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"


def test_bad_input_exits_non_zero_without_traceback_from_the_command_line(task_files, pretrained_hf, tmp_path):
    args = pair_args(task_files, pretrained_hf, tmp_path / "out") + ["--test", "de"]
    result = subprocess.run([str(BIN / "xlmr-ds"), "finetune", *args], capture_output=True, text=True,
                            env=environment(), timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "xlmr-ds finetune: error: --test de: expected LANG=FILE (for example de=xnli.test.tsv)"



def test_several_training_languages_are_all_source_languages(task_files, corpus_dir, spm_model, tmp_path):
    """translate-train-all: --train in two languages; both are source, only the third is zero-shot."""
    from xlmr_ds.engine.finetune import load_task_data
    from xlmr_ds.tasks.formats import TaskFile
    from xlmr_ds.tasks.settings import FinetuneSettings
    from xlmr_ds.tokenizer import XLMRTokenizer

    russian = write_xnli_mt(tmp_path / "multinli.train.ru.tsv", pair_examples(corpus_words(corpus_dir, "ru"), 16, 3))
    settings = FinetuneSettings("pair-classification", "unused", (TaskFile(task_files["pair_train"], None),
                                                                   TaskFile(russian, None)),
                                tuple(TaskFile(task_files["pair_test"], lang) for lang in TEST_LANGUAGES), "out")
    data = load_task_data(settings, XLMRTokenizer(spm_model), 64)
    assert data.source == ("en", "ru") and len(data.train) == 96 + 16
    assert [s.language for s in data.test] == list(TEST_LANGUAGES)
