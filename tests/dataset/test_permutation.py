import numpy as np
import pytest

from xlmr_ds.dataset.permutation import KeyedPermutation

SIZES = [1, 2, 3, 4, 5, 17, 255, 256, 257, 1000, 4097]


@pytest.mark.parametrize("size", SIZES)
def test_it_is_a_permutation_and_lookups_agree_with_the_vectorized_form(size):
    permutation = KeyedPermutation(size, 0, "en", 3)
    values = permutation.take(np.arange(size))
    assert sorted(values.tolist()) == list(range(size))
    assert [permutation[k] for k in range(size)] == values.tolist()


@pytest.mark.parametrize("key,other", [((0, "en", 0), (0, "en", 1)), ((0, "en", 0), (1, "en", 0)),
                                       ((0, "en", 0), (0, "de", 0))])
def test_each_key_gives_its_own_order(key, other):
    assert not np.array_equal(KeyedPermutation(1000, *key).take(np.arange(1000)),
                              KeyedPermutation(1000, *other).take(np.arange(1000)))
    assert np.array_equal(KeyedPermutation(1000, *key).take(np.arange(1000)),
                          KeyedPermutation(1000, *key).take(np.arange(1000)))


def test_it_looks_shuffled():
    """Positions and values are uncorrelated, and every value is as likely at the first position (over keys)."""
    size = 10_000
    values = KeyedPermutation(size, 7).take(np.arange(size))
    assert abs(np.corrcoef(np.arange(size), values)[0, 1]) < 0.05
    first = np.array([KeyedPermutation(10, key)[0] for key in range(5000)])
    counts = np.bincount(first, minlength=10)
    assert counts.min() > 400 and counts.max() < 600  # 500 expected; the binomial standard deviation is 21


@pytest.mark.parametrize("position", [-1, 10])
def test_positions_outside_are_refused(position):
    with pytest.raises(IndexError):
        KeyedPermutation(10, 0)[position]
