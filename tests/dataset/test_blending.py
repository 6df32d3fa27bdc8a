import numpy as np
import pytest

from xlmr_ds.dataset.blending import PERMUTATION_LIMIT, GlobalSampleOrder

PROBABILITIES = [0.5, 0.3, 0.15, 0.05]
BLOCKS = [1000, 37, 5, 1]


def test_language_proportions_match_q():
    order = GlobalSampleOrder(PROBABILITIES, BLOCKS, seed=0, chunk_size=4096)
    languages = np.array([order[g][0] for g in range(40_000)])
    shares = np.bincount(languages, minlength=4) / len(languages)
    # Binomial standard error at n = 40,000 is at most 0.0025: allow four of them.
    np.testing.assert_allclose(shares, PROBABILITIES, atol=0.01)


# Most blocks of a materialized permutation: the default (NumPy's permutation for these small languages), and
# 0 (every language's epochs from the keyed bijection, as CC-100's largest languages have them).
PERMUTATION_LIMITS = [PERMUTATION_LIMIT, 0]


@pytest.mark.parametrize("permutation_limit", PERMUTATION_LIMITS)
def test_every_block_is_seen_once_per_epoch_in_a_new_order_each_epoch(permutation_limit):
    order = GlobalSampleOrder(PROBABILITIES, BLOCKS, seed=1, chunk_size=512, permutation_limit=permutation_limit)
    draws = {i: [] for i in range(4)}
    for g in range(6000):
        language, block = order[g]
        draws[language].append(block)
    for language in (1, 2):
        blocks = draws[language]
        full_epochs = len(blocks) // BLOCKS[language]
        assert full_epochs >= 2
        epochs = [blocks[e * BLOCKS[language]:(e + 1) * BLOCKS[language]] for e in range(full_epochs)]
        assert all(sorted(epoch) == list(range(BLOCKS[language])) for epoch in epochs)
        assert epochs[0] != epochs[1]


@pytest.mark.parametrize("permutation_limit", PERMUTATION_LIMITS)
@pytest.mark.parametrize("chunk_size", [7, 512])
def test_random_access_equals_sequential_access_in_a_fresh_instance(chunk_size, permutation_limit):
    sequential = GlobalSampleOrder(PROBABILITIES, BLOCKS, seed=2, chunk_size=chunk_size,
                                   permutation_limit=permutation_limit)
    expected = [sequential[g] for g in range(3000)]
    for g in [2999, 0, 1500, 7, 6, 2000]:
        fresh = GlobalSampleOrder(PROBABILITIES, BLOCKS, seed=2, chunk_size=chunk_size,
                                  permutation_limit=permutation_limit)
        assert fresh[g] == expected[g]


def test_the_seed_changes_the_order():
    a = GlobalSampleOrder(PROBABILITIES, BLOCKS, seed=3)
    b = GlobalSampleOrder(PROBABILITIES, BLOCKS, seed=4)
    assert [a[g] for g in range(200)] != [b[g] for g in range(200)]


@pytest.mark.parametrize("stride", [1, 4, 1024])
def test_any_access_order_gives_the_same_samples_whatever_counts_are_kept(stride, monkeypatch):
    """A resumed run, an evaluation and the report ask for samples out of order: the draws before a chunk are
    walked from the nearest kept count, forwards or after a jump back."""
    expected = [GlobalSampleOrder(PROBABILITIES, BLOCKS, seed=4, chunk_size=7)[g] for g in range(600)]
    monkeypatch.setattr("xlmr_ds.dataset.blending.PREFIX_STRIDE", stride)
    order = GlobalSampleOrder(PROBABILITIES, BLOCKS, seed=4, chunk_size=7)
    for g in [599, 3, 300, 301, 0, 450, 449, 598, 29, 28]:
        assert order[g] == expected[g]
    assert order.draws(600).sum() == 600
