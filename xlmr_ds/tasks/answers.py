"""Exact match and token F1 of predicted answers, with MLQA's normalization (Lewis et al. 2020), which for English
is SQuAD v1.1's (tests/tasks/test_answers.py checks it against torchmetrics' SQuAD metric).

An answer is normalized by lower-casing it, removing punctuation (every Unicode P* character and ASCII's
string.punctuation), removing the language's articles, and splitting it into tokens: on whitespace, and for
Chinese and Japanese ("mixed segmentation") every CJK character and punctuation mark is a token of its own.
Articles removed: en a/an/the; es un/una/unos/unas/el/la/los/las; de ein/eine/einen/einem/eines/einer/der/die/
das/den/dem/des; vi của/là/cái/chiếc/những; ar the prefix ال. MLQA names no other language; for those no
article is removed. A prediction's score is its best over the gold answers; a set's score is the mean, in [0, 1].
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "ar": r"\sال^|ال",
}
MIXED_SEGMENTATION = ("zh", "ja")
"""Languages written without spaces between words, whose answers are compared character by character."""

_CJK = re.compile(r"[\u4e00-\u9fa5]")


@lru_cache(maxsize=1)
def _punctuation() -> frozenset[str]:
    marks = {chr(i) for i in range(sys.maxunicode + 1) if unicodedata.category(chr(i)).startswith("P")}
    return frozenset(marks | set(string.punctuation))


def _mixed_segmentation(text: str) -> list[str]:
    punctuation, tokens, run = _punctuation(), [], ""
    for char in text:
        if _CJK.match(char) or char in punctuation:
            tokens += run.split()
            run = ""
            tokens.append(char)
        else:
            run += char
    return tokens + run.split()


def answer_tokens(text: str, language: str | None) -> list[str]:
    """The normalized tokens of an answer (see the module docstring)."""
    punctuation = _punctuation()
    text = "".join(char for char in text.lower() if char not in punctuation)
    if language in _ARTICLES:
        text = re.sub(_ARTICLES[language], " ", text)
    return _mixed_segmentation(text) if language in MIXED_SEGMENTATION else text.split()


def _f1(predicted: list[str], gold: list[str]) -> float:
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def answer_scores(predicted: Sequence[str], gold: Sequence[Sequence[str]], language: str | None) -> tuple[float, float]:
    """(exact match, F1) of the predictions against each example's gold answers, means over the examples."""
    if len(predicted) != len(gold) or not gold:
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} examples")
    exact = f1 = 0.0
    for prediction, answers in zip(predicted, gold, strict=True):
        mine = answer_tokens(prediction, language)
        golds = [answer_tokens(answer, language) for answer in answers]
        exact += max(float(mine == g) for g in golds)
        f1 += max(_f1(mine, g) for g in golds)
    return exact / len(gold), f1 / len(gold)
