"""Reading fine-tuning and evaluation files in the formats their users have them.

Every file is UTF-8 text; a byte-order mark at its start is dropped (editors on Windows write one). Lines end
at "\\n" or "\\r\\n" only, as `wc -l` counts them: U+2028, U+2029, U+0085 and a lone "\\r" are text inside a
line (`read_lines`, also the reader of `eval retrieval`'s parallel files). One example is one line, so a stray
character inside an example never splits it; a file with old Mac line ends (a lone "\\r" between lines) reads
as one line and is refused by its column count. (Corpora take a lone "\\r" for a line end: there a document's
lines are text either way, and old Mac files must not merge documents; prep/corpus/shards.py.)

Sentence and sentence-pair files (one example per line):

    XNLI-1.0      xnli.dev.tsv / xnli.test.tsv: tab-separated with a header row that names at least
                  `language`, `gold_label`, `sentence1` and `sentence2`; one file holds every language, and
                  `LANG=FILE` reads the rows whose `language` is LANG (without LANG=, a file of several
                  languages is refused: name one).
    XNLI-MT-1.0   multinli.train.<lang>.tsv: a header row `premise<TAB>hypo<TAB>label`; the label spelled
                  "contradictory" in some of these files is read as "contradiction", XNLI-1.0's spelling.
    TSV, header   a first line that names a label column, `label` or `gold_label` (so no class is ever named
                  so), is a header, as XNLI's are: the columns are found by the names JSONL uses below, in any
                  order, other columns ignored; a header that names no text column gives the one or two other
                  columns in order (`review<TAB>label`). A later row labelled `label` or `gold_label` is refused.
    plain TSV     no header; `text_a<TAB>text_b<TAB>label` (pairs) or `text<TAB>label` (sequences).
    JSONL         one JSON object per line (*.jsonl): the label under `label` (or `gold_label`), the text under
                  `text_a` / `text` / `sentence` / `sentence1` / `premise`, the optional second text under
                  `text_b` / `sentence2` / `hypothesis` / `hypo`; an optional `language` field filters like XNLI's.

The TSV dialect: fields part at tabs, and quotes are read as Python's csv module writes them (its `excel-tab`
dialect: `"` quotes, `""` inside for one `"`) wherever that is unambiguous, since XNLI-1.0 and XNLI-MT-1.0
are written without quoting (transformers' XNLI processor and Hugging Face datasets read them with quoting
off) and hold sentences like `"Hello," he said.`, `"Why not?"` or a lone `"`. The rule, per line:
  - a field is csv-quoted when it starts with `"`, ends with `"` before a tab or the line's end, and every `"`
    between is doubled; it is read without its quotes, `""` as `"`, when its value holds what csv's default
    writer (QUOTE_MINIMAL) quotes (a tab, a `"`, a "\\r"), or when every field of the line is quoted
    (QUOTE_ALL); otherwise it is read verbatim, quotes kept (`"Why not?"`, as XNLI means it);
  - every other field is verbatim: a `"` anywhere in it is text, and a field that opens a quote never
    reaches past its line (a quoted field cannot hold a newline: one example per line);
  - in a file with a header (XNLI's), where the quotes would give a row the wrong number of columns and its
    plain tabs the right one (a sentence that starts with `"` and a later one that ends with one), the plain
    tabs part it; without a header that row is an error, as the width cannot tell which was meant.

Token files (CoNLL-2002/2003, WikiANN/PAN-X as XTREME writes them): one token per line, its label in the last
column (CoNLL-2003's POS and chunk columns in between are ignored), columns parted by tabs or ASCII spaces
only (a no-break space, U+00A0, is part of a token: `10 000`), a blank line between sentences, `-DOCSTART-`
lines skipped. XTREME prefixes every token with its language (`en:Paris`): when every token of a file starts
with the same `xx:` (2-3 lower-case letters, an optional `-Script`), that prefix is removed and gives the
file's language; otherwise tokens are read verbatim (`smb://host`, `de:facto`).

Question-answering files (SQuAD v1.1 JSON, the format of SQuAD, MLQA and XQuAD): one object
`{"data": [{"paragraphs": [{"context": C, "qas": [{"id": ID, "question": Q, "answers": [{"text": A,
"answer_start": K}, ...]}, ...]}, ...]}, ...]}`, where context[K:K+len(A)] is A (checked). The language is
LANG=, else the context's in an MLQA name (dev-context-de-question-en.json), else one like xquad.de.json.
SQuAD 2.0's unanswerable questions (`is_impossible`, no answers) are refused, as MLQA and XQuAD have none.

A file's language: LANG= in `LANG=FILE` (split at the first `=` only when a language code comes before it, so
`tasks/lang=de/train.conll` is a path), else the one language of its `language` column or field, or of its
tokens' prefix, else a language code in its name (`multinli.train.de.tsv`, `train-sw.tsv`; not the `dev` of
`xnli.dev.tsv` or the `all` of `panx_all.iob2`); language codes are CLDR's (tasks/language_codes.py). A dev
file whose language none of these gives is refused by finetune: give it as LANG=FILE.

Every example keeps where it came from (`file:line`, or for JSON `file: data[i].paragraphs[j].qas[k] (id)`),
so a later error (an unknown label) names it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.tasks.language_codes import is_language_code

Task = Literal["pair-classification", "sequence-classification", "token-classification", "question-answering"]
TASKS = get_args(Task)

LABEL_SPELLINGS = {"contradictory": "contradiction"}
"""Labels that one distribution spells differently from another, read as the common spelling."""

_TEXT_A_FIELDS = ("text_a", "text", "sentence", "sentence1", "premise")
_TEXT_B_FIELDS = ("text_b", "sentence2", "hypothesis", "hypo")
_LABEL_FIELDS = ("label", "gold_label")
_XNLI_COLUMNS = ("language", "gold_label", "sentence1", "sentence2")
_LANGUAGE_PREFIX = re.compile(r"^([a-z]{2,3}(?:[-_][A-Za-z]+)?):(.+)$")
_LANGUAGE_IN_NAME = re.compile(r"[._-]([a-z]{2,3})\.(?:tsv|jsonl|json|txt|conll|iob2?)$")
_MLQA_CONTEXT_LANGUAGE = re.compile(r"context-([a-z]{2,3})-question-[a-z]{2,3}\.json$")
_BYTE_ORDER_MARK = "\ufeff"
_QUOTED_FIELD = re.compile(r'"((?:[^"]|"")*)"(?=\t|\Z)')
"""A field quoted as Python's csv module quotes: in `"`, every `"` inside doubled, then a tab or the line's end."""
_CSV_QUOTES = ("\t", '"', "\r")
"""What makes csv's default (QUOTE_MINIMAL) writer quote a field that fits on one line."""
_CONLL_COLUMNS = re.compile(r"[ \t]+")


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
        """LANG=FILE split at the first `=` when a language code comes before it; else FILE alone, which may
        hold `=` itself (tasks/lang=de/train.conll)."""
        language, sep, path = spec.partition("=")
        if sep and (not language or (is_language_code(language) and not path)):
            raise XLMRDSError(f"{flag} {spec}: expected LANG=FILE with both parts")
        if sep and is_language_code(language):
            return cls(Path(path), language)
        if language_required:
            why = f"; {language!r} is not a language code CLDR names" if sep else ""
            raise XLMRDSError(f"{flag} {spec}: expected LANG=FILE{why} (for example de=xnli.test.tsv)")
        return cls(Path(spec), None)


