"""Examples to model inputs, as transformers' XLMRobertaTokenizer makes them (tests/tasks checks it):

    sentence:  <s> A </s>                 pair:  <s> A </s> </s> B </s>

cut to max_length by dropping tokens from the end of the longer text first ("longest_first"). For token
tasks each word is encoded on its own (SentencePiece gives it its word-boundary piece, as transformers'
is_split_into_words does); its label goes on the first piece and the later pieces are IGNORE_INDEX, the
paper's NER setting. Words past max_length are cut; their predictions are "O" (outside every entity).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.tasks.formats import TextExample, TokenExample
from xlmr_ds.tokenizer import Tokenizer
from xlmr_ds.vocab import BOS_ID, EOS_ID, IGNORE_INDEX, PAD_ID, UNK_ID

OUTSIDE = "O"
"""The BIO label of a token outside every entity; what a word cut by max_length is predicted as."""


@dataclass(frozen=True)
class LabelSet:
    """The task's labels in id order: those of the training files, sorted (the same ids whatever the order of
    the lines)."""

    names: tuple[str, ...]

    @classmethod
    def from_examples(cls, examples: Sequence[TextExample | TokenExample]) -> LabelSet:
        found = set()
        for example in examples:
            found.update(example.labels if isinstance(example, TokenExample) else (example.label,))
        return cls(tuple(sorted(found)))

    def id(self, label: str, where: str) -> int:
        try:
            return self._ids[label]
        except KeyError:
            raise XLMRDSError(f"{where}: label {label!r} does not occur in the training files (their labels: "
                              f"{', '.join(self.names)}); fix the label or add training examples with it") from None

    @property
    def _ids(self) -> dict[str, int]:
        ids = self.__dict__.get("_id_table")
        if ids is None:
            ids = {name: i for i, name in enumerate(self.names)}
            object.__setattr__(self, "_id_table", ids)
        return ids


@dataclass(frozen=True)
class Encoded:
    """One example as model input."""

    input_ids: tuple[int, ...]
    label: int | tuple[int, ...]
    """The label id (sequence tasks), or one per position with IGNORE_INDEX where no label is (token tasks)."""

    words: int = 0
    """Token tasks: words in the example (those cut by max_length included)."""


def truncate_longest_first(a: list[int], b: list[int] | None, budget: int) -> None:
    """Drop tokens from the end of the longer list (of a, when equal) until both fit in `budget`, in place."""
    while len(a) + (len(b) if b is not None else 0) > budget:
        if b is not None and len(b) > len(a):
            b.pop()
        else:
            a.pop()


def encode_text_examples(tokenizer: Tokenizer, examples: Sequence[TextExample], labels: LabelSet,
                         max_length: int) -> list[Encoded]:
    texts_a = tokenizer.encode_batch([e.text_a for e in examples])
    pairs = examples and examples[0].text_b is not None
    texts_b = tokenizer.encode_batch([e.text_b for e in examples]) if pairs else [None] * len(examples)
    encoded = []
    for example, ids_a, ids_b in zip(examples, texts_a, texts_b, strict=True):
        a = ids_a.tolist()
        b = ids_b.tolist() if ids_b is not None else None
        truncate_longest_first(a, b, max_length - (4 if b is not None else 2))
        ids = [BOS_ID, *a, EOS_ID] + ([EOS_ID, *b, EOS_ID] if b is not None else [])
        encoded.append(Encoded(tuple(ids), labels.id(example.label, example.where)))
    return encoded


def encode_token_examples(tokenizer: Tokenizer, examples: Sequence[TokenExample], labels: LabelSet,
                          max_length: int) -> list[Encoded]:
    encoded = []
    for example in examples:
        if len(example.tokens) != len(example.labels):  # the reader pairs them; kept for callers' own examples
            raise XLMRDSError(f"{example.where}: {len(example.tokens)} tokens but {len(example.labels)} labels")
        label_ids = [labels.id(label, example.token_where(i)) for i, label in enumerate(example.labels)]
        ids, targets = [BOS_ID], [IGNORE_INDEX]
        for pieces, label in zip(tokenizer.encode_batch(list(example.tokens)), label_ids, strict=True):
            pieces = pieces.tolist() or [UNK_ID]
            if len(ids) + len(pieces) > max_length - 1:
                break  # this word and the rest do not fit
            ids += pieces
            targets += [label] + [IGNORE_INDEX] * (len(pieces) - 1)
        encoded.append(Encoded(tuple(ids + [EOS_ID]), tuple(targets + [IGNORE_INDEX]), len(example.tokens)))
    return encoded


def collate(batch: Sequence[Encoded]) -> dict[str, torch.Tensor]:
    """Pad to the longest example of the batch: input_ids, attention_mask and labels."""
    width = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((len(batch), width), PAD_ID, dtype=torch.long)
    tokens = isinstance(batch[0].label, tuple)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long) if tokens else torch.empty(
        len(batch), dtype=torch.long)
    for row, example in enumerate(batch):
        input_ids[row, : len(example.input_ids)] = torch.tensor(example.input_ids)
        if tokens:
            labels[row, : len(example.label)] = torch.tensor(example.label)
        else:
            labels[row] = example.label
    return {"input_ids": input_ids, "attention_mask": input_ids.ne(PAD_ID).long(), "labels": labels}


def word_predictions(encoded: Encoded, predicted: Sequence[int], labels: LabelSet) -> list[str]:
    """The label predicted for each word of a token example: at its first piece; OUTSIDE for words that
    max_length cut (when OUTSIDE is a label; else the first label)."""
    words = [labels.names[p] for p, target in zip(predicted, encoded.label) if target != IGNORE_INDEX]
    fallback = OUTSIDE if OUTSIDE in labels.names else labels.names[0]
    return words + [fallback] * (encoded.words - len(words))
