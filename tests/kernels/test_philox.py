"""The NumPy Philox4x32-10 equals Triton's tl.philox bit for bit: the basis of CPU/device agreement."""

import numpy as np
import pytest
import torch
import triton
import triton.language as tl
from cases import device

from xlmr_ds.kernels.philox import philox4x32, threshold


@triton.jit
def _philox_words(C0, C1, C2, C3, OUT, n, seed, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    inside = i < n
    c0, c1 = tl.load(C0 + i, mask=inside).to(tl.uint32), tl.load(C1 + i, mask=inside).to(tl.uint32)
    c2, c3 = tl.load(C2 + i, mask=inside).to(tl.uint32), tl.load(C3 + i, mask=inside).to(tl.uint32)
    w0, w1, w2, w3 = tl.philox(seed, c0, c1, c2, c3)
    tl.store(OUT + i, w0.to(tl.int64), mask=inside)
    tl.store(OUT + n + i, w1.to(tl.int64), mask=inside)
    tl.store(OUT + 2 * n + i, w2.to(tl.int64), mask=inside)
    tl.store(OUT + 3 * n + i, w3.to(tl.int64), mask=inside)


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**32 + 7, 2**63 - 1, 2**64 - 1])
def test_numpy_philox_equals_triton(seed):
    rng = np.random.default_rng(seed % 1000)
    n = 64
    counters = [rng.integers(0, 2**32, n, dtype=np.int64) for _ in range(4)]
    counters[0][:3] = [0, 1, 2**32 - 1]
    out = torch.empty(4 * n, dtype=torch.int64, device=device())
    _philox_words[(1,)](*(torch.from_numpy(c).to(device()) for c in counters), out, n, seed, BLOCK=64)
    expected = np.stack(philox4x32(seed, *counters)).astype(np.int64)
    assert np.array_equal(out.cpu().numpy().reshape(4, n), expected)


def test_known_answer():
    # Philox4x32-10 known-answer vector (Random123 kat_vectors): counter 0, key 0.
    words = philox4x32(0, 0, 0, 0, 0)
    assert [int(w) for w in words] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]


@pytest.mark.parametrize("probability,expected", [(0.0, 0), (0.5, 2**31), (1.0, 2**32), (0.15, 644245094)])
def test_thresholds_are_exact_integers(probability, expected):
    assert threshold(probability) == expected
