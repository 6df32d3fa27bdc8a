"""Question-answering inputs and answers (xlmr_ds/tasks/spans.py) against transformers: the windows are its
tokenizer's overflowing windows with stride, the labels those of its run_qa recipe from its offsets, and the
answer our decoding picks is the span with the best start + end logit of transformers' own model over its own
windows and offsets (run_qa's score; transformers 5 has no question-answering pipeline any more)."""

import pytest
import torch
from task_factory import corpus_words, qa_examples

from xlmr_ds.model.heads import XLMRForQuestionAnswering
from xlmr_ds.model.hf import load_hf, save_hf
from xlmr_ds.tasks.formats import QAExample
from xlmr_ds.tasks.spans import NO_ANSWER, best_answers, collate_spans, encode_qa_examples
from xlmr_ds.tokenizer import XLMRTokenizer

# (id, language, examples, context words, max_length, stride): long contexts make several windows.
CASES = [
    ("one window", "en", 12, (8, 20), 128, 32),
    ("several windows", "en", 8, (60, 90), 48, 12),
    ("several windows, Russian", "ru", 8, (60, 90), 40, 8),
    ("stride just under the budget", "el", 4, (30, 50), 32, 18),
]


def examples_of(corpus_dir, language, n, context_words, seed=0) -> list[QAExample]:
    paragraphs = qa_examples(corpus_words(corpus_dir, language), n, seed, context_words)
    return [QAExample(p["qas"][0]["id"], p["qas"][0]["question"], p["context"],
                      tuple((a["answer_start"], a["text"]) for a in p["qas"][0]["answers"]), "test")
            for p in paragraphs]


@pytest.fixture(scope="module")
def hf_tokenizer(pretrained_hf):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(pretrained_hf)
    assert tokenizer.is_fast  # offsets and overflowing windows come from the fast tokenizer
    return tokenizer


def run_qa_labels(encoding, window: int, answer: tuple[int, str]) -> tuple[int, int]:
    """transformers' run_qa.py labelling of one window, from its offsets and sequence ids."""
    offsets, sequence_ids = encoding["offset_mapping"][window], encoding.sequence_ids(window)
    begin, end = answer[0], answer[0] + len(answer[1])
    first = sequence_ids.index(1)
    last = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
    if not (offsets[first][0] <= begin and offsets[last][1] >= end):
        return NO_ANSWER
    while first < len(offsets) and sequence_ids[first] == 1 and offsets[first][0] <= begin:
        first += 1
    while sequence_ids[last] == 1 and offsets[last][1] >= end:
        last -= 1
    return first - 1, last + 1


@pytest.mark.parametrize("language,n,context_words,max_length,stride", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_windows_and_labels_equal_transformers_run_qa(corpus_dir, spm_model, hf_tokenizer, language, n,
                                                      context_words, max_length, stride):
    examples = examples_of(corpus_dir, language, n, context_words)
    features = encode_qa_examples(XLMRTokenizer(spm_model), examples, max_length, stride)
    expected_ids, expected_labels, owners = [], [], []
    for index, example in enumerate(examples):
        encoding = hf_tokenizer(example.question, example.context, truncation="only_second", max_length=max_length,
                                stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)
        for window in range(len(encoding["input_ids"])):
            expected_ids.append(tuple(encoding["input_ids"][window]))
            expected_labels.append(run_qa_labels(encoding, window, example.answers[0]))
            owners.append(index)
    assert [f.input_ids for f in features] == expected_ids
    assert [f.example for f in features] == owners
    assert [f.label for f in features] == expected_labels
    if context_words[0] > max_length:
        assert len(features) > n  # the case does cut contexts into windows
    for feature in features:  # a labelled span reads the answer's text back
        if feature.label != NO_ANSWER:
            first, last = feature.label
            text = examples[feature.example].context[feature.offsets[first][0]:feature.offsets[last][1]]
            assert text == examples[feature.example].answers[0][1]


def transformers_answer(model, tokenizer, example: QAExample, max_length: int, stride: int) -> str:
    """The context text of the span with the highest start + end logit over all windows, searched exhaustively
    over pairs of context tokens at most 30 apart, with transformers' model, windows and offsets alone."""
    encoding = tokenizer(example.question, example.context, truncation="only_second", max_length=max_length,
                         stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                         padding=True, return_tensors="pt")
    with torch.no_grad():
        output = model(input_ids=encoding["input_ids"], attention_mask=encoding["attention_mask"])
    best, text = -float("inf"), ""
    for window in range(len(encoding["input_ids"])):
        context = [i for i, s in enumerate(encoding.sequence_ids(window)) if s == 1]
        offsets = encoding["offset_mapping"][window].tolist()
        for first in context:
            for last in context:
                if 0 <= last - first < 30:
                    score = float(output.start_logits[window, first] + output.end_logits[window, last])
                    if score > best:
                        best, text = score, example.context[offsets[first][0]:offsets[last][1]]
    return text


@pytest.mark.parametrize("context_words,max_length,stride", [((8, 30), 128, 32), ((40, 70), 48, 16)],
                         ids=["one window", "several windows"])
def test_best_answer_is_transformers_best_span(corpus_dir, spm_model, pretrained_hf, hf_tokenizer, tmp_path,
                                               context_words, max_length, stride):
    from transformers import AutoModelForQuestionAnswering

    torch.manual_seed(1)
    pretrained = load_hf(pretrained_hf)
    model = XLMRForQuestionAnswering(pretrained.config)
    model.load_encoder(pretrained)
    with torch.no_grad():  # a random head scores spans decisively enough that ties do not occur
        model.qa_outputs.weight.normal_(0.0, 1.0)
    save_hf(model.eval(), tmp_path / "qa", tokenizer_model=spm_model)
    theirs = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "qa", use_safetensors=True).eval()
    examples = examples_of(corpus_dir, "en", 16, context_words, seed=3)
    features = encode_qa_examples(XLMRTokenizer(spm_model), examples, max_length, stride)
    batch = collate_spans(features)
    with torch.no_grad():
        logits = load_hf(tmp_path / "qa").eval()(batch["input_ids"], batch["attention_mask"]).logits
    ours = best_answers(examples, features, [row[: len(f.input_ids)].numpy() for row, f in zip(logits, features)])
    expected = [transformers_answer(theirs, hf_tokenizer, e, max_length, stride) for e in examples]
    assert [a.strip() for a in ours] == [a.strip() for a in expected]
    assert len(set(ours)) > 1  # not one answer for every question


def test_an_answer_outside_every_window_is_no_answer_in_each(spm_model):
    context = " ".join(["alpha"] * 80) + " omega"
    example = QAExample("q", "what?", context, ((len(context) - 5, "omega"),), "test")
    features = encode_qa_examples(XLMRTokenizer(spm_model), [example], 24, 4)
    assert len(features) > 2 and features[-1].label != NO_ANSWER
    assert all(f.label == NO_ANSWER for f in features[:-1])
