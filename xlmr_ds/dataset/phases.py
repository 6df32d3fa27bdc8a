"""A recipe resolved for one run: every phase's values filled in and laid out on steps and global samples.

Phase p covers optimizer steps [first_step, first_step + steps) and global samples
[first_sample, first_sample + samples); step s of the run takes samples [samples_before(s), + batch_size(s)).
All of it follows from the recipe and the run's defaults alone, never from the number of processes, which is
what lets a run resume anywhere, on any world size, with the same samples.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from xlmr_ds.dataset.recipe import BatchRamp, LearningRatePiece, Ramp, Recipe
from xlmr_ds.errors import XLMRDSError


@dataclass(frozen=True)
class PhaseDefaults:
    """What a first phase takes for the keys it leaves out: the run's own settings."""

    alpha: float
    """The DataConfig's alpha."""

    mask_prob: float
    """The DataConfig's mask_prob."""

    block_size: int
    """The run's --block-size (already limited to the model's length)."""

    batch_size: int
    """The DeepSpeed config's train_batch_size."""

    languages: tuple[str, ...]
    """Every language of the dataset with training blocks."""

    peak_lr: float | None = None
    """The optimizer's lr in the DeepSpeed config (a warmup's default end)."""


@dataclass(frozen=True)
class ResolvedPhase:
    """One phase with every value known and its place in the run."""

    index: int
    name: str
    first_step: int
    steps: int
    first_sample: int
    alpha: Ramp
    languages: tuple[str, ...]
    mask_prob: float
    block_size: int
    batch: BatchRamp
    lr: LearningRatePiece | None
    train: str = "all"

    @cached_property
    def _cumulative(self) -> np.ndarray | None:
        """Samples before each step of the phase when the batch ramps (None when it is constant)."""
        if self.batch.start == self.batch.end:
            return None
        steps = np.arange(self.steps, dtype=np.int64)
        exact = self.batch.start + (self.batch.end - self.batch.start) * steps // max(1, self.steps - 1)
        sizes = np.maximum(self.batch.multiple, exact // self.batch.multiple * self.batch.multiple)
        return np.concatenate([[0], np.cumsum(sizes)])

    def batch_size(self, step: int) -> int:
        """The global batch of the phase's step `step` (0-based)."""
        return self.batch.at(step, self.steps)

    def samples_before(self, step: int) -> int:
        """Samples of the phase's steps before `step` (0 <= step <= steps)."""
        if self._cumulative is None:
            return step * self.batch.start
        return int(self._cumulative[step])

    @property
    def samples(self) -> int:
        return self.samples_before(self.steps)

    def alpha_at_sample(self, sample: int) -> float:
        """The alpha at the phase's sample `sample` (0-based): linear over the phase's samples."""
        return self.alpha.at(min(1.0, sample / max(1, self.samples)))

    def to_dict(self) -> dict:
        return {"name": self.name, "first_step": self.first_step, "steps": self.steps,
                "first_sample": self.first_sample, "samples": self.samples,
                "alpha": dataclasses.asdict(self.alpha), "languages": list(self.languages),
                "mask_prob": self.mask_prob, "block_size": self.block_size,
                "batch_size": dataclasses.asdict(self.batch),
                "lr": dataclasses.asdict(self.lr) if self.lr else None, "train": self.train}


class PhasePlan:
    """The resolved phases of a run and the lookups the loader and the trainer need."""

    def __init__(self, recipe: Recipe, defaults: PhaseDefaults):
        self.recipe = recipe
        self.phases: list[ResolvedPhase] = []
        previous = None
        first_step = first_sample = 0
        for index, phase in enumerate(recipe.phases):
            where = f"{recipe.source}: phases[{index}]"
            carried_alpha = previous.alpha.end if previous else defaults.alpha
            alpha = phase.alpha or Ramp(carried_alpha, carried_alpha)
            languages = self._languages(phase.languages, previous, defaults)
            block_size = phase.block_size or (previous.block_size if previous else defaults.block_size)
            batch = phase.batch_size or (BatchRamp(previous.batch.end, previous.batch.end, previous.batch.end)
                                         if previous else BatchRamp(*(defaults.batch_size,) * 3))
            if phase.tokens is not None:
                if batch.start != batch.end:
                    raise XLMRDSError(f"{where}: its batch size ramps, so give its length in steps, not tokens")
                steps = math.ceil(phase.tokens / (batch.start * block_size))
            else:
                steps = phase.steps
            lr = self._learning_rate(where, phase.lr, previous, defaults) if phase.lr else None
            resolved = ResolvedPhase(index, phase.name, first_step, steps, first_sample, alpha, languages,
                                 phase.mask_prob if phase.mask_prob is not None else
                                 (previous.mask_prob if previous else defaults.mask_prob),
                                 block_size, batch, lr, phase.train)
            self.phases.append(resolved)
            first_step += steps
            first_sample += resolved.samples
            previous = resolved
        self.total_steps = first_step
        self._first_steps = [p.first_step for p in self.phases]
        self._first_samples = [p.first_sample for p in self.phases]

    @staticmethod
    def _languages(listed, previous, defaults: PhaseDefaults) -> tuple[str, ...]:
        if listed is None:
            return previous.languages if previous else defaults.languages
        # The dataset's order, whatever order the list has: a language that joins moves no other.
        return tuple(language for language in defaults.languages if language in set(listed))

    @staticmethod
    def _learning_rate(where: str, piece: LearningRatePiece, previous, defaults: PhaseDefaults) -> LearningRatePiece:
        carried = previous.lr.end if previous is not None else None
        start = piece.start if piece.start is not None else (
            carried if carried is not None else (0.0 if piece.shape == "warmup" else defaults.peak_lr))
        if piece.shape == "stable":
            end = start
        elif piece.end is not None:
            end = piece.end
        else:
            end = defaults.peak_lr if piece.shape == "warmup" else 0.0
        if start is None or end is None:
            raise XLMRDSError(f"{where}.lr: no start given and the DeepSpeed config's optimizer has no lr to begin "
                              f"from; give lr.start")
        return LearningRatePiece(piece.shape, float(start), float(end))

    # ---- lookups -----------------------------------------------------------------------------------
    def phase_of_step(self, step: int) -> ResolvedPhase:
        """The phase that step `step` (0-based: the step being taken) belongs to; the last one past the end."""
        return self.phases[max(0, bisect.bisect_right(self._first_steps, step) - 1)]

    def phase_of_sample(self, sample: int) -> ResolvedPhase:
        return self.phases[max(0, bisect.bisect_right(self._first_samples, sample) - 1)]

    def batch_size(self, step: int) -> int:
        phase = self.phase_of_step(step)
        return phase.batch_size(min(step - phase.first_step, phase.steps - 1))

    def samples_before(self, step: int) -> int:
        """Global samples of the run's steps before `step` (steps past the end keep the last batch size)."""
        phase = self.phase_of_step(step)
        within = step - phase.first_step
        if within <= phase.steps:
            return phase.first_sample + phase.samples_before(within)
        return phase.first_sample + phase.samples + (within - phase.steps) * phase.batch_size(phase.steps - 1)

    def step_at(self, consumed_samples: int) -> int:
        """The step whose first sample is `consumed_samples`: where a run resumed from it goes on."""
        phase = self.phase_of_sample(consumed_samples)
        low, high = phase.first_step, max(phase.first_step + phase.steps, phase.first_step + 1)
        while self.samples_before(high) < consumed_samples:
            high *= 2
        while low < high:
            middle = (low + high) // 2
            if self.samples_before(middle) < consumed_samples:
                low = middle + 1
            else:
                high = middle
        if self.samples_before(low) != consumed_samples:
            raise XLMRDSError(f"consumed_samples={consumed_samples} is not at the start of a step of this recipe "
                              f"(step {low} starts at {self.samples_before(low)}): the checkpoint was written with "
                              f"other batch sizes")
        return low

    def step_of_sample(self, sample: int) -> int:
        """The step that takes global sample `sample`."""
        phase = self.phase_of_sample(sample)
        low, high = phase.first_step, phase.first_step + max(phase.steps, 1)
        while self.samples_before(high) <= sample:
            high *= 2
        while high - low > 1:  # samples_before(low) <= sample < samples_before(high)
            middle = (low + high) // 2
            if self.samples_before(middle) <= sample:
                low = middle
            else:
                high = middle
        return low

    @property
    def total_samples(self) -> int:
        """The samples of all the phases: where the run's order ends."""
        return self.phases[-1].first_sample + self.phases[-1].samples

    def learning_rate(self, step: int) -> float | None:
        """The recipe's rate for step `step` (None without lr pieces; the last rate past the end)."""
        phase = self.phase_of_step(step)
        if phase.lr is None:
            return None
        return phase.lr.at(min(step - phase.first_step, phase.steps - 1), phase.steps)

    def batch_multiples(self) -> list[tuple[str, int]]:
        """(where, value) for every batch size the recipe can take, to check against micro batch x processes."""
        values = []
        for phase in self.phases:
            where = f"phases[{phase.index}].batch_size"
            values += [(f"{where}.start", phase.batch.start), (f"{where}.end", phase.batch.end),
                       (f"{where}.multiple", phase.batch.multiple)]
        return values

    def to_dict(self) -> list[dict]:
        return [phase.to_dict() for phase in self.phases]

