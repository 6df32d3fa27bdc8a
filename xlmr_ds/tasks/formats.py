"""Reading fine-tuning and evaluation files in the formats their users have them.

Sentence and sentence-pair files (one example per line; UTF-8):

    XNLI-1.0      xnli.dev.tsv / xnli.test.tsv: tab-separated with a header row that names at least
                  `language`, `gold_label`, `sentence1` and `sentence2`; one file holds every language, and
                  `LANG=FILE` reads the rows whose `language` is LANG.
    XNLI-MT-1.0   multinli.train.<lang>.tsv: a header row `premise<TAB>hypo<TAB>label`; the label spelled
                  "contradictory" in some of these files is read as "contradiction", XNLI-1.0's spelling.
    plain TSV     no header; `text_a<TAB>text_b<TAB>label` (pairs) or `text<TAB>label` (sequences).
    JSONL         one JSON object per line (*.jsonl): the label under `label` (or `gold_label`), the text under
                  `text_a` / `text` / `sentence1` / `premise`, the optional second text under `text_b` /
                  `sentence2` / `hypothesis` / `hypo`; an optional `language` field filters like XNLI's.

Token files (CoNLL-2002/2003, WikiANN/PAN-X as XTREME writes them): one token per line, its label in the last
whitespace-separated column (CoNLL-2003's POS and chunk columns in between are ignored), a blank line between
sentences, `-DOCSTART-` lines skipped. XTREME prefixes every token with its language (`en:Paris`): the prefix
is removed and gives the file's language.

Question-answering files (SQuAD v1.1 JSON, the format of SQuAD, MLQA and XQuAD): one object
`{"data": [{"paragraphs": [{"context": C, "qas": [{"id": ID, "question": Q, "answers": [{"text": A,
"answer_start": K}, ...]}, ...]}, ...]}, ...]}`, where context[K:K+len(A)] is A (checked). The language is
LANG=, else the context's in an MLQA name (dev-context-de-question-en.json), else one like xquad.de.json.
SQuAD 2.0's unanswerable questions (`is_impossible`, no answers) are refused, as MLQA and XQuAD have none.

Every example keeps where it came from (`file:line`, or for JSON `file: data[i].paragraphs[j].qas[k] (id)`),
so a later error (an unknown label) names it.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from xlmr_ds.errors import XLMRDSError

TASKS = ("pair-classification", "sequence-classification", "token-classification", "question-answering")

LABEL_SPELLINGS = {"contradictory": "contradiction"}
"""Labels that one distribution spells differently from another, read as the common spelling."""

_TEXT_A_FIELDS = ("text_a", "text", "sentence1", "premise")
_TEXT_B_FIELDS = ("text_b", "sentence2", "hypothesis", "hypo")
_LABEL_FIELDS = ("label", "gold_label")
_XNLI_COLUMNS = ("language", "gold_label", "sentence1", "sentence2")
_XNLI_MT_HEADER = ("premise", "hypo", "label")
_LANGUAGE_PREFIX = re.compile(r"^([a-z]{2,3}(?:[-_][A-Za-z]+)?):(.+)$")
_LANGUAGE_IN_NAME = re.compile(r"[._-]([a-z]{2,3})\.(?:tsv|jsonl|json|txt|conll|iob2?)$")
_MLQA_CONTEXT_LANGUAGE = re.compile(r"context-([a-z]{2,3})-question-[a-z]{2,3}\.json$")

csv.field_size_limit(sys.maxsize)  # a long premise is one field


@dataclass(frozen=True)
class TextExample:
    """One sentence (text_b None) or sentence pair with its label."""

    text_a: str
    text_b: str | None
    label: str
    where: str
    """file:line, for errors."""


@dataclass(frozen=True)
class TokenExample:
    """One sentence as words, each with its BIO label."""

    tokens: tuple[str, ...]
    labels: tuple[str, ...]
    path: str
    line: int
    """Line of the sentence's first token; token i is on line + i."""

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def token_where(self, i: int) -> str:
        return f"{self.path}:{self.line + i}"


@dataclass(frozen=True)
class QAExample:
    """One question about one context and its gold answers."""

    id: str
    question: str
    context: str
    answers: tuple[tuple[int, str], ...]
    """(character offset in the context, text) of each gold answer; the first is the one trained on."""

    where: str
    """file and the question's place in it, for errors."""


@dataclass(frozen=True)
class TaskFile:
    """What `[LANG=]FILE` on the command line names."""

    path: Path
    language: str | None
    """The language asked for; None: the file's own (each reader says how it finds it)."""

    @classmethod
    def parse(cls, spec: str, flag: str, language_required: bool = False) -> TaskFile:
        language, sep, path = spec.partition("=")
        if not sep:
            if language_required:
                raise XLMRDSError(f"{flag} {spec}: expected LANG=FILE (for example de=xnli.test.tsv)")
            language, path = None, spec
        elif not language or not path:
            raise XLMRDSError(f"{flag} {spec}: expected LANG=FILE with both parts")
        return cls(Path(path), language)


