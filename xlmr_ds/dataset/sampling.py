"""Language sampling with an exponent alpha (XLM-R: alpha = 0.3).

p_i = n_i / sum_k n_k, q_i = p_i^alpha / sum_j p_j^alpha: alpha < 1 raises the share of low-resource
languages. The same distribution picks the SentencePiece training sample and blends the training data.
"""

from __future__ import annotations

import hashlib

import numpy as np

from xlmr_ds.errors import XLMRDSError


def alpha_probabilities(sizes: dict[str, int], alpha: float) -> dict[str, float]:
    """q_i for each language from its size n_i (tokens, or bytes before a tokenizer exists)."""
    if not 0.0 < alpha <= 1.0:
        raise XLMRDSError(f"--alpha={alpha} must be in (0, 1] (XLM-R uses 0.3)")
    languages = [lang for lang, n in sizes.items() if n > 0]
    if not languages:
        raise XLMRDSError("every language is empty: nothing to sample")
    n = np.array([sizes[lang] for lang in languages], dtype=np.float64)
    weights = (n / n.sum()) ** alpha
    q = dict.fromkeys(sizes, 0.0)
    q.update(zip(languages, (weights / weights.sum()).tolist()))
    return q


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from values, stable across processes and Python versions (unlike hash())."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
