"""A directory transformers 5 wrote holds tokenizer.json, not sentencepiece.bpe.model: FastTokenizer reads it and
gives what fine-tuning and retrieval need, the ids and offsets of transformers' AutoTokenizer on the same file (and
of our SentencePiece tokenizer on the model it was made from); a tokenizer.json whose ids are not XLM-R's is
refused, saying which id is wrong; `tokenizer_of_directory` picks by what the directory holds."""

import json
import shutil
from pathlib import Path

import pytest
import tokenizers
from task_factory import corpus_words, qa_examples
from transformers import AutoTokenizer
from transformers_dirs import save_transformers_model, save_transformers_tokenizer, swap_s_and_pad

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.tasks.encoding import LabelSet, encode_text_examples, encode_token_examples
from xlmr_ds.tasks.formats import QAExample, TextExample, TokenExample
from xlmr_ds.tasks.spans import encode_qa_examples
from xlmr_ds.tokenizer import WORD_START, FastTokenizer, XLMRTokenizer, tokenizer_of_directory


@pytest.fixture(scope="module")
def made_by_transformers(spm_model, tmp_path_factory) -> Path:
    directory = save_transformers_tokenizer(spm_model, tmp_path_factory.mktemp("transformers5") / "hf")
    assert sorted(p.name for p in directory.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
    return directory


@pytest.fixture(scope="module")
def three(made_by_transformers, spm_model):
    """(ours from tokenizer.json, transformers' AutoTokenizer on the same directory, ours from the .model)"""
    return (FastTokenizer(made_by_transformers / "tokenizer.json"), AutoTokenizer.from_pretrained(made_by_transformers),
            XLMRTokenizer(spm_model))


def _corpus_line(language: str, number: int = 0):
    return lambda corpus: (corpus / f"{language}.txt").read_text(encoding="utf-8").split("\n")[number]


# (id, the text, from the test corpus (its words are the tokenizer's) or written here)
TEXTS = [
    ("english", _corpus_line("en")),
    ("russian", _corpus_line("ru", 1)),
    ("chinese-unspaced", _corpus_line("zh")),
    ("arabic", _corpus_line("ar")),
    ("hindi", _corpus_line("hi")),
    ("mixed-scripts", lambda corpus: "mixed абв 的一 αβγ ابت कख end."),
    ("unknown-characters", lambda corpus: "Grüße ✓ 😀 ¿qué? «ок»"),
    ("whitespace-runs", lambda corpus: "  lead  and   inner\tspaces\nand lines  "),
    ("digits-punctuation", lambda corpus: "12,345.67 (a) [b] -- c."),
    ("empty", lambda corpus: ""),
]
# Characters that normalize to several pieces (the ligature ﬁ -> f i): SentencePiece gives the character to
# the last piece, tokenizers to each, so these are compared with transformers only.
NORMALIZED = [("nfkc-expansions", lambda corpus: "ﬁne ＡＢＣ ½ ﬀ")]


@pytest.mark.parametrize("make", [t[1] for t in TEXTS + NORMALIZED], ids=[t[0] for t in TEXTS + NORMALIZED])
def test_ids_and_offsets_are_transformers_autotokenizers(three, corpus_dir, make):
    ours, theirs, _ = three
    text = make(corpus_dir)
    ids, spans = ours.encode_with_offsets(text)
    expected = theirs(text, add_special_tokens=False, return_offsets_mapping=True)
    assert ids == expected["input_ids"] == ours.encode(text).tolist()
    pieces = theirs.convert_ids_to_tokens(ids)
    # A bare ▁ covers nothing in our contract; transformers gives it the character it stands before.
    wanted = [(begin, begin) if piece == WORD_START else (begin, end)
              for piece, (begin, end) in zip(pieces, expected["offset_mapping"], strict=True)]
    assert spans == wanted
    assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("make", [t[1] for t in TEXTS], ids=[t[0] for t in TEXTS])
def test_ids_and_offsets_are_those_of_the_sentencepiece_model(three, corpus_dir, make):
    ours, _, sentencepiece = three
    text = make(corpus_dir)
    assert ours.encode_with_offsets(text) == sentencepiece.encode_with_offsets(text)
    assert [a.tolist() for a in ours.encode_batch([text, text[::-1]])] == [
        a.tolist() for a in sentencepiece.encode_batch([text, text[::-1]])]


def test_vocabulary_and_specials_are_xlmrs(three):
    ours, theirs, sentencepiece = three
    assert (ours.vocab_size, ours.mask_id, ours.special_ids) == (
        sentencepiece.vocab_size, sentencepiece.mask_id, sentencepiece.special_ids)
    assert (ours.vocab_size, ours.mask_id) == (len(theirs), theirs.mask_token_id)
    assert [ours.id_to_piece(i) for i in range(ours.vocab_size)] == theirs.convert_ids_to_tokens(
        list(range(ours.vocab_size)))


def test_task_inputs_are_the_same_from_either_file(three, corpus_dir):
    ours, _, sentencepiece = three
    words = corpus_words(corpus_dir, "en")
    labels = LabelSet(("a", "b"))
    texts = [TextExample(" ".join(words[i:i + 9]), " ".join(words[i + 2:i + 6]), "ab"[i % 2], f"f:{i}")
             for i in range(6)]
    tokens = [TokenExample(tuple(words[i:i + 12]), ("a",) * 12, "f", i) for i in range(4)]
    questions = [QAExample(p["qas"][0]["id"], p["qas"][0]["question"], p["context"],
                           tuple((a["answer_start"], a["text"]) for a in p["qas"][0]["answers"]), "t")
                 for p in qa_examples(words, 6, 0, (40, 60))]
    assert encode_text_examples(ours, texts, labels, 16) == encode_text_examples(sentencepiece, texts, labels, 16)
    assert encode_token_examples(ours, tokens, labels, 10) == encode_token_examples(sentencepiece, tokens, labels, 10)
    windows = encode_qa_examples(ours, questions, 32, 8)
    assert len(windows) > len(questions)  # contexts longer than a window: the offsets place every window's answer
    assert windows == encode_qa_examples(sentencepiece, questions, 32, 8)


def test_a_model_fine_tuned_from_a_tokenizer_json_keeps_it(made_by_transformers, three, tmp_path):
    """save_hf copies a tokenizer.json as the fine-tuned directory's tokenizer: transformers reads it as before."""
    from xlmr_ds.model.heads import XLMRForSequenceClassification
    from xlmr_ds.model.hf import load_hf, save_hf

    base = load_hf(save_transformers_model(tmp_path / "base"))
    classifier = XLMRForSequenceClassification(base.config, ("no", "yes"))
    save_hf(classifier, tmp_path / "tuned", tokenizer_model=made_by_transformers / "tokenizer.json")
    text = "mixed абв 的一 αβγ ابت कख end."
    assert AutoTokenizer.from_pretrained(tmp_path / "tuned")(text)["input_ids"] == three[1](text)["input_ids"]
    assert type(tokenizer_of_directory(tmp_path / "tuned")) is FastTokenizer


# (id, files in the directory, the class read or the one-line error)
DIRECTORIES = [
    ("sentencepiece-only", ("sentencepiece.bpe.model",), XLMRTokenizer),
    ("tokenizer-json-only", ("tokenizer.json",), FastTokenizer),
    ("both: the model xlmr-ds binarizes with", ("sentencepiece.bpe.model", "tokenizer.json"), XLMRTokenizer),
    ("neither", ("tokenizer_config.json",),
     "no sentencepiece.bpe.model or tokenizer.json, so its text cannot be tokenized; save the model with its "
     "tokenizer (`xlmr-ds export --spm MODEL`, or transformers' tokenizer.save_pretrained into the directory)"),
]


@pytest.mark.parametrize("files,expected", [d[1:] for d in DIRECTORIES], ids=[d[0] for d in DIRECTORIES])
def test_the_directory_decides_which_tokenizer_is_read(made_by_transformers, spm_model, files, expected, tmp_path):
    sources = {"sentencepiece.bpe.model": spm_model, "tokenizer.json": made_by_transformers / "tokenizer.json",
               "tokenizer_config.json": made_by_transformers / "tokenizer_config.json"}
    for name in files:
        shutil.copyfile(sources[name], tmp_path / name)
    if isinstance(expected, str):
        with pytest.raises(XLMRDSError) as error:
            tokenizer_of_directory(tmp_path)
        assert str(error.value) == f"{tmp_path}: {expected}"
        return
    assert type(tokenizer_of_directory(tmp_path)) is expected


def _rewrite(edit):
    """A change of a directory's tokenizer.json as a JSON object."""
    def apply(directory: Path) -> None:
        path = directory / "tokenizer.json"
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    return apply


def _token_after_mask(data: dict) -> None:
    data["added_tokens"].append({**data["added_tokens"][-1], "id": 502, "content": "<extra>"})


def _word_level(data: dict) -> None:
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[PAD]": 0, "[UNK]": 1, "hello": 2}, "[UNK]"))
    data.clear()
    data.update(json.loads(tokenizer.to_str()))


def _unknown_is_s(data: dict) -> None:
    data["model"]["unk_id"] = 0


NEEDED = "xlmr-ds needs XLM-R's ids: <s>=0, <pad>=1, </s>=2, <unk>=3 and <mask> last"
# (id, how the directory's transformers-made tokenizer.json is damaged, the one-line error)
REFUSED = [
    ("not-json", lambda d: (d / "tokenizer.json").write_text("{vocab"),
     "not a tokenizers tokenizer.json (key must be a string at line 1 column 2)"),
    ("a-bert-vocabulary", _rewrite(_word_level), f"<s> is missing; {NEEDED}"),
    ("s-and-pad-swapped", swap_s_and_pad, f"<s> is id 1; {NEEDED}"),
    ("a-token-after-mask", _rewrite(_token_after_mask), f"<mask> is id 501; {NEEDED} (id 502 of its 503)"),
    ("unknown-text-encoded-as-s", _rewrite(_unknown_is_s),
     f"plain text encodes to id 0 ('<s>'), not a piece; {NEEDED} (id 501 of its 502)"),
]


@pytest.mark.parametrize("damage,message", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_a_tokenizer_json_without_xlmrs_ids_is_refused_saying_what_is_wrong(made_by_transformers, damage, message,
                                                                          tmp_path):
    path = tmp_path / "tokenizer.json"
    shutil.copyfile(made_by_transformers / "tokenizer.json", path)
    damage(tmp_path)
    with pytest.raises(XLMRDSError) as error:
        FastTokenizer(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
    assert "\n" not in str(error.value)
