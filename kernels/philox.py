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
    the 32x32 -> 64-bit products are exact.
    """
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"philox seed {seed} is outside [0, 2**64)")
    counters = np.broadcast_arrays(*(np.asarray(c).astype(np.uint64) & _LOW32 for c in (c0, c1, c2, c3)))
    c0, c1, c2, c3 = (c.copy() for c in counters)
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    for _ in range(ROUNDS):
        product_b = _ROUND_B * c2
        product_a = _ROUND_A * c0
        c0 = (product_b >> _SHIFT32) ^ c1 ^ np.uint64(k0)
        c2 = (product_a >> _SHIFT32) ^ c3 ^ np.uint64(k1)
        c1 = product_b & _LOW32
        c3 = product_a & _LOW32
        k0 = (k0 + _KEY_A) & 0xFFFFFFFF
        k1 = (k1 + _KEY_B) & 0xFFFFFFFF
    return tuple(c.astype(np.uint32) for c in (c0, c1, c2, c3))


def threshold(probability: float) -> int:
    """The uint32 bound below which a Philox word counts as an event of `probability` (integers: exact on any device)."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability {probability} is outside [0, 1]")
    return min(round(probability * 2**32), 2**32)
