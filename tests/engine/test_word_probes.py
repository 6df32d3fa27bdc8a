"""The report's learning signal: the context-free guess measured on the same masked tokens as the model, and the
held-out word probes (a whole word masked, its rank among all answers)."""

from collections import Counter

import numpy as np
import pytest
import torch

from xlmr_ds.dataset.config import DataConfig
from xlmr_ds.dataset.loader import PretrainingData
from xlmr_ds.engine.evaluation import context_free_guesses, evaluate_languages
from xlmr_ds.engine.word_probes import ask_word_probes, choose_word_probes, default_probe_languages, masked_text
from xlmr_ds.model import XLMRForMaskedLM
from xlmr_ds.model.config import preset
from xlmr_ds.tokenizer import XLMRTokenizer, is_whole_word


@pytest.fixture(scope="module")
def data(binarized_dir):
    return PretrainingData(DataConfig(str(binarized_dir), block_size=64, valid_fraction=0.2))


@pytest.fixture(scope="module")
def tokenizer(data):
    return XLMRTokenizer(data.tokenizer_file)


WHOLE_WORDS = [
    (["▁the", "▁cat"], 0, True),
    (["▁Paris", "."], 0, True),
    (["▁to", "</s>"], 0, True),
    (["▁ca", "t"], 0, False),          # the next piece continues the word
    (["▁a", "▁cat"], 0, False),        # one letter in a spaced script
    (["▁cat"], 0, False),              # the block's last piece: the word may go on in the next block
    (["▁12", "▁cats"], 0, False),      # not letters
    (["▁", "cat"], 0, False),          # the bare boundary mark
    (["诉求", "。"], 0, True),          # a script without spaces: letters, then something else
    (["诉", "求"], 0, False),
    (["▁Haus", "es"], 0, False),
    (["▁Дом", "▁стоит"], 0, True),
]


@pytest.mark.parametrize("pieces,position,expected", WHOLE_WORDS)
def test_whole_words(pieces, position, expected):
    assert is_whole_word(pieces, position) is expected


MASKED_TEXTS = [
    (["<s>", "▁the", "▁cat", "▁sat", "</s>"], 2, "the <mask> sat"),
    (["<s>", "▁end", ".", "</s>", "▁next", "▁doc"], 4, "end. ¶ <mask> doc"),
    (["<s>", "今天", "很", "好"], 2, "今天<mask>好"),
]


@pytest.mark.parametrize("pieces,position,expected", MASKED_TEXTS)
def test_masked_text(pieces, position, expected):
    assert masked_text(pieces, position) == expected


def test_the_context_free_guess_is_each_languages_most_frequent_piece(data):
    guesses = context_free_guesses(data)
    assert sorted(guesses) == data.languages
    for language, guess in guesses.items():
        counts = Counter(int(t) for block in range(len(data.blocks[language][0]))
                         for t in data.block_tokens(language, 0, block) if int(t) not in data.masking.special_ids)
        assert guess not in data.masking.special_ids
        assert counts[guess] == max(counts.values()), language  # every block counted: the split is small here


def test_a_model_that_always_answers_the_guess_scores_exactly_the_guess(data):
    """The oracle: a model whose LM-head bias makes one piece its answer everywhere has the accuracy of that
    guess, counted by evaluate_languages on the same masked tokens."""
    guesses = context_free_guesses(data)
    torch.manual_seed(0)
    model = XLMRForMaskedLM(preset("tiny", vocab_size=data.vocab_size)).eval()
    for language, guess in guesses.items():
        with torch.no_grad():
            model.lm_head.bias.zero_()
            model.lm_head.bias[guess] = 1e4
        result = evaluate_languages(model, data, 8, 4, torch.device("cpu"), guesses=guesses)[language]
        assert result["accuracy"] == result["accuracy_context_free"], language
        assert result["context_free_id"] == guess and result["tokens"] > 0


def test_probes_are_whole_words_of_held_out_blocks_chosen_by_the_seed(data, tokenizer):
    languages = default_probe_languages(data)
    assert len(languages) == min(4, len(data.languages))
    probes = choose_word_probes(data, tokenizer, languages, seed=7)
    assert [p.language for p in probes] == languages
    for probe in probes:
        tokens = data.block_tokens(probe.language, 1, probe.block)
        pieces = [tokenizer.id_to_piece(int(t)) for t in tokens]
        assert tokens[probe.position] == probe.target and is_whole_word(pieces, probe.position)
    assert choose_word_probes(data, tokenizer, languages, seed=7) == probes
    others = [choose_word_probes(data, tokenizer, languages, seed=s) for s in range(8, 12)]
    assert any(other != probes for other in others)


def test_a_probes_rank_is_the_words_place_among_the_full_logits(data, tokenizer):
    """Against the model's own logits of the whole block (no labels): the rank counts the answers scored above
    the word, and the top answers are the largest logits."""
    torch.manual_seed(0)
    model = XLMRForMaskedLM(preset("tiny", vocab_size=data.vocab_size)).eval()
    probes = choose_word_probes(data, tokenizer, default_probe_languages(data), seed=3)
    answers = ask_word_probes(model, data, tokenizer, probes, torch.device("cpu"))
    for probe, answer in zip(probes, answers):
        ids = torch.from_numpy(data.block_tokens(probe.language, 1, probe.block))[None].clone()
        ids[0, probe.position] = tokenizer.mask_id
        with torch.no_grad():
            logits = model(ids).logits[0, probe.position]
        assert answer["rank"] == 1 + int((logits > logits[probe.target]).sum())
        assert [piece for piece, _ in answer["top"]] == \
            [tokenizer.id_to_piece(int(i)) for i in torch.topk(logits, 3).indices]
        assert answer["word"] == tokenizer.id_to_piece(probe.target) and "<mask>" in answer["text"]
    with torch.no_grad():  # a model that answers the first probe's word wherever it is asked ranks it first
        model.lm_head.bias[probes[0].target] = 1e4
    assert ask_word_probes(model, data, tokenizer, probes[:1], torch.device("cpu"))[0]["rank"] == 1
    assert np.isfinite([p for _, p in answers[0]["top"]]).all()
