"""The global sample order: global sample index -> (language, block), a pure function of the seed.

Languages are drawn with probabilities q_i (alpha sampling over token counts). The stream of global
sample indices is cut into chunks of `chunk_size`; chunk c's language counts are a multinomial draw and
their order a permutation, both from a generator keyed by (seed, c). The k-th draw of language i (counting
over all earlier chunks) takes block perm_{i,e}[k mod B_i], where e = k // B_i is the language's epoch and
perm_{i,e} a permutation keyed by (seed, i, e): every block once per epoch, in a new order each epoch.

Nothing here depends on the number of processes, so any rank can compute any sample, and a resumed run at
consumed_samples continues the same order with any world size. Memory: one chunk plus one permutation per
language in use.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from xlmr_ds.dataset.sampling import stable_seed


class GlobalSampleOrder:
    def __init__(self, probabilities: list[float], block_counts: list[int], seed: int, chunk_size: int = 1 << 16):
        self.probabilities = np.asarray(probabilities, dtype=np.float64)
        self.block_counts = np.asarray(block_counts, dtype=np.int64)
        if np.any((self.probabilities > 0) & (self.block_counts == 0)):
            raise ValueError("a language with probability > 0 has no blocks")
        self.probabilities = self.probabilities / self.probabilities.sum()
        self.seed = seed
        self.chunk_size = chunk_size
        # prefix_counts[c][i]: draws of language i in chunks before c.
        self._prefix_counts = [np.zeros(len(self.probabilities), dtype=np.int64)]
        self._chunk = lru_cache(maxsize=2)(self._build_chunk)
        self._permutation = lru_cache(maxsize=max(4, 2 * len(self.probabilities)))(self._build_permutation)

    def _chunk_generator(self, chunk: int) -> np.random.Generator:
        return np.random.default_rng(stable_seed(self.seed, "blend-chunk", chunk))

    def _chunk_counts(self, chunk: int) -> np.ndarray:
        return self._chunk_generator(chunk).multinomial(self.chunk_size, self.probabilities)

    def _prefix(self, chunk: int) -> np.ndarray:
        while len(self._prefix_counts) <= chunk:
            c = len(self._prefix_counts) - 1
            self._prefix_counts.append(self._prefix_counts[-1] + self._chunk_counts(c))
        return self._prefix_counts[chunk]

    def _build_chunk(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """(language of each position in the chunk, its rank among the chunk's draws of that language)."""
        rng = self._chunk_generator(chunk)
        counts = rng.multinomial(self.chunk_size, self.probabilities)
        languages = rng.permutation(np.repeat(np.arange(len(counts)), counts))
        order = np.argsort(languages, kind="stable")
        group_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        ranks = np.empty(self.chunk_size, dtype=np.int64)
        ranks[order] = np.arange(self.chunk_size) - group_start[languages[order]]
        return languages, ranks

    def _build_permutation(self, language: int, epoch: int) -> np.ndarray:
        rng = np.random.default_rng(stable_seed(self.seed, "blend-epoch", language, epoch))
        return rng.permutation(int(self.block_counts[language]))

    def __getitem__(self, sample_index: int) -> tuple[int, int]:
        chunk, position = divmod(int(sample_index), self.chunk_size)
        languages, ranks = self._chunk(chunk)
        language = int(languages[position])
        k = int(self._prefix(chunk)[language] + ranks[position])
        epoch, index = divmod(k, int(self.block_counts[language]))
        return language, int(self._permutation(language, epoch)[index])
