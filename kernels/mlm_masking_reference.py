"""The MLM masking rule in NumPy, as a pure function of (seed, global sample index): any rank can rebuild any
sample. It is what the data loader masks with on the host, and the reference of the Triton kernel beside it
(mlm_masking.py), which gives bit-identical results.

Each non-special position is chosen with probability 15%; a chosen token becomes <mask> with
probability 80%, a uniformly random non-special token with 10%, and stays itself with 10%. Labels hold the
original token at chosen positions and -100 elsewhere. The randomness is counter-based Philox: three 32-bit
words per (seed, sample index, position), compared as integers against thresholds, so a position's fate
does not depend on the other positions, on which process computes it, or on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from xlmr_ds.kernels.philox import philox4x32, threshold
from xlmr_ds.vocab import IGNORE_INDEX, special_ids

_WORD = (1 << 64) - 1
MLM_STREAM = 0x4D4C4D00
"""Fourth Philox counter word of every masking draw ("MLM\\0"): keeps these numbers apart from other users of a seed."""


@dataclass(frozen=True)
class MaskingThresholds:
    """The probabilities as bounds on uint32 Philox words: integer comparisons decide alike on every device."""

    choose: int
    mask: int
    mask_or_random: int


@dataclass(frozen=True)
class MaskingConfig:
    """The masking rule's parameters for one vocabulary."""

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

    @classmethod
    def for_vocabulary(cls, vocab_size: int, mask_prob: float = 0.15) -> MaskingConfig:
        """The rule for an XLM-R vocabulary of `vocab_size` ids (its specials never chosen)."""
        return cls(vocab_size, special_ids(vocab_size), mask_prob=mask_prob)

    @cached_property
    def thresholds(self) -> MaskingThresholds:
        return MaskingThresholds(
            choose=threshold(self.mask_prob),
            mask=threshold(self.replace_with_mask),
            mask_or_random=threshold(self.replace_with_mask + self.replace_with_random),
        )

    @property
    def mask_id(self) -> int:
        return self.vocab_size - 1

    @cached_property
    def is_special(self) -> np.ndarray:
        """Bool per token id: True for the special ids (one lookup per position instead of a set test)."""
        table = np.zeros(self.vocab_size, dtype=bool)
        table[list(self.special_ids)] = True
        table.flags.writeable = False  # shared by every sample
        return table

    @cached_property
    def first_regular_id(self) -> int:
        """Random replacements are drawn from [first_regular_id, mask_id): ids that are not special."""
        return max(i for i in self.special_ids if i != self.mask_id) + 1


def masking_words(seed: int, sample_index: int, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three uint32 Philox words per position: choose, how to replace, which random token.

    Counter (position, sample index low word, high word, MLM_STREAM) under key `seed`: the device kernel
    (xlmr_ds.kernels.mlm_masking) draws the same words, so both paths mask identically.
    """
    positions = np.arange(length, dtype=np.uint64)
    sample_index &= _WORD
    words = philox4x32(seed & _WORD, positions, sample_index & 0xFFFFFFFF, sample_index >> 32, MLM_STREAM)
    return words[:3]


def mask_tokens(tokens: np.ndarray, config: MaskingConfig, seed: int,
                sample_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, labels) for one sample; `tokens` is not modified."""
    tokens = np.asarray(tokens, dtype=np.int64)
    choose, replace, pick = masking_words(seed, sample_index, len(tokens))
    thresholds = config.thresholds
    chosen = choose < thresholds.choose
    chosen &= ~config.is_special[tokens]
    labels = np.where(chosen, tokens, IGNORE_INDEX)
    to_mask = chosen & (replace < thresholds.mask)
    to_random = chosen & ~to_mask & (replace < thresholds.mask_or_random)
    low, high = config.first_regular_id, config.mask_id
    # (word * span) >> 32 maps a uniform 32-bit word onto [0, span) with integer arithmetic only.
    random_tokens = low + ((pick.astype(np.int64) * (high - low)) >> 32)
    input_ids = np.where(to_mask, config.mask_id, np.where(to_random, random_tokens, tokens))
    return input_ids, labels
