"""Task files as users have them are read into the same examples; bad lines are one error naming file:line."""

import csv
import io
import json
from pathlib import Path

import pytest
from task_factory import XNLI_HEADER, write_conll, write_jsonl, write_squad, write_xnli, write_xnli_mt

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.tasks.formats import TaskFile
from xlmr_ds.tasks.kinds import KINDS

ROWS = [("a b c", "a d", "entailment"), ("x y", "z", "contradiction"), ("p q", "r s", "neutral")]


def _plain_pairs(path):
    path.write_text("".join(f"{a}\t{b}\t{c}\n" for a, b, c in ROWS), encoding="utf-8")
    return path


# (name, writer, the name of the file, the language asked for, the language expected)
PAIR_FORMATS = [
    ("xnli-1.0 with its language column", lambda p: write_xnli(p, {"de": ROWS, "en": ROWS[:1]}), "xnli.test.tsv",
     "de", "de"),
    ("xnli-mt train with 'contradictory'", lambda p: write_xnli_mt(p, ROWS), "multinli.train.de.tsv", None, "de"),
    ("plain tsv, language from LANG=", _plain_pairs, "pairs.tsv", "fr", "fr"),
    ("plain tsv, no language", _plain_pairs, "pairs.tsv", None, None),
    ("jsonl with named fields", lambda p: write_jsonl(p, ROWS), "dev.sw.jsonl", None, "sw"),
]


@pytest.mark.parametrize("name,writer,filename,asked,language", PAIR_FORMATS, ids=[c[0] for c in PAIR_FORMATS])
def test_pair_formats_read_to_the_same_examples(tmp_path, name, writer, filename, asked, language):
    path = writer(tmp_path / filename)
    examples, found = KINDS["pair-classification"].read(TaskFile(path, asked))
    assert [(e.text_a, e.text_b, e.label) for e in examples] == ROWS
    assert found == language
    assert examples[1].where.startswith(f"{path}:")


def test_xnli_file_with_one_language_names_it(tmp_path):
    path = write_xnli(tmp_path / "xnli.dev.tsv", {"sw": ROWS})
    assert KINDS["pair-classification"].read(TaskFile(path, None))[1] == "sw"


def test_sequence_tsv_and_jsonl(tmp_path):
    (tmp_path / "s.tsv").write_text("good film\tpos\nbad film\tneg\n")
    (tmp_path / "s.jsonl").write_text(json.dumps({"text": "good film", "label": "pos"}) + "\n")
    tsv, _ = KINDS["sequence-classification"].read(TaskFile(tmp_path / "s.tsv", None))
    jsonl, _ = KINDS["sequence-classification"].read(TaskFile(tmp_path / "s.jsonl", None))
    assert [(e.text_a, e.text_b, e.label) for e in tsv] == [("good film", None, "pos"), ("bad film", None, "neg")]
    assert (jsonl[0].text_a, jsonl[0].label) == ("good film", "pos")


SENTENCES = [[("Jan", "B-PER"), ("lives", "O"), ("in", "O"), ("Berlin", "B-LOC")], [("Ok", "O")]]


@pytest.mark.parametrize("prefix", [None, "nl"], ids=["conll", "xtreme-prefixed"])
def test_conll_and_xtreme_token_files(tmp_path, prefix):
    path = write_conll(tmp_path / "train.txt", SENTENCES, prefix)
    examples, language = KINDS["token-classification"].read(TaskFile(path, None))
    assert [list(zip(e.tokens, e.labels)) for e in examples] == SENTENCES
    assert language == prefix
    assert examples[1].where == f"{path}:6" and examples[0].token_where(3) == f"{path}:4"


def test_conll_2003_columns_and_docstart(tmp_path):
    path = tmp_path / "eng.testa"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n")
    examples, _ = KINDS["token-classification"].read(TaskFile(path, None))
    assert [list(zip(e.tokens, e.labels)) for e in examples] == [[("EU", "B-ORG"), ("rejects", "O")],
                                                                 [("Peter", "B-PER")]]


