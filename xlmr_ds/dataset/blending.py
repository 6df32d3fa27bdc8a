"""The global sample order: global sample index -> (language, block), a pure function of the seed.

Languages are drawn with probabilities q_i (alpha sampling over token counts). The stream of global
sample indices is cut into chunks of `chunk_size`; chunk c's language counts are a multinomial draw and
their order a permutation, both from a generator keyed by (seed, c). The k-th draw of language i (counting
over all earlier chunks) takes block perm_{i,e}[k mod B_i], where e = k // B_i is the language's epoch and
perm_{i,e} a permutation keyed by (seed, i, e): every block once per epoch, in a new order each epoch.

A language with more than `PERMUTATION_LIMIT` blocks draws its epochs from a keyed bijection instead
(permutation.KeyedPermutation, keyed the same way): a lookup computed in O(1) memory, where a materialized
permutation would cost 8 bytes per block on every rank and every epoch (about 0.9 GB for CC-100's English).
Smaller languages keep NumPy's permutation, so every order of earlier releases is unchanged.

Nothing here depends on the number of processes, so any rank can compute any sample, and a resumed run at
consumed_samples continues the same order with any world size. Memory: one chunk, the draws per language
before each chunk up to the one asked for, and one permutation per language in use (of at most
PERMUTATION_LIMIT blocks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache

import numpy as np

from xlmr_ds.dataset.permutation import KeyedPermutation
from xlmr_ds.dataset.sampling import stable_seed

PREFIX_STRIDE = 1024
"""Chunks between two kept counts of draws per language (a resume walks at most this many from the nearest)."""
PERMUTATION_LIMIT = 1 << 22
"""Most blocks of a language whose epochs use a materialized permutation (32 MiB as int64); above it, a keyed
bijection."""


class GlobalSampleOrder:
    """The order of one phase (a recipe's phases each have one; XLM-R's single phase is the whole run).

    A phase after the first keys its chunks apart (`key`: its index) and continues each language's epochs where
    the earlier phases left them (`initial_draws`: their draws per language over the same block table, whose
    permutations `epoch_key` names). `chunk_probabilities` gives each chunk its own language probabilities,
    for an alpha that changes over the phase; the defaults are the one-phase order of earlier releases.
    """

    def __init__(self, probabilities: list[float], block_counts: list[int], seed: int, chunk_size: int = 1 << 16,
                 key: tuple = (), epoch_key: tuple = (), initial_draws: np.ndarray | None = None,
                 chunk_probabilities: Callable[[int], np.ndarray] | None = None,
                 permutation_limit: int = PERMUTATION_LIMIT):
        self.probabilities = self._normalized(probabilities, block_counts)
        self.block_counts = np.asarray(block_counts, dtype=np.int64)
        self.seed = seed
        self.chunk_size = chunk_size
        self.key, self.epoch_key = tuple(key), tuple(epoch_key)
        self._chunk_probabilities = chunk_probabilities
        self.permutation_limit = permutation_limit
        # Draws of each language before chunk c, the earlier phases' included: kept for every PREFIX_STRIDE-th
        # chunk and for the chunk last asked for, so that a run at step 1.5M holds hundreds of these, not 10^5.
        start = np.zeros(len(self.probabilities), dtype=np.int64) if initial_draws is None else initial_draws
        self._prefix_checkpoints = [np.asarray(start, dtype=np.int64).copy()]  # chunk k * PREFIX_STRIDE
        self._last_prefix = (0, self._prefix_checkpoints[0])
        self._chunk = lru_cache(maxsize=2)(self._build_chunk)
        self._permutation = lru_cache(maxsize=max(4, 2 * len(self.probabilities)))(self._build_permutation)

    def _normalized(self, probabilities, block_counts) -> np.ndarray:
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if np.any((probabilities > 0) & (np.asarray(block_counts) == 0)):
            raise ValueError("a language with probability > 0 has no blocks")
        return probabilities / probabilities.sum()

    def probabilities_of_chunk(self, chunk: int) -> np.ndarray:
        if self._chunk_probabilities is None:
            return self.probabilities
        return self._normalized(self._chunk_probabilities(chunk), self.block_counts)

    def _chunk_generator(self, chunk: int) -> np.random.Generator:
        return np.random.default_rng(stable_seed(self.seed, "blend-chunk", *self.key, chunk))

    def _chunk_counts(self, chunk: int) -> np.ndarray:
        return self._chunk_generator(chunk).multinomial(self.chunk_size, self.probabilities_of_chunk(chunk))

    def _prefix(self, chunk: int) -> np.ndarray:
        """Each language's draws before chunk `chunk`: walked from the nearest kept count below it."""
        last_chunk, counts = self._last_prefix
        if last_chunk == chunk:
            return counts
        kept = min(chunk // PREFIX_STRIDE, len(self._prefix_checkpoints) - 1)
        if not kept * PREFIX_STRIDE <= last_chunk < chunk:
            last_chunk, counts = kept * PREFIX_STRIDE, self._prefix_checkpoints[kept]
        while last_chunk < chunk:
            counts = counts + self._chunk_counts(last_chunk)
            last_chunk += 1
            if last_chunk % PREFIX_STRIDE == 0 and last_chunk // PREFIX_STRIDE == len(self._prefix_checkpoints):
                self._prefix_checkpoints.append(counts)
        self._last_prefix = (chunk, counts)
        return counts

    @property
    def initial_draws(self) -> np.ndarray:
        """Each language's draws in the earlier phases over the same block table (where its epochs resume)."""
        return self._prefix_checkpoints[0]

    def draws(self, samples: int) -> np.ndarray:
        """Each language's draws among the phase's first `samples` samples (the earlier phases' excluded)."""
        chunk, position = divmod(int(samples), self.chunk_size)
        counts = self._prefix(chunk) - self.initial_draws
        if position:
            counts = counts + np.bincount(self._chunk(chunk)[0][:position], minlength=len(counts))
        return counts

    def epoch_segments(self, language: int, first: int, last: int) -> Iterator[tuple[int, int, int]]:
        """(epoch, start, end) covering the language's draws first..last-1 (counted over all phases): draw k is
        block permutation(epoch)[k mod blocks] of epoch k // blocks."""
        count = int(self.block_counts[language])
        while first < last:
            epoch, index = divmod(first, count)
            end = min(last - first, count - index) + index
            yield epoch, index, end
            first += end - index

    def blocks_drawn(self, language: int, epoch: int, start: int, end: int) -> np.ndarray:
        """The blocks of positions start..end-1 of the language's permutation for `epoch`."""
        permutation = self._permutation(language, epoch)
        if isinstance(permutation, KeyedPermutation):
            return permutation.take(np.arange(start, end, dtype=np.int64))
        return permutation[start:end]

    def _build_chunk(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """(language of each position in the chunk, its rank among the chunk's draws of that language)."""
        rng = self._chunk_generator(chunk)
        counts = rng.multinomial(self.chunk_size, self.probabilities_of_chunk(chunk))
        languages = rng.permutation(np.repeat(np.arange(len(counts)), counts))
        order = np.argsort(languages, kind="stable")
        group_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        ranks = np.empty(self.chunk_size, dtype=np.int64)
        ranks[order] = np.arange(self.chunk_size) - group_start[languages[order]]
        return languages, ranks

    def _build_permutation(self, language: int, epoch: int) -> np.ndarray | KeyedPermutation:
        key = (self.seed, "blend-epoch", *self.epoch_key, language, epoch)
        blocks = int(self.block_counts[language])
        if blocks > self.permutation_limit:
            return KeyedPermutation(blocks, *key)
        return np.random.default_rng(stable_seed(*key)).permutation(blocks)

    def __getitem__(self, sample_index: int) -> tuple[int, int]:
        chunk, position = divmod(int(sample_index), self.chunk_size)
        languages, ranks = self._chunk(chunk)
        language = int(languages[position])
        k = int(self._prefix(chunk)[language] + ranks[position])
        epoch, index = divmod(k, int(self.block_counts[language]))
        return language, int(self._permutation(language, epoch)[index])
