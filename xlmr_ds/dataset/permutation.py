"""A keyed bijection over [0, n): a permutation whose k-th element is computed in O(1) memory.

A balanced Feistel network over the smallest domain of 4^h >= n values (two halves of h bits each), with
`ROUNDS` rounds whose function is SplitMix64's finalizer (Steele, Lea and Flood 2014) of the right half and a
round key; values that land outside [0, n) are mapped again until they fall inside ("cycle walking", Black and
Rogaway 2002), which keeps it a bijection on [0, n). The domain is less than 4n, so a lookup takes fewer than four
walks on average. Luby and Rackoff showed that four or more rounds of a random function make a permutation that
no efficient test tells from a random one; six are used here.

The sample order uses it for a language with more blocks than a materialized permutation should hold (at
CC-100's scale, English has about 10^8 blocks of 512 tokens: 0.9 GB per rank and per epoch as int64).
"""

from __future__ import annotations

import numpy as np

from xlmr_ds.dataset.sampling import stable_seed

ROUNDS = 6
_MASK64 = (1 << 64) - 1


def _mix(value, key: int):
    """SplitMix64's finalizer of value + key, for Python ints and uint64 arrays alike."""
    z = (value + key) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class KeyedPermutation:
    """perm[k] for k in [0, size): a permutation of [0, size) fixed by `key` (any values stable_seed takes)."""

    def __init__(self, size: int, *key: object):
        if size < 1:
            raise ValueError("a permutation of nothing")
        self.size = int(size)
        self.half_bits = max(1, ((self.size - 1).bit_length() + 1) // 2)
        self._half_mask = (1 << self.half_bits) - 1
        self._round_keys = [stable_seed("keyed-permutation", *key, round_index) for round_index in range(ROUNDS)]

    def _network(self, value):
        left, right = value >> self.half_bits, value & self._half_mask
        for round_key in self._round_keys:
            left, right = right, left ^ (_mix(right, round_key) & self._half_mask)
        return (left << self.half_bits) | right

    def __getitem__(self, position: int) -> int:
        if not 0 <= position < self.size:
            raise IndexError(f"position {position} of a permutation of {self.size}")
        value = int(position)
        while True:
            value = self._network(value)
            if value < self.size:
                return value

    def take(self, positions: np.ndarray) -> np.ndarray:
        """perm[k] for each k of `positions` (int64 array), vectorized."""
        values = np.asarray(positions, dtype=np.uint64).copy()
        walking = np.ones(len(values), dtype=bool)
        while walking.any():
            values[walking] = self._network(values[walking])
            walking = values >= self.size
        return values.astype(np.int64)

    def __len__(self) -> int:
        return self.size
