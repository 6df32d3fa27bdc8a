"""Question-answering examples to model inputs (windows over the context), and predicted spans back to text.

An input is `<s> question </s> </s> window </s>`, as transformers' XLM-R tokenizer makes it with
truncation="only_second", return_overflowing_tokens=True and stride=S (run_qa.py's doc_stride;
tests/tasks/test_spans.py compares the ids): a context longer than fits is cut into windows of
`budget = max_length - len(question) - 4` pieces whose starts are `budget - S` apart, the last one ending at
the context's end. The question is cut to MAX_QUESTION_PIECES first (BERT's max_query_length).

Each position of a window knows the context characters its piece covers ([begin, end), leading whitespace
left out, so that `▁Paris` covers "Paris"; Tokenizer.encode_with_offsets). Training
labels the answer's first and last piece; a window that does not hold the whole answer is labelled (0, 0), the
<s> position, as the SQuAD recipe of BERT and transformers does. A prediction is the span of context pieces,
over all windows of an example, with the highest start + end score, at most `max_answer_pieces` long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.tasks.formats import QAExample
from xlmr_ds.tokenizer import Tokenizer
from xlmr_ds.vocab import BOS_ID, EOS_ID, PAD_ID

MAX_QUESTION_PIECES = 64
"""Question pieces kept (BERT's and transformers' run_qa max_query_length default)."""

MAX_ANSWER_PIECES = 30
"""The longest answer predicted, in pieces (run_qa's max_answer_length default)."""

NO_ANSWER = (0, 0)
"""The label of a window that does not hold the whole answer: <s> as both start and end."""


@dataclass(frozen=True)
class SpanFeature:
    """One window of one example, as model input."""

    input_ids: tuple[int, ...]
    label: tuple[int, int]
    """Positions of the answer's first and last piece in this window; NO_ANSWER when it is not all inside."""

    example: int
    """Index of its example in the list encoded."""

    offsets: tuple[tuple[int, int] | None, ...]
    """Per position: the context characters [begin, end) of the piece; None for the question and specials."""


def windows(pieces: int, budget: int, stride: int) -> list[tuple[int, int]]:
    """[start, stop) of each window over `pieces` context pieces (transformers' overflow with stride); needs
    budget > stride."""
    spans, start = [], 0
    while True:
        stop = min(start + budget, pieces)
        spans.append((start, stop))
        if stop == pieces:
            return spans
        start += budget - stride


def _answer_label(offsets: Sequence[tuple[int, int] | None], answer: tuple[int, str]) -> tuple[int, int]:
    begin, end = answer[0], answer[0] + len(answer[1])
    inside = [i for i, span in enumerate(offsets) if span is not None]
    if offsets[inside[0]][0] > begin or offsets[inside[-1]][1] < end:
        return NO_ANSWER
    first = next(i for i in inside if offsets[i][1] > begin)
    last = max(i for i in inside if offsets[i][0] < end)
    return (first, last) if first <= last else NO_ANSWER


def encode_qa_examples(tokenizer: Tokenizer, examples: Sequence[QAExample], max_length: int,
                       stride: int) -> list[SpanFeature]:
    """Every window of every example; labels from each example's first answer."""
    questions = tokenizer.encode_batch([e.question.lstrip() for e in examples])
    features = []
    for index, (example, question) in enumerate(zip(examples, questions, strict=True)):
        question = question.tolist()[:MAX_QUESTION_PIECES]
        ids, spans = tokenizer.encode_with_offsets(example.context)
        prefix = [BOS_ID, *question, EOS_ID, EOS_ID]
        budget = max_length - len(prefix) - 1
        if budget <= stride:
            raise XLMRDSError(f"{example.where}: --max-length={max_length} leaves {budget} context pieces per window "
                              f"after this question's {len(question)}, not more than --doc-stride={stride}; raise "
                              f"--max-length or lower --doc-stride")
        for start, stop in windows(len(ids), budget, stride):
            offsets = (None,) * len(prefix) + tuple(spans[start:stop]) + (None,)
            label = _answer_label(offsets, example.answers[0]) if stop > start else NO_ANSWER
            features.append(SpanFeature(tuple(prefix + ids[start:stop] + [EOS_ID]), label, index, offsets))
    return features


def collate_spans(batch: Sequence[SpanFeature]) -> dict[str, torch.Tensor]:
    """Pad to the longest window of the batch: input_ids, attention_mask and labels (batch, 2)."""
    width = max(len(f.input_ids) for f in batch)
    input_ids = torch.full((len(batch), width), PAD_ID, dtype=torch.long)
    for row, feature in enumerate(batch):
        input_ids[row, : len(feature.input_ids)] = torch.tensor(feature.input_ids)
    labels = torch.tensor([f.label for f in batch], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": input_ids.ne(PAD_ID).long(), "labels": labels}


def best_answers(examples: Sequence[QAExample], features: Sequence[SpanFeature], logits: Sequence[np.ndarray],
                 max_answer_pieces: int = MAX_ANSWER_PIECES) -> list[str]:
    """The predicted answer text of every example: over its windows, the span of context pieces with the
    highest start + end score and at most max_answer_pieces pieces. `logits[i]` is feature i's (length, 2)."""
    best: list[tuple[float, str]] = [(-np.inf, "")] * len(examples)
    for feature, scores in zip(features, logits, strict=True):
        inside = np.array([span is not None for span in feature.offsets])
        start = np.where(inside, scores[: len(inside), 0], -np.inf)
        end = np.where(inside, scores[: len(inside), 1], -np.inf)
        total = start[:, None] + end[None, :]
        # Spans that end before they start, or run longer than allowed, are out.
        length = np.arange(len(inside))[None, :] - np.arange(len(inside))[:, None]
        total[(length < 0) | (length >= max_answer_pieces)] = -np.inf
        first, last = np.unravel_index(int(np.argmax(total)), total.shape)
        score = float(total[first, last])
        if score > best[feature.example][0]:
            context = examples[feature.example].context
            best[feature.example] = (score, context[feature.offsets[first][0]:feature.offsets[last][1]])
    return [text for _, text in best]
