"""Per-language validation, and its shuffled-order variant: the same masked tokens without word order."""

import numpy as np
import pytest
import torch

from xlmr_ds.dataset.config import DataConfig
from xlmr_ds.dataset.loader import PretrainingData
from xlmr_ds.engine.evaluation import evaluate_languages, shuffled_order
from xlmr_ds.model import XLMRForMaskedLM
from xlmr_ds.model.config import preset


@pytest.mark.parametrize("length", [2, 3, 17, 128])
def test_shuffled_order_keeps_bos_first_and_each_label_with_its_token(length):
    rng = np.random.default_rng(length)
    tokens = np.concatenate([[0], rng.integers(4, 500, length - 1)])
    labels = np.where(rng.random(length) < 0.3, tokens, -100)
    labels[0] = -100
    sample = {"input_ids": tokens, "labels": labels, "language": 0, "sample_index": 5}
    shuffled = shuffled_order(sample, seed=1)
    assert shuffled["input_ids"][0] == 0 and shuffled["sample_index"] == 5
    assert sorted(zip(shuffled["input_ids"].tolist(), shuffled["labels"].tolist())) == \
        sorted(zip(tokens.tolist(), labels.tolist()))
    assert np.array_equal(shuffled_order(sample, seed=1)["input_ids"], shuffled["input_ids"])  # a function of the seed


@pytest.fixture(scope="module")
def data(binarized_dir):
    return PretrainingData(DataConfig(str(binarized_dir), block_size=64, valid_fraction=0.2))


def _losses(model, data, shuffle_seed=None):
    results = evaluate_languages(model, data, 8, 4, torch.device("cpu"), shuffle_seed=shuffle_seed)
    return {language: r["loss"] for language, r in results.items()}


def test_a_model_blind_to_order_loses_nothing_when_the_tokens_are_shuffled(data):
    """Without position embeddings a transformer is permutation-equivariant: the oracle that the shuffle moves
    every label with its token and that nothing else changes."""
    torch.manual_seed(0)
    model = XLMRForMaskedLM(preset("tiny", vocab_size=data.vocab_size)).eval()
    with torch.no_grad():
        model.embeddings.position.weight.zero_()
    ordered, shuffled = _losses(model, data), _losses(model, data, shuffle_seed=3)
    assert ordered.keys() == shuffled.keys() and ordered
    assert all(abs(ordered[lang] - shuffled[lang]) < 1e-4 for lang in ordered), (ordered, shuffled)


def test_a_model_that_sees_positions_scores_the_shuffled_blocks_differently(data):
    torch.manual_seed(0)
    model = XLMRForMaskedLM(preset("tiny", vocab_size=data.vocab_size)).eval()
    with torch.no_grad():
        model.embeddings.position.weight.normal_(0, 1.0)
    ordered, shuffled = _losses(model, data), _losses(model, data, shuffle_seed=3)
    assert any(abs(ordered[lang] - shuffled[lang]) > 1e-3 for lang in ordered), (ordered, shuffled)