PARAGRAPHS = [
    {"context": "Die Seine fließt durch Paris.", "qas": [
        {"id": "a1", "question": "Wodurch fließt die Seine?", "answers": [{"text": "Paris", "answer_start": 23},
                                                                         {"text": "durch Paris", "answer_start": 17}]},
        {"id": 7, "question": "Was fließt?", "answers": [{"text": "Die Seine", "answer_start": 0}]}]},
    {"context": "长城在中国。", "qas": [{"id": "z", "question": "长城在哪里？", "answers": [{"text": "中国", "answer_start": 3}]}]},
]
# (name, file name, the language asked, the language expected)
QA_FILES = [
    ("MLQA names the context's language", "test-context-de-question-en.json", None, "de"),
    ("XQuAD", "xquad.de.json", None, "de"),
    ("SQuAD, language from LANG=", "train-v1.1.json", "en", "en"),
    ("SQuAD, no language", "train-v1.1.json", None, None),
]


@pytest.mark.parametrize("filename,asked,language", [c[1:] for c in QA_FILES], ids=[c[0] for c in QA_FILES])
def test_squad_mlqa_and_xquad_files(tmp_path, filename, asked, language):
    path = write_squad(tmp_path / filename, PARAGRAPHS)
    examples, found = KINDS["question-answering"].read(TaskFile(path, asked))
    assert found == language
    assert [(e.id, e.question, e.context, e.answers) for e in examples] == [
        ("a1", "Wodurch fließt die Seine?", PARAGRAPHS[0]["context"], ((23, "Paris"), (17, "durch Paris"))),
        ("7", "Was fließt?", PARAGRAPHS[0]["context"], ((0, "Die Seine"),)),
        ("z", "长城在哪里？", "长城在中国。", ((3, "中国"),)),
    ]
    assert examples[1].where == f"{path}: data[0].paragraphs[0].qas[1] (id 7)"


def _squad(paragraphs) -> str:
    return json.dumps({"data": [{"paragraphs": paragraphs}]})


def _question(**changes) -> str:
    qa = {"id": "q1", "question": "Wo?", "answers": [{"text": "Paris", "answer_start": 4}], **changes}
    return _squad([{"context": "Ort Paris.", "qas": [{k: v for k, v in qa.items() if v is not None}]}])


