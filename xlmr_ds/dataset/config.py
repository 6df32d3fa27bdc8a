"""The settings that fix which samples a run sees. Kept apart from the loader (and torch) so that the run's
settings and the command line can name them without loading the data stack."""

from __future__ import annotations

from dataclasses import dataclass

from xlmr_ds.errors import require_minimum, require_within

MIN_BLOCK_SIZE = 8
"""The shortest block the loader cuts: <s>, </s> and a few tokens to mask."""


@dataclass(frozen=True)
class DataConfig:
    """Which samples a run sees: the dataset and everything that fixes its global sample order and masks."""

    data_dir: str
    """A complete `xlmr-ds binarize` output directory (it has manifest.json)."""

    block_size: int = 512
    """Tokens per training sequence, <s> and </s> included (at least 8, at most the model's
    max_sequence_length)."""

    alpha: float = 0.3
    """Language sampling exponent over the manifest's token counts."""

    seed: int = 0
    """Seed of the global sample order and of the masks; resuming needs the same one. A training run also
    draws its initial weights and dropout from it."""

    valid_fraction: float = 0.005
    """Share of each language's documents held out for validation (at least one document), between 0 and 1."""

    split_seed: int = 0
    """Seed of the held-out documents, separate from `seed` so runs with other seeds share a validation set."""

    mask_prob: float = 0.15
    """Share of non-special tokens chosen for prediction (80% <mask>, 10% random, 10% kept)."""

    recipe: str | None = None
    """A JSON recipe file (docs/training.md: Recipes; dataset/recipe.py): phases that change the languages, alpha, mask
    rate, block size, batch size and learning rate over the run. Not given (None): XLM-R's single phase with this
    config's values. Validation always uses `block_size` and `mask_prob`, so that its losses compare across phases and
    recipes."""

    def __post_init__(self):
        # Named as the command line names them; alpha and mask_prob have no flag (a recipe changes them), and
        # their ranges are a recipe phase's (dataset/recipe.py).
        require_minimum("--block-size", self.block_size, MIN_BLOCK_SIZE)
        require_within("--valid-fraction", self.valid_fraction, "(0, 1)")
        require_within("alpha", self.alpha, "(0, 1]")
        require_within("mask_prob", self.mask_prob, "(0, 1)")
