import numpy as np
import pytest

from xlmr_ds.kernels.mlm_masking_reference import MaskingConfig, mask_tokens
from xlmr_ds.vocab import IGNORE_INDEX

CONFIG = MaskingConfig(vocab_size=1002, special_ids=(0, 1, 2, 3, 1001))


def _tokens(n=512, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(4, 1001, n)
    tokens[0], tokens[-1], tokens[100] = 0, 2, 2
    return tokens


def test_masking_rates_follow_15_80_10_10_on_a_large_sample():
    chosen = masked = randomized = kept = regular = 0
    for index in range(400):
        tokens = _tokens(seed=index)
        input_ids, labels = mask_tokens(tokens, CONFIG, seed=7, sample_index=index)
        is_chosen = labels != IGNORE_INDEX
        regular += int((tokens > 3).sum())
        chosen += int(is_chosen.sum())
        masked += int((input_ids[is_chosen] == 1001).sum())
        kept += int((input_ids[is_chosen] == tokens[is_chosen]).sum())
        randomized += int(((input_ids[is_chosen] != 1001) & (input_ids[is_chosen] != tokens[is_chosen])).sum())
    assert chosen / regular == pytest.approx(0.15, abs=0.005)
    assert masked / chosen == pytest.approx(0.8, abs=0.01)
    # A random replacement can draw the original token (1 in 997): it then counts as kept.
    assert randomized / chosen == pytest.approx(0.1, abs=0.01)
    assert kept / chosen == pytest.approx(0.1, abs=0.01)


def test_specials_are_never_chosen_and_random_tokens_are_never_special():
    for index in range(50):
        tokens = _tokens(seed=index)
        input_ids, labels = mask_tokens(tokens, CONFIG, seed=1, sample_index=index)
        assert np.all(labels[np.isin(tokens, CONFIG.special_ids)] == IGNORE_INDEX)
        assert np.all(input_ids[np.isin(tokens, CONFIG.special_ids)] == tokens[np.isin(tokens, CONFIG.special_ids)])
        changed = input_ids != tokens
        assert np.all((input_ids[changed] == 1001) | ((input_ids[changed] >= 4) & (input_ids[changed] < 1001)))
        assert np.array_equal(labels[labels != IGNORE_INDEX], tokens[labels != IGNORE_INDEX])


def test_masks_are_a_pure_function_of_seed_and_sample_index():
    tokens = _tokens()
    a = mask_tokens(tokens, CONFIG, seed=3, sample_index=10)
    b = mask_tokens(tokens.copy(), CONFIG, seed=3, sample_index=10)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    for other in [mask_tokens(tokens, CONFIG, seed=4, sample_index=10), mask_tokens(tokens, CONFIG, seed=3, sample_index=11)]:
        assert not np.array_equal(a[1], other[1])
