"""Small task files in the formats users have (XNLI-1.0, XNLI-MT, plain TSV, JSONL, CoNLL/XTREME), written from
the test corpus' words so that the test tokenizer knows them, with labels a model can learn: a pair is
"entailment" when both texts start with the same word, a sentence is "a" or "b" by its first word, a token is
B-/I-PER inside a run of "name" words. Nothing is downloaded."""

from __future__ import annotations

import json
import random
from pathlib import Path

XNLI_HEADER = ["language", "gold_label", "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse",
               "sentence2_parse", "sentence1", "sentence2", "promptID", "pairID", "genre"]


def corpus_words(corpus_dir: Path, language: str, count: int = 40) -> list[str]:
    words = []
    for line in (corpus_dir / f"{language}.txt").read_text(encoding="utf-8").splitlines():
        for word in line.rstrip(".").split():
            if word not in words:
                words.append(word)
        if len(words) >= count:
            break
    return words[:count]


def pair_examples(words: list[str], n: int, seed: int) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        first = rng.choice(words[:8])
        a = " ".join([first] + rng.choices(words, k=5))
        same = i % 2 == 0
        other = first if same else rng.choice([w for w in words[:8] if w != first])
        b = " ".join([other] + rng.choices(words, k=4))
        rows.append((a, b, "entailment" if same else "contradiction"))
    return rows


def write_xnli(path: Path, rows_by_language: dict[str, list[tuple[str, str, str]]]) -> Path:
    lines = ["\t".join(XNLI_HEADER)]
    for language, rows in rows_by_language.items():
        for i, (a, b, label) in enumerate(rows):
            lines.append("\t".join([language, label, "(x)", "(y)", "(X x)", "(Y y)", a, b, str(i), str(i), "fiction"]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_xnli_mt(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    spelled = [(a, b, "contradictory" if label == "contradiction" else label) for a, b, label in rows]
    path.write_text("premise\thypo\tlabel\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in spelled), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("".join(json.dumps({"premise": a, "hypothesis": b, "label": c}) + "\n" for a, b, c in rows),
                    encoding="utf-8")
    return path


def token_sentences(words: list[str], n: int, seed: int) -> list[list[tuple[str, str]]]:
    """Sentences whose words 0-2 of the list are person names (B-PER then I-PER), the rest O."""
    rng = random.Random(seed)
    names, others = words[:3], words[3:]
    sentences = []
    for _ in range(n):
        sentence = [(w, "O") for w in rng.choices(others, k=rng.randint(2, 6))]
        at = rng.randint(0, len(sentence))
        run = [(w, "B-PER" if j == 0 else "I-PER") for j, w in enumerate(rng.choices(names, k=rng.randint(1, 2)))]
        sentences.append(sentence[:at] + run + sentence[at:])
    return sentences


def write_conll(path: Path, sentences: list[list[tuple[str, str]]], language: str | None = None) -> Path:
    prefix = f"{language}:" if language else ""
    blocks = ["\n".join(f"{prefix}{w}\t{label}" for w, label in sentence) for sentence in sentences]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def qa_examples(words: list[str], n: int, seed: int, context_words: tuple[int, int] = (8, 20)) -> list[dict]:
    """SQuAD v1.1 paragraphs of one question each: the context is corpus words, the question three of them, the
    answer 1-3 consecutive words of the context (the words after the question's first word where it occurs)."""
    rng = random.Random(seed)
    paragraphs = []
    for i in range(n):
        context_list = rng.choices(words, k=rng.randint(*context_words))
        at = rng.randrange(len(context_list))
        length = min(rng.randint(1, 3), len(context_list) - at)
        start = len(" ".join(context_list[:at])) + (1 if at else 0)
        answer = " ".join(context_list[at:at + length])
        context = " ".join(context_list) + "."
        assert context[start:start + len(answer)] == answer
        question = " ".join(rng.choices(words, k=3)) + "?"
        paragraphs.append({"context": context, "qas": [{"id": f"q{seed}-{i}", "question": question,
                                                         "answers": [{"text": answer, "answer_start": start}]}]})
    return paragraphs


def write_squad(path: Path, paragraphs: list[dict]) -> Path:
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]},
                               ensure_ascii=False), encoding="utf-8")
    return path
