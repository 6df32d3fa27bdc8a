import pytest

from xlmr_ds.dataset.sampling import alpha_probabilities
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.prep.corpus.shards import discover_corpus
from xlmr_ds.prep.spm.train import draw_alpha_sample, train_sentencepiece
from xlmr_ds.tokenizer import XLMRTokenizer


def test_alpha_probabilities_match_the_formula():
    sizes = {"en": 900, "sw": 100, "empty": 0}
    q = alpha_probabilities(sizes, 0.3)
    p_en, p_sw = 0.9, 0.1
    expected_en = p_en**0.3 / (p_en**0.3 + p_sw**0.3)
    assert q["en"] == pytest.approx(expected_en) and q["sw"] == pytest.approx(1 - expected_en)
    assert q["empty"] == 0.0
    assert alpha_probabilities(sizes, 1.0)["en"] == pytest.approx(0.9)


@pytest.mark.parametrize("alpha", [0.0, -0.3, 1.5])
def test_alpha_outside_0_1_is_refused(alpha):
    with pytest.raises(XLMRDSError, match=f"--alpha={alpha} must be in"):
        alpha_probabilities({"en": 1}, alpha)


def test_sample_sizes_follow_alpha_and_are_deterministic_for_a_seed(corpus_dir):
    corpus = discover_corpus(corpus_dir)
    q = alpha_probabilities({f.language: f.size for f in corpus}, 0.3)
    samples = draw_alpha_sample(corpus, 1000, 0.3, seed=1, progress=False)
    for sample in samples:
        available = sum(1 for line in (corpus_dir / f"{sample.language}.txt").read_text().splitlines() if line)
        assert len(sample.lines) == min(available, round(1000 * q[sample.language]))
        assert sample.probability == pytest.approx(q[sample.language])
    again = draw_alpha_sample(corpus, 1000, 0.3, seed=1, progress=False)
    other = draw_alpha_sample(corpus, 1000, 0.3, seed=2, progress=False)
    assert [s.lines for s in again] == [s.lines for s in samples]
    assert [s.lines for s in other] != [s.lines for s in samples]
    # Low-resource languages get a larger share than their size: alpha < 1 flattens the distribution.
    total = sum(f.size for f in corpus)
    zh = next(f for f in corpus if f.language == "zh")
    assert q["zh"] > zh.size / total


def test_trained_model_has_the_requested_pieces_and_xlmr_specials(spm_model):
    tokenizer = XLMRTokenizer(spm_model)
    assert tokenizer.pieces == 500 and tokenizer.vocab_size == 502
    assert spm_model.with_suffix(".vocab").is_file()
    assert not list(spm_model.parent.glob(".spm.*")), "staging files left behind"


def test_a_vocabulary_too_large_for_the_sample_fails_cleanly_and_writes_nothing(corpus_dir, tmp_path):
    with pytest.raises(XLMRDSError, match="SentencePiece training failed with --vocab-size=200000 .* lower --vocab-size"):
        train_sentencepiece(corpus_dir, tmp_path / "big", vocab_size=200_000, sample_lines=100, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


CORPUS_ERRORS = [
    ("missing", None, "corpus directory not found"),
    ("no-txt", {"notes.md": "x"}, "no <lang>.txt files or <lang>/ shard folders found"),
    ("all-empty", {"en.txt": "", "fr.txt": ""}, "every language's files are empty"),
    ("bad-name", {"e n.txt": "x\n"}, "language name 'e n' must be"),
]


@pytest.mark.parametrize("name,files,message", CORPUS_ERRORS)
def test_bad_corpora_are_named(tmp_path, name, files, message):
    directory = tmp_path / name
    if files is not None:
        directory.mkdir()
        for file_name, text in files.items():
            (directory / file_name).write_text(text)
    with pytest.raises(XLMRDSError, match=message):
        train_sentencepiece(directory, tmp_path / "out", vocab_size=50, progress=False)