def _normal_label(label: str) -> str:
    label = label.strip()
    return LABEL_SPELLINGS.get(label, label)


def read_text(path: Path) -> str:
    """A task or parallel file's text: UTF-8, without the byte-order mark some editors write first (a mark
    anywhere else is text)."""
    if not path.is_file():
        raise XLMRDSError(f"{path}: not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise XLMRDSError(f"{path}:{line}: not UTF-8 text") from None
    return text.removeprefix(_BYTE_ORDER_MARK)


def read_lines(path: Path) -> list[str]:
    """The file's lines as `wc -l` counts them: split at "\\n" only, a "\\r" before it dropped; the other
    Unicode line breaks (U+2028, U+2029, U+0085, a lone "\\r") are text inside a line."""
    lines = read_text(path).split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_text_examples(file: TaskFile, pairs: bool) -> tuple[list[TextExample], str | None]:
    """The file's examples and its language (the one asked for, or found in a `language` column when the
    file holds a single one, or a language code in a name like multinli.train.de.tsv; else None)."""
    lines = read_lines(file.path)
    if file.path.suffix == ".jsonl":
        examples, languages = _read_jsonl(file, lines, pairs)
    else:
        examples, languages = _read_tsv(file, lines, pairs)
    if not file.language and len(languages) > 1:
        raise XLMRDSError(f"{file.path}: rows in {len(languages)} languages ({', '.join(sorted(languages))}); "
                          f"name the one to read with LANG=FILE")
    if not examples:
        wanted = f" for language {file.language!r}" if file.language and languages else ""
        found = f" (it has {', '.join(sorted(languages))})" if languages else ""
        raise XLMRDSError(f"{file.path}: no examples{wanted}{found}; expected one per line")
    return examples, file.language or _language_of(file.path, languages)


def _language_of(path: Path, languages: set[str]) -> str | None:
    if len(languages) == 1:
        return next(iter(languages))
    match = _LANGUAGE_IN_NAME.search(path.name)
    return match.group(1) if match and is_language_code(match.group(1)) else None


def _tsv_fields(line: str) -> list[str]:
    """One line's fields, split at tabs, a field quoted as Python's csv module writes it read back (the module
    docstring has the rule)."""
    fields = []  # (the field as written, its value were it quoted by csv, else None)
    position = 0
    while True:
        quoted = _QUOTED_FIELD.match(line, position)
        if quoted:
            end, value = quoted.end(), quoted.group(1).replace('""', '"')
        else:
            tab = line.find("\t", position)
            end, value = (len(line) if tab < 0 else tab), None
        fields.append((line[position:end], value))
        if end == len(line):
            break
        position = end + 1
    # A writer that quotes every field (QUOTE_ALL) means its quotes; else a quoted field is csv's only when
    # csv would have quoted its value: XNLI's unquoted files hold sentences like "Why not?" with their quotes.
    every = all(value is not None for _, value in fields)
    return [value if value is not None and (every or any(c in value for c in _CSV_QUOTES)) else written
            for written, value in fields]


@dataclass(frozen=True)
class _Columns:
    """Where a TSV file's fields are, and how wide its rows are."""

    text_a: int
    text_b: int | None
    label: int
    language: int | None
    width: int
    header: tuple[str, ...] = ()
    """The column names, when the first line is a header."""

    wider_rows: bool = False
    """XNLI-1.0's rows may carry more columns than its header names; other rows have exactly `width`."""

    def fits(self, row: list[str]) -> bool:
        return len(row) >= self.width if self.wider_rows else len(row) == self.width

    def expected(self, pairs: bool) -> str:
        if self.wider_rows:
            return f"the header's {self.width} columns"
        if self.header:
            return f"{self.width} columns ({', '.join(self.header)})"
        return f"{self.width} tab-separated columns ({'text_a<TAB>text_b<TAB>label' if pairs else 'text<TAB>label'})"


def _columns(first: list[str], pairs: bool, where: str) -> _Columns:
    """The file's columns: named by a header when its first line names a label column (`label`, `gold_label`:
    no class is named so), else text_a, [text_b,] label in that order."""
    header = tuple(cell.strip() for cell in first)
    if not any(name in header for name in _LABEL_FIELDS):
        return _Columns(0, 1, 2, None, 3) if pairs else _Columns(0, None, 1, None, 2)

    def named(names: tuple[str, ...]) -> int | None:
        return next((header.index(name) for name in names if name in header), None)

    label, language, text_a, text_b = (named(names) for names in (_LABEL_FIELDS, ("language",), _TEXT_A_FIELDS,
                                                                   _TEXT_B_FIELDS))
    unnamed = [i for i in range(len(header)) if i not in (label, language)]
    if text_a is None and text_b is None and len(unnamed) == (2 if pairs else 1):  # `review<TAB>label`
        text_a, text_b = unnamed[0], unnamed[1] if pairs else None
    if text_a is None:
        raise XLMRDSError(f"{where}: the header names no text column ({', '.join(_TEXT_A_FIELDS)})")
    if pairs and text_b is None:
        raise XLMRDSError(f"{where}: the header names no second text column ({', '.join(_TEXT_B_FIELDS)})")
    xnli = all(name in header for name in _XNLI_COLUMNS)
    return _Columns(text_a, text_b, label, language, len(header), header, wider_rows=xnli)


def _tsv_row(line: str, columns: _Columns, pairs: bool, where: str) -> list[str]:
    row = _tsv_fields(line)
    if columns.fits(row):
        return row
    # In a file whose header fixes the width (XNLI's, unquoted), a sentence that starts with `"` and a later one
    # that ends with `"` are not one csv field; without a header the width cannot tell, so it is an error.
    unquoted = line.split("\t")
    if columns.header and columns.fits(unquoted):
        return unquoted
    count = f"{len(row)} column{'s' if len(row) != 1 else ''}"
    if columns.fits(unquoted):
        hint = '; read with csv quoting, a field that starts with `"` runs to one that ends with `"`: quote as csv does'
    elif line.count('"') % 2:
        hint = "; a quoted field must close on its line (one example per line)"
    else:
        hint = ""
    raise XLMRDSError(f"{where}: {count}, expected {columns.expected(pairs)}{hint}")


def _read_tsv(file: TaskFile, lines: list[str], pairs: bool) -> tuple[list[TextExample], set[str]]:
    path = file.path
    columns = _columns(_tsv_fields(lines[0]) if lines else [], pairs, f"{path}:1")
    examples, languages = [], set()
    for number, line in enumerate(lines[1 if columns.header else 0:], start=2 if columns.header else 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        row = _tsv_row(line, columns, pairs, where)
        label = row[columns.label].strip()
        if label in _LABEL_FIELDS:
            raise XLMRDSError(f"{where}: the label {label!r} is a column name; a header is read only as the first "
                              f"line")
        language = row[columns.language].strip() if columns.language is not None else None
        if language:
            languages.add(language)
            if file.language and language != file.language:
                continue
        text_b = row[columns.text_b] if columns.text_b is not None else None
        examples.append(TextExample(row[columns.text_a], text_b, _normal_label(label), where))
    _check_shape(examples, pairs, path, bool(columns.header))
    return examples, languages


def _check_shape(examples: list[TextExample], pairs: bool, path: Path, named: bool) -> None:
    """Pairs given to a sentence task, in a file whose columns are named (a header or JSON); a pair task short
    of a second text fails on its line already."""
    if examples and not pairs and examples[0].text_b is not None and named:
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
    _check_shape(examples, pairs, file.path, named=True)
    return examples, languages


def read_token_examples(file: TaskFile) -> tuple[list[TokenExample], str | None]:
    """CoNLL-style sentences and the file's language (asked for, from the tokens' `lang:` prefix, or from a
    language code in the file name)."""
    examples, prefix = _without_language_prefix(_conll_sentences(file.path, read_lines(file.path)))
    if not examples:
        raise XLMRDSError(f"{file.path}: no sentences; expected `token<TAB>label` lines, a blank line between "
                          f"sentences")
    if file.language and prefix and file.language != prefix:
        raise XLMRDSError(f"{file.path}: its tokens are prefixed {prefix}, not {file.language!r}; check LANG=FILE")
    return examples, file.language or _language_of(file.path, {prefix} if prefix else set())


def _conll_sentences(path: Path, lines: list[str]) -> list[TokenExample]:
    """The sentences as written: columns parted by tabs or ASCII spaces only (a no-break space is inside a token,
    as in `10 000`), the label in the last column."""
    examples, tokens, labels, first = [], [], [], 0

    def end_sentence():
        if tokens:
            examples.append(TokenExample(tuple(tokens), tuple(labels), str(path), first))
            tokens.clear()
            labels.clear()

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            end_sentence()
            continue
        if "\r" in line:  # a token holds none: old Mac line ends, which would make one token of a sentence
            raise XLMRDSError(f"{path}:{number}: a carriage return inside the line (old Mac line ends?); token "
                              f"files end their lines with \\n or \\r\\n")
        fields = _CONLL_COLUMNS.split(line.strip(" \t"))
        if fields[0] == "-DOCSTART-":
            continue
        if len(fields) < 2:
            raise XLMRDSError(f"{path}:{number}: one column ({line.strip()!r}); expected `token<TAB>label` (the "
                              f"label missing?)")
        if not tokens:
            first = number
        tokens.append(fields[0])
        labels.append(fields[-1])
    end_sentence()
    return examples


def _without_language_prefix(examples: list[TokenExample]) -> tuple[list[TokenExample], str | None]:
    """XTREME's `lang:` prefix cut from every token, and the language it names, when every token of the file has
    the same one (XTREME's convention); else the tokens as they are (`smb://host`, `de:facto`) and None."""
    prefixes = {match.group(1) if (match := _LANGUAGE_PREFIX.match(token)) else None
                for example in examples for token in example.tokens}
    if len(prefixes) != 1 or None in prefixes:
        return examples, None
    prefix = prefixes.pop()
    return [dataclasses.replace(e, tokens=tuple(t[len(prefix) + 1:] for t in e.tokens)) for e in examples], prefix


def _field(record, key: str, kind: type, where: str, expected: str):
    value = record.get(key) if isinstance(record, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        found = "missing" if not isinstance(record, dict) or key not in record else f"a {type(value).__name__}"
        raise XLMRDSError(f"{where}: `{key}` is {found}; expected {expected} (SQuAD v1.1 JSON)")
    return value


def read_qa_examples(file: TaskFile) -> tuple[list[QAExample], str | None]:
    """SQuAD v1.1-style questions (see the module docstring) and the file's language."""
    try:
        document = json.loads(read_text(file.path))
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