def _csv_written(rows, **options) -> str:
    """What Python's csv module writes for `rows` as TSV (its default: QUOTE_MINIMAL, "\\r\\n" line ends)."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter="\t", **options).writerows(rows)
    return buffer.getvalue()


def _xnli_text(rows_by_language) -> str:
    """An XNLI-1.0 file as distributed: no quoting, a `"` in a sentence is written as it is."""
    return "\t".join(XNLI_HEADER) + "\n" + "".join(
        "\t".join([language, label, "(x)", "(y)", "(X x)", "(Y y)", a, b, "0", "0", "fiction"]) + "\n"
        for language, rows in rows_by_language.items() for a, b, label in rows)


def _records(examples) -> list:
    if hasattr(examples[0], "tokens"):
        return [list(zip(e.tokens, e.labels)) for e in examples]
    if hasattr(examples[0], "answers"):
        return [(e.id, e.question, e.context, e.answers) for e in examples]
    return [(e.text_a, e.text_b, e.label) for e in examples]


BOM = "\ufeff"
QUOTED = [('a "quoted" premise', "tab\there", "entailment"), ('"Why not?"', "plain", "neutral")]
XNLI_QUOTES = [('"Hello," he said.', '"Yes."', "neutral"), ('"Go', 'home."', "entailment"),
               ('He said ""no"".', "b", "neutral")]
SEPARATORS = "a\u2028b\u2029c\x85d"  # LINE SEPARATOR, PARAGRAPH SEPARATOR, NEXT LINE: text, not line ends
SQUAD_SEPARATED = {"context": f"{SEPARATORS} Paris.", "qas": [
    {"id": "s", "question": "Wo?", "answers": [{"text": "Paris", "answer_start": len(SEPARATORS) + 1}]}]}
# (name, task, file name, content, the language asked, the records read, the language found)
READ_AS_WRITTEN = [
    # colons in tokens: a prefix is XTREME's only when every token of the file has the same one
    ("conll: a token with a colon kept", "token-classification", "train.conll",
     "smb://host\tO\nParis\tB-LOC\n", None, [[("smb://host", "O"), ("Paris", "B-LOC")]], None),
    ("conll: tokens like prefixes, but not all the same", "token-classification", "train.conll",
     "de:facto\tO\nfr:oui\tO\n", None, [[("de:facto", "O"), ("fr:oui", "O")]], None),
    ("xtreme: the prefix cut once, a colon after it kept", "token-classification", "test",
     "en:smb://host\tO\nen:Paris\tB-LOC\n", None, [[("smb://host", "O"), ("Paris", "B-LOC")]], "en"),
    ("conll: a no-break space inside a token", "token-classification", "t.conll",
     "10\u00a0000\tO\nEuro\tO\n", None, [[("10\u00a0000", "O"), ("Euro", "O")]], None),
    # byte-order marks
    ("xnli-mt with a byte-order mark", "pair-classification", "multinli.train.de.tsv",
     f"{BOM}premise\thypo\tlabel\na\tb\tcontradictory\n", None, [("a", "b", "contradiction")], "de"),
    ("xnli-1.0 with a byte-order mark", "pair-classification", "xnli.test.tsv",
     BOM + _xnli_text({"de": ROWS[:1]}), None, [ROWS[0]], "de"),
    ("conll with a byte-order mark before -DOCSTART-", "token-classification", "eng.testa",
     f"{BOM}-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\n", None, [[("EU", "B-ORG")]], None),
    ("xtreme with a byte-order mark", "token-classification", "dev", f"{BOM}nl:Jan\tB-PER\nnl:leeft\tO\n", None,
     [[("Jan", "B-PER"), ("leeft", "O")]], "nl"),
    ("jsonl with a byte-order mark", "sequence-classification", "s.jsonl",
     BOM + json.dumps({"text": "good", "label": "pos"}) + "\n", None, [("good", None, "pos")], None),
    ("squad with a byte-order mark", "question-answering", "xquad.de.json", BOM + _question(), None,
     [("q1", "Wo?", "Ort Paris.", ((4, "Paris"),))], "de"),
    # quoting: what Python's csv module writes is read back; XNLI's unquoted `"` are kept
    ("tsv written by csv: a tab and quotes in quotes", "pair-classification", "pairs.tsv", _csv_written(QUOTED),
     None, QUOTED, None),
    ("tsv written by csv, every field quoted", "pair-classification", "pairs.tsv",
     _csv_written(QUOTED, quoting=csv.QUOTE_ALL), None, QUOTED, None),
    ("xnli-1.0 as distributed: quotes kept verbatim", "pair-classification", "xnli.dev.tsv",
     _xnli_text({"en": XNLI_QUOTES}), "en", XNLI_QUOTES, "en"),
    ("a field that opens a quote it never closes", "pair-classification", "pairs.tsv",
     '"unclosed premise\tb\tentailment\nx\ty\tneutral\n', None,
     [('"unclosed premise', "b", "entailment"), ("x", "y", "neutral")], None),
    ("a quote inside an unquoted field", "sequence-classification", "s.tsv", 'the "best" film\tpos\n', None,
     [('the "best" film', None, "pos")], None),
    # a header is never an example
    ("plain tsv with a header", "sequence-classification", "s.tsv", "text\tlabel\ngood film\tpos\nbad film\tneg\n",
     None, [("good film", None, "pos"), ("bad film", None, "neg")], None),
    ("a header in another order", "pair-classification", "p.tsv", "label\tsentence1\tsentence2\nentailment\ta\tb\n",
     None, [("a", "b", "entailment")], None),
    ("a header naming its text otherwise", "sequence-classification", "s.tsv", "review\tlabel\ngood\tpos\n", None,
     [("good", None, "pos")], None),
    ("a header with a language column", "pair-classification", "p.tsv",
     "language\tpremise\thypothesis\tgold_label\nsw\ta\tb\tneutral\n", None, [("a", "b", "neutral")], "sw"),
    # line ends: "\n" and "\r\n" only, as `wc -l`; other Unicode line breaks are text
    ("tsv: Unicode line breaks inside text", "sequence-classification", "s.tsv",
     f"{SEPARATORS}\tpos\r\nplain\tneg\n", None, [(SEPARATORS, None, "pos"), ("plain", None, "neg")], None),
    ("jsonl: Unicode line breaks inside a string", "sequence-classification", "s.jsonl",
     json.dumps({"text": SEPARATORS, "label": "pos"}, ensure_ascii=False) + "\n", None,
     [(SEPARATORS, None, "pos")], None),
    ("squad: Unicode line breaks inside a context", "question-answering", "s.json",
     json.dumps({"data": [{"paragraphs": [SQUAD_SEPARATED]}]}, ensure_ascii=False), None,
     [("s", "Wo?", f"{SEPARATORS} Paris.", ((len(SEPARATORS) + 1, "Paris"),))], None),
    ("conll: a Unicode line break inside a token", "token-classification", "t.conll", "a\u2028b\tO\n", None,
     [[("a\u2028b", "O")]], None),
    # the language in a name is one only when it is a language code
    ("xnli.dev.tsv: 'dev' is no language", "pair-classification", "xnli.dev.tsv", "a\tb\tentailment\n", None,
     [("a", "b", "entailment")], None),
    ("panx_all.iob2: 'all' is no language", "token-classification", "panx_all.iob2", "Jan\tB-PER\n", None,
     [[("Jan", "B-PER")]], None),
    ("train-sw.tsv names Swahili", "sequence-classification", "train-sw.tsv", "a\tpos\n", None,
     [("a", None, "pos")], "sw"),
    ("xnli.test.tsv with one language reads its column", "pair-classification", "xnli.test.tsv",
     _xnli_text({"th": ROWS[:1]}), None, [ROWS[0]], "th"),
]


@pytest.mark.parametrize("name,task,filename,content,asked,records,language", READ_AS_WRITTEN,
                         ids=[c[0] for c in READ_AS_WRITTEN])
def test_files_are_read_as_their_writers_meant(tmp_path, name, task, filename, content, asked, records, language):
    path = tmp_path / filename
    path.write_text(content, encoding="utf-8", newline="")
    examples, found = KINDS[task].read(TaskFile(path, asked))
    assert _records(examples) == records
    assert found == language


# (name, task, file name, content, the language asked, the error expected: a regex)
BAD_FILES = [
    ("conll: old Mac line ends", "token-classification", "n.conll", "Jan\tB-PER\rlives\tO\r", None,
     r"n\.conll:1: a carriage return inside the line \(old Mac line ends\?\)"),
    ("squad: invalid JSON", "question-answering", "s.json", '{"data": [\n  {"paragraphs": }]}\n', None, r"s\.json:2: invalid JSON"),
    ("squad: no data list", "question-answering", "s.json", '{"version": "1.1"}', None,
     r"s\.json: `data` is missing; expected a list of articles"),
    ("squad: context not text", "question-answering", "s.json", _squad([{"context": 3, "qas": []}]), None,
     r"data\[0\]\.paragraphs\[0\]: `context` is a int; expected the paragraph's text"),
    ("squad: question missing", "question-answering", "s.json", _question(question=None), None,
     r"qas\[0\] \(id q1\): `question` is missing"),
    ("squad: answer not at its offset", "question-answering", "s.json",
     _question(answers=[{"text": "Paris", "answer_start": 3}]), None,
     r"qas\[0\] \(id q1\)\.answers\[0\]: the context at answer_start=3 reads ' Pari', not the answer 'Paris'"),
    ("squad: offset not a number", "question-answering", "s.json",
     _question(answers=[{"text": "Paris", "answer_start": "4"}]), None,
     r"answers\[0\]: `answer_start` is a str; expected its character offset"),
    ("squad 2.0: unanswerable", "question-answering", "s.json", _question(answers=[], is_impossible=True), None,
     r"qas\[0\] \(id q1\): a question without an answer \(SQuAD 2\.0\)"),
    ("squad: no questions", "question-answering", "s.json", _squad([]), None, r"s\.json: no questions"),
    ("wrong column count", "pair-classification", "t.tsv", "a\tb\tentailment\nonly\ttwo\n", None,
     r"t\.tsv:2: 2 columns, expected 3 tab-separated columns \(text_a<TAB>text_b<TAB>label\)"),
    ("xnli-mt row cut short", "pair-classification", "m.tsv", "premise\thypo\tlabel\na\tb\n", None,
     r"m\.tsv:2: 2 columns, expected 3 columns \(premise, hypo, label\)"),
    ("empty file", "pair-classification", "e.tsv", "", None, r"e\.tsv: no examples"),
    ("language without rows", "pair-classification", "xnli.test.tsv", None, "fr",
     r"xnli\.test\.tsv: no examples for language 'fr' \(it has de\)"),
    ("pairs for a sequence task", "sequence-classification", "xnli.test.tsv", None, "de",
     "sentence pairs; use --task pair-classification"),
    ("invalid json line", "pair-classification", "d.jsonl", '{"premise": "a", "hypothesis": "b", "label": "x"}\n{',
     None, r"d\.jsonl:2: invalid JSON"),
    ("json without a label", "pair-classification", "d.jsonl", '{"premise": "a", "hypothesis": "b"}\n',
     None, r"d\.jsonl:1: missing field"),
    ("token without a label", "token-classification", "n.conll", "Jan\tB-PER\nlives\n", None,
     r"n\.conll:2: one column \('lives'\)"),
    ("no sentences", "token-classification", "n.conll", "\n\n", None, r"n\.conll: no sentences"),
    ("prefix of another language", "token-classification", "n.conll", "en:Jan\tB-PER\n", "de",
     r"n\.conll: its tokens are prefixed en, not 'de'"),
    ("not utf-8", "token-classification", "n.conll", b"Jan\tO\n\xff\tO\n", None, r"n\.conll:2: not UTF-8"),
    ("several languages, none asked", "pair-classification", "xnli.dev.tsv", _xnli_text({"de": ROWS, "en": ROWS}),
     None, r"xnli\.dev\.tsv: rows in 2 languages \(de, en\); name the one to read with LANG=FILE"),
    ("jsonl: several languages, none asked", "sequence-classification", "d.jsonl",
     '{"text": "a", "label": "x", "language": "de"}\n{"text": "b", "label": "y", "language": "fr"}\n', None,
     r"d\.jsonl: rows in 2 languages \(de, fr\); name the one to read with LANG=FILE"),
    ("a class named like a column", "sequence-classification", "s.tsv", "good\tpos\ntext\tlabel\n", None,
     r"s\.tsv:2: the label 'label' is a column name; a header is read only as the first line"),
    ("a header without the second text", "pair-classification", "p.tsv", "text\tlabel\na\tb\n", None,
     r"p\.tsv:1: the header names no second text column \(text_b, sentence2, hypothesis, hypo\)"),
    ("a header without a text column", "sequence-classification", "s.tsv", "id\tnote\tlabel\n1\ta\tpos\n", None,
     r"s\.tsv:1: the header names no text column \(text_a, text, sentence, sentence1, premise\)"),
    ("a quoted field across lines", "pair-classification", "t.tsv", _csv_written([("two\nlines", "b", "c")]), None,
     r"t\.tsv:1: 1 column, expected 3 tab-separated columns \(text_a<TAB>text_b<TAB>label\); a quoted field "
     r"must close on its line"),
    ("quotes that join fields, no header to tell", "pair-classification", "t.tsv", '"Go\thome."\tentailment\n', None,
     r't\.tsv:1: 2 columns, expected 3 tab-separated columns .*; read with csv quoting, a field that starts with `"` '
     r'runs to one that ends with `"`: quote as csv does'),
]


@pytest.mark.parametrize("name,task,filename,content,asked,error", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_task_files_are_one_error_naming_the_line(tmp_path, name, task, filename, content, asked, error):
    path = tmp_path / filename
    if content is None:
        write_xnli(path, {"de": ROWS})
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(XLMRDSError, match=error):
        KINDS[task].read(TaskFile(path, asked))


# (spec, the path read, the language asked): LANG= only where a language code comes before the first '='
ACCEPTED_SPECS = [
    ("de=xnli.test.tsv", "xnli.test.tsv", "de"),
    ("xnli.test.tsv", "xnli.test.tsv", None),
    ("tasks/lang=de/train.conll", "tasks/lang=de/train.conll", None),
    ("de=tasks/lang=de/test.conll", "tasks/lang=de/test.conll", "de"),
    ("run=3/train.tsv", "run=3/train.tsv", None),
    ("zh-Hans=test.zh.tsv", "test.zh.tsv", "zh-Hans"),
    ("pt_BR=a=b.tsv", "a=b.tsv", "pt_BR"),
]


@pytest.mark.parametrize("spec,path,language", ACCEPTED_SPECS, ids=[c[0] for c in ACCEPTED_SPECS])
def test_task_file_specs_split_at_a_language_code(spec, path, language):
    assert TaskFile.parse(spec, "--train") == TaskFile(Path(path), language)


@pytest.mark.parametrize("spec,required,error", [
    ("de.tsv", True, "expected LANG=FILE"), ("=x.tsv", False, "with both parts"), ("de=", False, "with both parts"),
    ("xx=t.tsv", True, r"--test xx=t\.tsv: expected LANG=FILE; 'xx' is not a language code"),
])
def test_task_file_specs(spec, required, error):
    with pytest.raises(XLMRDSError, match=error):
        TaskFile.parse(spec, "--test", language_required=required)
