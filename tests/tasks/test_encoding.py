"""Our inputs are transformers' XLMRobertaTokenizer's: the same ids for sentences and pairs, the same
truncation, and for token tasks the label on each word's first piece, as its word_ids() say."""

import pytest
from task_factory import corpus_words
from transformers import AutoTokenizer

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.tasks.encoding import (
    LabelSet,
    collate,
    encode_text_examples,
    encode_token_examples,
    truncate_longest_first,
    word_predictions,
)
from xlmr_ds.tasks.formats import TextExample, TokenExample
from xlmr_ds.tokenizer import XLMRTokenizer
from xlmr_ds.vocab import IGNORE_INDEX


@pytest.fixture(scope="module")
def tokenizers(pretrained_hf):
    return XLMRTokenizer(pretrained_hf / "sentencepiece.bpe.model"), AutoTokenizer.from_pretrained(pretrained_hf)


@pytest.fixture(scope="module")
def words(corpus_dir):
    return {lang: corpus_words(corpus_dir, lang) for lang in ("en", "ru", "zh")}


# (name, words of text a, of text b (None: a sentence task), max_length)
TEXT_CASES = [
    ("sentence", 6, None, 128),
    ("pair", 6, 4, 128),
    ("pair cut, a longer", 30, 3, 24),
    ("pair cut, b longer", 3, 30, 24),
    ("pair cut, both long", 25, 25, 20),
    ("sentence cut", 40, None, 16),
]


@pytest.mark.parametrize("language", ["en", "ru", "zh"])
@pytest.mark.parametrize("name,n_a,n_b,max_length", TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_text_inputs_equal_transformers(tokenizers, words, language, name, n_a, n_b, max_length):
    ours, theirs = tokenizers
    joiner = "" if language == "zh" else " "
    vocabulary = words[language]
    a = joiner.join(vocabulary[i % len(vocabulary)] for i in range(n_a))
    b = None if n_b is None else joiner.join(vocabulary[(3 * i + 1) % len(vocabulary)] for i in range(n_b))
    labels = LabelSet(("no", "yes"))
    got = encode_text_examples(ours, [TextExample(a, b, "yes", "f:1")], labels, max_length)[0]
    expected = theirs(a, b, truncation=True, max_length=max_length)["input_ids"]
    assert list(got.input_ids) == expected
    assert got.label == 1


@pytest.mark.parametrize("max_length", [128, 12], ids=["whole", "cut"])
@pytest.mark.parametrize("language", ["en", "ru"])
def test_token_labels_sit_on_each_words_first_piece(tokenizers, words, language, max_length):
    ours, theirs = tokenizers
    tokens = tuple(words[language][:20])
    labels_of_words = tuple("B-PER" if i % 5 == 0 else "O" for i in range(len(tokens)))
    labels = LabelSet(("B-PER", "O"))
    got = encode_token_examples(ours, [TokenExample(tokens, labels_of_words, "f", 1)], labels, max_length)[0]
    encoding = theirs(list(tokens), is_split_into_words=True, truncation=True, max_length=max_length)
    expected_labels, previous = [], None
    for word in encoding.word_ids():
        first = word is not None and word != previous
        expected_labels.append(labels.names.index(labels_of_words[word]) if first else IGNORE_INDEX)
        previous = word
    if max_length == 12:
        # transformers may cut a word between its pieces; we keep whole words only (a cut word has no label
        # to put on its first piece that its missing pieces would not contradict), so compare the whole words.
        whole = len(got.input_ids) - 1
        assert list(got.input_ids[:whole]) == encoding["input_ids"][:whole]
        assert list(got.label[:whole]) == expected_labels[:whole]
    else:
        assert list(got.input_ids) == encoding["input_ids"]
        assert list(got.label) == expected_labels
    assert got.words == len(tokens)
    predicted = [labels.names.index("B-PER")] * len(got.input_ids)
    words_predicted = word_predictions(got, predicted, labels)
    assert len(words_predicted) == len(tokens)
    kept = sum(1 for t in got.label if t != IGNORE_INDEX)
    assert words_predicted == ["B-PER"] * kept + ["O"] * (len(tokens) - kept)


def test_unknown_label_names_file_and_line(tokenizers):
    ours, _ = tokenizers
    labels = LabelSet(("B-PER", "O"))
    with pytest.raises(XLMRDSError, match=r"test\.conll:7: label 'B-MISC' does not occur in the training files"):
        encode_token_examples(ours, [TokenExample(("a", "b", "c"), ("O", "O", "B-MISC"), "test.conll", 5)], labels, 32)
    with pytest.raises(XLMRDSError, match=r"dev\.tsv:3: label 'maybe'"):
        encode_text_examples(ours, [TextExample("a", "b", "maybe", "dev.tsv:3")], LabelSet(("no", "yes")), 32)


def test_labels_are_sorted_whatever_the_line_order():
    examples = [TextExample("a", None, label, "f:1") for label in ("neutral", "entailment", "contradiction")]
    assert LabelSet.from_examples(examples).names == ("contradiction", "entailment", "neutral")
    assert LabelSet.from_examples(examples[::-1]).names == ("contradiction", "entailment", "neutral")


def test_truncation_takes_from_the_longer_text_first():
    a, b = list(range(10)), list(range(4))
    truncate_longest_first(a, b, 8)
    assert (len(a), len(b)) == (4, 4)


def test_collate_pads_and_masks(tokenizers):
    ours, _ = tokenizers
    labels = LabelSet(("no", "yes"))
    encoded = encode_text_examples(ours, [TextExample("a", None, "no", "f:1"),
                                          TextExample("a b c d", None, "yes", "f:2")], labels, 32)
    batch = collate(encoded)
    assert batch["input_ids"].shape[0] == 2 and batch["labels"].tolist() == [0, 1]
    assert batch["attention_mask"].sum(1).tolist() == [len(e.input_ids) for e in encoded]
