"""The kinds of fine-tuning task, one object each holding all that differs between them: how a task file is read,
which head the model gets, how examples become inputs and batches, and how predictions are scored. The fine-tune
engine (engine/finetune.py) runs every kind the same way through these; a new kind is one more entry here.

The names are formats.TASKS, which the command line reads without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from xlmr_ds.model.heads import (
    SPAN_LABELS,
    XLMRForQuestionAnswering,
    XLMRForSequenceClassification,
    XLMRForTokenClassification,
)
from xlmr_ds.tasks.answers import answer_scores
from xlmr_ds.tasks.encoding import LabelSet, collate, encode_text_examples, encode_token_examples, word_predictions
from xlmr_ds.tasks.formats import TASKS, TaskFile, read_qa_examples, read_text_examples, read_token_examples
from xlmr_ds.tasks.results import accuracy, entity_f1
from xlmr_ds.tasks.spans import best_answers, collate_spans, encode_qa_examples
from xlmr_ds.tokenizer import Tokenizer


@dataclass(frozen=True)
class TaskKind:
    name: str
    """As --task and task-config files name it (formats.TASKS)."""

    head: type
    """The model class: the encoder with this kind's head (model/heads.py)."""

    metric: str
    """The score reported per language and averaged: "accuracy" or "f1"."""

    read: Callable[[TaskFile], tuple[list, str | None]]
    """A task file's examples and the language the file gives (None: it gives none)."""

    encode: Callable[[Tokenizer, list, LabelSet, int, int], list]
    """(tokenizer, examples, labels, max_length, doc_stride) -> the model's inputs: one per example, or one per
    window of a context for question answering."""

    collate: Callable[[list], dict[str, torch.Tensor]]
    """Inputs -> one padded batch."""

    reduce: Callable[[torch.Tensor, int], Any]
    """(one input's logits, its length) -> what scoring needs of them: the label id, a label id per token, or a
    window's span scores. It runs on the process that ran the input, so only this much crosses processes."""

    score: Callable[[str, list, list, list, LabelSet], tuple[float, dict[str, float]]]
    """(language, examples, inputs, reduced predictions in input order, labels) -> (metric, details)."""

    details: tuple[str, ...] = ()
    """The names of the scores reported beside the metric (score's details)."""

    fixed_labels: tuple[str, ...] | None = None
    """The labels of every task of this kind; None: those the training files hold."""

    unit: str = "examples"
    """What one training input is, for the log line."""

    def labels(self, train_examples: Sequence) -> LabelSet:
        if self.fixed_labels is not None:
            return LabelSet(self.fixed_labels)
        return LabelSet.from_examples(train_examples)


def argmax_label(logits: torch.Tensor, length: int) -> int | list[int]:
    """The predicted label id of a sequence, or of each token of a token example (padding included)."""
    best = logits.argmax(dim=-1)
    return best.tolist() if best.dim() else int(best)


def span_scores(logits: torch.Tensor, length: int) -> np.ndarray:
    """A window's (length, 2) start and end scores, its padding cut."""
    return logits[:length].numpy()


def _encode_texts(tokenizer, examples, labels, max_length, doc_stride):
    return encode_text_examples(tokenizer, examples, labels, max_length)


def _encode_tokens(tokenizer, examples, labels, max_length, doc_stride):
    return encode_token_examples(tokenizer, examples, labels, max_length)


def _encode_questions(tokenizer, examples, labels, max_length, doc_stride):
    return encode_qa_examples(tokenizer, examples, max_length, doc_stride)


def _label_accuracy(language, examples, inputs, predicted, labels):
    return accuracy([labels.names[p] for p in predicted], [e.label for e in examples]), {}


def _entity_f1(language, examples, inputs, predicted, labels):
    words = [word_predictions(e, p, labels) for e, p in zip(inputs, predicted, strict=True)]
    return entity_f1(words, [e.labels for e in examples]), {}


def _answer_f1(language, examples, inputs, predicted, labels):
    answers = best_answers(examples, inputs, predicted)
    exact, f1 = answer_scores(answers, [[text for _, text in e.answers] for e in examples], language)
    return f1, {"exact_match": exact}


_CLASSIFY_TEXT = {"head": XLMRForSequenceClassification, "metric": "accuracy", "encode": _encode_texts,
                  "collate": collate, "reduce": argmax_label, "score": _label_accuracy}

KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (
    TaskKind("pair-classification", read=partial(read_text_examples, pairs=True), **_CLASSIFY_TEXT),
    TaskKind("sequence-classification", read=partial(read_text_examples, pairs=False), **_CLASSIFY_TEXT),
    TaskKind("token-classification", head=XLMRForTokenClassification, metric="f1", read=read_token_examples,
             encode=_encode_tokens, collate=collate, reduce=argmax_label, score=_entity_f1),
    TaskKind("question-answering", head=XLMRForQuestionAnswering, metric="f1", read=read_qa_examples,
             encode=_encode_questions, collate=collate_spans, reduce=span_scores, score=_answer_f1,
             details=("exact_match",), fixed_labels=SPAN_LABELS, unit="windows"),
)}
if tuple(KINDS) != TASKS:  # the command line offers formats.TASKS; each must be a kind here, in the same order
    raise ImportError(f"tasks/kinds.py defines {tuple(KINDS)}, formats.TASKS names {TASKS}")
