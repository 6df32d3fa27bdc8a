"""Philox4x32-10 in NumPy: the reference for Triton's `tl.philox`, so that CPU code reproduces device randomness.

Counter-based generation (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"): the four
32-bit outputs are a pure function of a 64-bit key and a 128-bit counter, so any element's random numbers
can be computed alone, in any order, on any device. The kernels use it for dropout (counter = key column,
query row, batch*head, call offset) and MLM masking (counter = position, sample index low/high word,
stream); `tests/kernels/test_philox.py` checks this implementation against `tl.philox` bit for bit.

Constants are Philox's: round multipliers 0xD2511F53, 0xCD9E8D57 and Weyl key increments 0x9E3779B9,
0xBB67AE85. The key is the seed: low word k0, high word k1.
"""

from __future__ import annotations

import functools

import numpy as np

ROUNDS = 10
_ROUND_A = np.uint64(0xD2511F53)
_ROUND_B = np.uint64(0xCD9E8D57)
_KEY_A = 0x9E3779B9
_KEY_B = 0xBB67AE85
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


def philox4x32(seed: int, c0, c1, c2, c3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four uint32 outputs of Philox4x32-10 for key `seed` (0 <= seed < 2**64) and counters c0..c3.

    The counters broadcast against each other; each is taken modulo 2**32. Arithmetic runs in uint64 so that
    the 32x32 -> 64-bit products are exact. The rounds work in place on preallocated arrays: the loader
    masks every sample with this, a few hundred positions at a time, where NumPy's per-call overhead and
    fresh temporaries would cost more than the arithmetic.
    """
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"philox seed {seed} is outside [0, 2**64)")
    shape = np.broadcast_shapes(*(np.shape(c) for c in (c0, c1, c2, c3)))
    size = int(np.prod(shape))
    x0, x1, x2, x3 = (_lane(c, shape, size) for c in (c0, c1, c2, c3))
    product_a, product_b = np.empty(size, np.uint64), np.empty(size, np.uint64)
    for k0, k1 in _key_schedule(seed):
        np.multiply(x2, _ROUND_B, out=product_b)
        np.multiply(x0, _ROUND_A, out=product_a)
        # x0' = hi(B*x2) ^ x1 ^ k0, x2' = hi(A*x0) ^ x3 ^ k1, x1' = lo(B*x2), x3' = lo(A*x0)
        np.right_shift(product_b, _SHIFT32, out=x0)
        x0 ^= x1
        x0 ^= k0
        np.right_shift(product_a, _SHIFT32, out=x2)
        x2 ^= x3
        x2 ^= k1
        np.bitwise_and(product_b, _LOW32, out=x1)
        np.bitwise_and(product_a, _LOW32, out=x3)
    return tuple(x.astype(np.uint32).reshape(shape) for x in (x0, x1, x2, x3))


def _lane(counter, shape: tuple[int, ...], size: int) -> np.ndarray:
    """A counter as a fresh flat uint64 array of `size` words mod 2**32 (the rounds update it in place)."""
    counter = np.asarray(counter)
    if counter.ndim == 0:  # the common case: one word for every position
        return np.full(size, int(counter) & 0xFFFFFFFF, dtype=np.uint64)
    return np.broadcast_to(counter.astype(np.uint64, copy=False), shape).reshape(-1) & _LOW32


@functools.lru_cache(maxsize=64)
def _key_schedule(seed: int) -> tuple[tuple[np.uint64, np.uint64], ...]:
    """Each round's key words (k0, k1): the seed's low and high words, bumped by the Weyl increments."""
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    keys = []
    for _ in range(ROUNDS):
        keys.append((np.uint64(k0), np.uint64(k1)))
        k0 = (k0 + _KEY_A) & 0xFFFFFFFF
        k1 = (k1 + _KEY_B) & 0xFFFFFFFF
    return tuple(keys)


def threshold(probability: float) -> int:
    """The uint32 bound below which a Philox word counts as an event of `probability` (integers: exact on any
    device)."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability {probability} is outside [0, 1]")
    return min(round(probability * 2**32), 2**32)
