"""Dropout keyed by sample: masks that are a function of (seed, global sample index, site), not of a rank's RNG.

With each process drawing dropout from its own generator, the same global batch split over 1, 2 or 4
processes sees different masks, so runs on different numbers of processes drift apart. Keyed by sample, the
mask of every element of sample i at a given dropout site is the same whichever process, micro-batch or
padding the sample lands in, so such runs differ only by the order of floating-point reductions.

How a mask is made:
- a *site* is one dropout call of the model: the embeddings (site 0) and, per layer l, the attention
  probabilities (1 + 3l), the attention output (2 + 3l) and the feed-forward output (3 + 3l);
- each (sample, site) gets a 63-bit seed: words 0 and 1 of Philox4x32-10 under the run's seed as key, with
  counter (sample index low word, high word, site, DROPOUT_STREAM) (the masking's counters end in MLM_STREAM,
  so the two never share a counter);
- from that seed, the Triton kernels draw Philox per element with the element's position inside the
  sample as counter (flash_attention.py, fused_residual_layernorm.py); the PyTorch path seeds a generator
  with it and draws uniforms over the sample's real tokens only, in row-major order of
  (heads, query, key) or (position, feature). Padding positions are always kept: nothing reads them.
The two paths give different masks for the same seeds (as PyTorch's and Triton's dropout always did); each
is invariant to how samples are split over processes and padded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from xlmr_ds.kernels.philox import philox4x32

DROPOUT_STREAM = 0x44524F50
"""Fourth Philox counter word of the seed derivation ("DROP")."""

EMBEDDINGS_SITE = 0
ATTENTION_PROBS, ATTENTION_OUTPUT, FFN_OUTPUT = 0, 1, 2
SITES_PER_LAYER = 3


def site_of(layer: int, kind: int) -> int:
    """The site number of a dropout inside layer `layer` (kind: ATTENTION_PROBS, ATTENTION_OUTPUT or FFN_OUTPUT)."""
    return 1 + SITES_PER_LAYER * layer + kind


def sample_seeds(seed: int, sample_index: np.ndarray, sites: int) -> np.ndarray:
    """(sites, batch) int64 seeds in [0, 2**63): seed[s, b] keys the masks of sample sample_index[b] at site s."""
    index = np.asarray(sample_index, dtype=np.uint64)[None, :]
    site = np.arange(sites, dtype=np.uint64)[:, None]
    low, high, _, _ = philox4x32(seed % (1 << 64), index & np.uint64(0xFFFFFFFF), index >> np.uint64(32), site,
                                 DROPOUT_STREAM)
    return ((high.astype(np.uint64) & np.uint64(0x7FFFFFFF)) << np.uint64(32) | low.astype(np.uint64)).astype(np.int64)


@dataclass(frozen=True)
class DropoutKeys:
    """What keys one forward pass's dropout: the run's seed and the global index of each sample of the batch."""

    seed: int
    """The run's seed (the one the MLM masking uses)."""

    sample_index: torch.Tensor
    """(batch,) int64 global sample indices, in the batch's row order."""


@dataclass(frozen=True)
class SiteSeeds:
    """The seeds of one dropout site for the samples of a batch, and the samples' real lengths."""

    host: tuple[int, ...]
    """One seed per sample (for the PyTorch path's generators)."""

    device: torch.Tensor
    """The same seeds, (batch,) int64 on the batch's device (for the Triton kernels)."""

    batch: BatchDropoutSeeds
    """The batch they belong to (its lengths and token layouts)."""

    @property
    def lengths(self) -> tuple[int, ...]:
        return self.batch.lengths

    def row_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(seeds, row_sample, row_position) for a row-wise kernel over x: (batch, seq, features) padded, or
        (tokens, features) with the real tokens of each sample back to back."""
        row_sample, row_position = self.batch.token_layout(x)
        return self.device, row_sample, row_position


class BatchDropoutSeeds:
    """Every site's seeds for one batch: derived on the host in one call, copied to the device once."""

    def __init__(self, keys: DropoutKeys, lengths, sites: int, device: torch.device):
        table = sample_seeds(keys.seed, keys.sample_index.cpu().numpy(), sites)
        self.host = table
        self.device = torch.from_numpy(table).to(device, non_blocking=True)
        self.lengths = tuple(int(n) for n in lengths)
        if len(self.lengths) != table.shape[1]:
            raise ValueError(f"dropout keys for {table.shape[1]} samples but the batch has {len(self.lengths)}")
        self._layouts: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def site(self, site: int) -> SiteSeeds:
        return SiteSeeds(tuple(int(s) for s in self.host[site]), self.device[site], self)

    def token_layout(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """int32 (sample, position in the sample) of every row of x, made once per layout and batch."""
        shape = tuple(x.shape[:-1])
        if shape not in self._layouts:
            if len(shape) == 2:  # padded (batch, seq)
                batch, seq = shape
                sample, position = np.repeat(np.arange(batch), seq), np.tile(np.arange(seq), batch)
            else:  # packed real tokens
                if shape[0] != sum(self.lengths):
                    raise ValueError(f"{shape[0]} packed rows but the batch has {sum(self.lengths)} real tokens")
                sample = np.repeat(np.arange(len(self.lengths)), self.lengths)
                position = np.concatenate([np.arange(n) for n in self.lengths])
            self._layouts[shape] = tuple(torch.from_numpy(a.astype(np.int32)).to(x.device, non_blocking=True)
                                         for a in (sample, position))
        return self._layouts[shape]


def keep_mask(seeds: SiteSeeds, p: float, padded_shape: tuple[int, ...], per_sample: str,
              device: torch.device) -> torch.Tensor:
    """Booleans (batch, *padded_shape), True where an element survives dropout of probability p (PyTorch path).

    per_sample "tokens": padded_shape is (seq, features) and sample b draws (length_b, features);
    "attention": padded_shape is (heads, seq, seq) and sample b draws (heads, length_b, length_b).
    Everything outside the drawn region (padding) is kept.
    """
    keep = torch.ones((len(seeds.host), *padded_shape), dtype=torch.bool, device=device)
    for b, (seed, length) in enumerate(zip(seeds.host, seeds.lengths)):
        generator = torch.Generator(device=device).manual_seed(seed)
        if per_sample == "tokens":
            shape = (length, padded_shape[1])
            keep[b, :length] = torch.rand(shape, generator=generator, device=device) >= p
        elif per_sample == "attention":
            shape = (padded_shape[0], length, length)
            keep[b, :, :length, :length] = torch.rand(shape, generator=generator, device=device) >= p
        else:
            raise ValueError(f"per_sample must be 'tokens' or 'attention', not {per_sample!r}")
    return keep


def keyed_dropout(x: torch.Tensor, p: float, seeds: SiteSeeds) -> torch.Tensor:
    """Dropout of (batch, seq, features) x keyed by sample (PyTorch path): kept elements scaled by 1/(1-p)."""
    if p == 0.0:
        return x
    keep = keep_mask(seeds, p, tuple(x.shape[1:]), "tokens", x.device)
    return x * keep.to(x.dtype) * (1.0 / (1.0 - p))