def _normal_label(label: str) -> str:
    label = label.strip()
    return LABEL_SPELLINGS.get(label, label)


def _open_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise XLMRDSError(f"{path}: not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise XLMRDSError(f"{path}:{line}: not UTF-8 text") from None
    return text.splitlines()


def read_text_examples(file: TaskFile, pairs: bool) -> tuple[list[TextExample], str | None]:
    """The file's examples and its language (the one asked for, or found in a `language` column when the
    file holds a single one, or in a name like multinli.train.de.tsv; else None)."""
    lines = _open_lines(file.path)
    if file.path.suffix == ".jsonl":
        examples, languages = _read_jsonl(file, lines, pairs)
    else:
        examples, languages = _read_tsv(file, lines, pairs)
    if not examples:
        wanted = f" for language {file.language!r}" if file.language and languages else ""
        found = f" (it has {', '.join(sorted(languages))})" if languages else ""
        raise XLMRDSError(f"{file.path}: no examples{wanted}{found}; expected one per line")
    return examples, file.language or _language_of(file.path, languages)


def _language_of(path: Path, languages: set[str]) -> str | None:
    if len(languages) == 1:
        return next(iter(languages))
    match = _LANGUAGE_IN_NAME.search(path.name)
    return match.group(1) if match else None


def _read_tsv(file: TaskFile, lines: list[str], pairs: bool) -> tuple[list[TextExample], set[str]]:
    rows = list(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    path = file.path
    header = [cell.strip() for cell in rows[0]] if rows else []
    if all(column in header for column in _XNLI_COLUMNS):
        columns = [header.index(c) for c in _XNLI_COLUMNS]
        start, layout = 1, "xnli"
    elif tuple(header[:3]) == _XNLI_MT_HEADER:
        columns, start, layout = [None, 2, 0, 1], 1, "xnli-mt"
    else:
        columns = [None, 2, 0, 1] if pairs else [None, 1, 0, None]
        start, layout = 0, "plain"
    expected = {"xnli": len(header), "xnli-mt": 3, "plain": 3 if pairs else 2}[layout]
    examples, languages = [], set()
    for number, row in enumerate(rows[start:], start=start + 1):
        if not row or not any(cell.strip() for cell in row):
            continue
        # XNLI-1.0 rows may carry more columns than we read; the others have exactly their columns.
        wrong_width = len(row) < expected if layout == "xnli" else len(row) != expected
        if wrong_width:
            shape = "text_a<TAB>text_b<TAB>label" if pairs else "text<TAB>label"
            what = {"xnli": f"the header's {expected} columns", "xnli-mt": "3 columns (premise, hypo, label)",
                    "plain": f"{expected} tab-separated columns ({shape})"}[layout]
            raise XLMRDSError(f"{path}:{number}: {len(row)} columns, expected {what}")
        language = row[columns[0]].strip() if columns[0] is not None else None
        if language:
            languages.add(language)
            if file.language and language != file.language:
                continue
        text_b = row[columns[3]] if columns[3] is not None else None
        examples.append(TextExample(row[columns[2]], text_b, _normal_label(row[columns[1]]), f"{path}:{number}"))
    _check_shape(examples, pairs, path, layout)
    return examples, languages


def _check_shape(examples: list[TextExample], pairs: bool, path: Path, layout: str) -> None:
    """Pairs given to a sentence task (a pair task short of a second text fails on its line already)."""
    if examples and not pairs and examples[0].text_b is not None and layout != "plain":
        raise XLMRDSError(f"{path}: sentence pairs; use --task pair-classification for them")


def _first(record: dict, fields: tuple[str, ...]):
    for field in fields:
        if field in record:
            return record[field]
    return None


def _read_jsonl(file: TaskFile, lines: list[str], pairs: bool) -> tuple[list[TextExample], set[str]]:
    examples, languages = [], set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{file.path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise XLMRDSError(f"{where}: invalid JSON ({error.msg}); expected one object per line") from None
        if not isinstance(record, dict):
            raise XLMRDSError(f"{where}: a JSON {type(record).__name__}, expected an object")
        text_a, text_b, label = (_first(record, f) for f in (_TEXT_A_FIELDS, _TEXT_B_FIELDS, _LABEL_FIELDS))
        if text_a is None or label is None or (pairs and text_b is None):
            needed = ["text_a (or text, sentence1, premise)", "label"]
            if pairs:
                needed.insert(1, "text_b (or sentence2, hypothesis, hypo)")
            raise XLMRDSError(f"{where}: missing field; expected {', '.join(needed)}")
        language = record.get("language")
        if language:
            languages.add(str(language))
            if file.language and language != file.language:
                continue
        examples.append(TextExample(str(text_a), None if text_b is None else str(text_b),
                                    _normal_label(str(label)), where))
    _check_shape(examples, pairs, file.path, "jsonl")
    return examples, languages


def read_token_examples(file: TaskFile) -> tuple[list[TokenExample], str | None]:
    """CoNLL-style sentences and the file's language (asked for, from the tokens' `lang:` prefix, or from the
    file name)."""
    lines = _open_lines(file.path)
    examples, languages = [], set()
    tokens, labels, first = [], [], 0

    def end_sentence():
        if tokens:
            examples.append(TokenExample(tuple(tokens), tuple(labels), str(file.path), first))
            tokens.clear()
            labels.clear()

    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            end_sentence()
            continue
        if fields[0] == "-DOCSTART-":
            continue
        if len(fields) < 2:
            raise XLMRDSError(f"{file.path}:{number}: one column ({line.strip()!r}); expected "
                              f"`token<TAB>label` (the label missing?)")
        token = fields[0]
        prefixed = _LANGUAGE_PREFIX.match(token)
        if prefixed:
            languages.add(prefixed.group(1))
            token = prefixed.group(2)
        if not tokens:
            first = number
        tokens.append(token)
        labels.append(fields[-1])
    end_sentence()
    if not examples:
        raise XLMRDSError(f"{file.path}: no sentences; expected `token<TAB>label` lines, a blank line between "
                          f"sentences")
    if file.language and languages and file.language not in languages:
        raise XLMRDSError(f"{file.path}: its tokens are prefixed {', '.join(sorted(languages))}, not "
                          f"{file.language!r}; check LANG=FILE")
    return examples, file.language or _language_of(file.path, languages)


def _field(record, key: str, kind: type, where: str, expected: str):
    value = record.get(key) if isinstance(record, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        found = "missing" if not isinstance(record, dict) or key not in record else f"a {type(value).__name__}"
        raise XLMRDSError(f"{where}: `{key}` is {found}; expected {expected} (SQuAD v1.1 JSON)")
    return value


def read_qa_examples(file: TaskFile) -> tuple[list[QAExample], str | None]:
    """SQuAD v1.1-style questions (see the module docstring) and the file's language."""
    text = "\n".join(_open_lines(file.path))
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise XLMRDSError(f"{file.path}:{error.lineno}: invalid JSON ({error.msg}); expected SQuAD v1.1 JSON") from None
    examples = []
    for i, article in enumerate(_field(document, "data", list, str(file.path), "a list of articles")):
        where_article = f"{file.path}: data[{i}]"
        for j, paragraph in enumerate(_field(article, "paragraphs", list, where_article, "a list of paragraphs")):
            where_paragraph = f"{where_article}.paragraphs[{j}]"
            context = _field(paragraph, "context", str, where_paragraph, "the paragraph's text")
            for k, qa in enumerate(_field(paragraph, "qas", list, where_paragraph, "a list of questions")):
                where = f"{where_paragraph}.qas[{k}]"
                qid = str(_field(qa, "id", (str, int), where, "the question's id"))
                where = f"{where} (id {qid})"
                question = _field(qa, "question", str, where, "the question's text")
                answers = _field(qa, "answers", list, where, "a list of answers")
                if qa.get("is_impossible") or not answers:
                    raise XLMRDSError(f"{where}: a question without an answer (SQuAD 2.0); xlmr-ds reads SQuAD v1.1, "
                                      f"MLQA and XQuAD, where every question has one")
                spans = []
                for n, answer in enumerate(answers):
                    where_answer = f"{where}.answers[{n}]"
                    answer_text = _field(answer, "text", str, where_answer, "the answer's text")
                    start = _field(answer, "answer_start", int, where_answer, "its character offset in the context")
                    if not answer_text or context[start:start + len(answer_text)] != answer_text:
                        raise XLMRDSError(f"{where_answer}: the context at answer_start={start} reads "
                                          f"{context[start:start + len(answer_text)]!r}, not the answer "
                                          f"{answer_text!r}; expected the answer's character offset")
                    spans.append((start, answer_text))
                examples.append(QAExample(qid, question, context, tuple(spans), where))
    if not examples:
        raise XLMRDSError(f"{file.path}: no questions; expected SQuAD v1.1 JSON with data[].paragraphs[].qas[]")
    mlqa = _MLQA_CONTEXT_LANGUAGE.search(file.path.name)
    return examples, file.language or (mlqa.group(1) if mlqa else _language_of(file.path, set()))
