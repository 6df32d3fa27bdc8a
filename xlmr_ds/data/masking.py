"""MLM masking as a pure function of (seed, global sample index): any rank can rebuild any sample.

Each non-special position is chosen with probability 15%; a chosen token becomes <mask> with
probability 80%, a uniformly random non-special token with 10%, and stays itself with 10%. Labels hold the
original token at chosen positions and -100 elsewhere. The randomness for a sample comes from a Philox
generator keyed by (seed, sample index), three uniforms per position, so a position's fate does not
depend on the other positions or on which process computes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = -100
_WORD = (1 << 64) - 1


@dataclass(frozen=True)
class MaskingConfig:
    vocab_size: int
    """Number of token ids; <mask> is the last one."""

    special_ids: tuple[int, ...]
    """Ids never chosen: <s>, <pad>, </s>, <unk>, <mask>."""

    mask_prob: float = 0.15
    """Share of the non-special positions chosen for prediction."""

    replace_with_mask: float = 0.8
    """Of the chosen positions, the share replaced by <mask>."""

    replace_with_random: float = 0.1
    """Of the chosen positions, the share replaced by a random non-special token (the rest stay)."""

    @property
    def mask_id(self) -> int:
        return self.vocab_size - 1

    @property
    def first_regular_id(self) -> int:
        """Random replacements are drawn from [first_regular_id, mask_id): ids that are not special."""
        return max(i for i in self.special_ids if i != self.mask_id) + 1


def mask_tokens(tokens: np.ndarray, config: MaskingConfig, seed: int, sample_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, labels) for one sample; `tokens` is not modified."""
    # Philox takes a 128-bit key: the two 64-bit words, given as uint64 so that no value is rounded.
    key = np.array([seed & _WORD, sample_index & _WORD], dtype=np.uint64)
    rng = np.random.Generator(np.random.Philox(key=key))
    uniforms = rng.random((3, len(tokens)))
    tokens = np.asarray(tokens, dtype=np.int64)
    regular = ~np.isin(tokens, config.special_ids)
    chosen = regular & (uniforms[0] < config.mask_prob)
    labels = np.where(chosen, tokens, IGNORE_INDEX)
    to_mask = chosen & (uniforms[1] < config.replace_with_mask)
    to_random = chosen & ~to_mask & (uniforms[1] < config.replace_with_mask + config.replace_with_random)
    low, high = config.first_regular_id, config.mask_id
    random_tokens = low + np.minimum((uniforms[2] * (high - low)).astype(np.int64), high - low - 1)
    input_ids = np.where(to_mask, config.mask_id, np.where(to_random, random_tokens, tokens))
    return input_ids, labels
