"""Task files as users have them are read into the same examples; bad lines are one error naming file:line."""

import json

import pytest
from task_factory import write_conll, write_jsonl, write_squad, write_xnli, write_xnli_mt

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


# (name, task, file name, content, the language asked, the error expected: a regex)
BAD_FILES = [
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


@pytest.mark.parametrize("spec,required,error", [
    ("de.tsv", True, "expected LANG=FILE"), ("=x.tsv", False, "with both parts"), ("de=", False, "with both parts"),
])
def test_task_file_specs(spec, required, error):
    with pytest.raises(XLMRDSError, match=error):
        TaskFile.parse(spec, "--test", language_required=required)
