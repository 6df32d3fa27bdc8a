"""Masked 512-token training batches from a binarize output: deterministic, shardable, resumable.

The global sample order is a function of the seed alone (blending.py); global batch b holds samples
[b * G, (b + 1) * G) and data-parallel rank r of W takes the r-th contiguous share of it. The loader's
whole state is consumed_samples (plus the seed it must match), so a run resumed with the same or another
world size continues the same global order with no sample repeated or skipped (`TrainLoader`, whose
state_dict / load_state_dict the checkpoint manager calls).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from xlmr_ds.dataset.blending import GlobalSampleOrder
from xlmr_ds.dataset.block_index import load_block_tables
from xlmr_ds.dataset.config import DataConfig
from xlmr_ds.dataset.indexed import IndexedDataset
from xlmr_ds.dataset.manifest import read_manifest, tokenizer_file
from xlmr_ds.dataset.phases import PhaseDefaults, PhasePlan, ResolvedPhase
from xlmr_ds.dataset.recipe import Recipe
from xlmr_ds.dataset.sampling import alpha_probabilities, stable_seed
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.kernels.mlm_masking_reference import MaskingConfig, mask_tokens
from xlmr_ds.vocab import BOS_ID, EOS_ID, IGNORE_INDEX, PAD_ID
from xlmr_ds.world import data_world


class PretrainingData:
    """The languages of a binarize output with their block tables, and the recipe's phases over them: each
    phase's blend (GlobalSampleOrder) and masking. Without a recipe: one phase with the DataConfig's values
    throughout (Recipe.single_phase, XLM-R's recipe).

    Validation always uses the DataConfig's block size and mask rate, so its losses compare across phases
    and across recipes. `world` (the job's processes: a training job passes its runtime) builds a missing block
    index on its rank 0 while the others wait; the default is MPI's world under mpiexec, else one process.
    """

    def __init__(self, config: DataConfig, recipe: Recipe | None = None, batch_size: int = 1,
                 peak_lr: float | None = None, max_sequence_length: int | None = None, world=None):
        self.config = config
        self.world = world or data_world()
        """The job's processes, for building the block index once (see block_index.load_block_tables)."""
        data_dir = Path(config.data_dir)
        self.manifest = read_manifest(data_dir)
        self.tokenizer_file = tokenizer_file(data_dir, self.manifest)
        self.vocab_size = self.manifest["tokenizer"]["vocab_size"]
        self.masking = MaskingConfig.for_vocabulary(self.vocab_size, mask_prob=config.mask_prob)
        self.languages = sorted(self.manifest["languages"])
        self.datasets = {lang: IndexedDataset(data_dir / lang) for lang in self.languages}
        for lang, dataset in self.datasets.items():
            expected = self.manifest["languages"][lang]["tokens"]
            if dataset.num_tokens != expected:
                raise XLMRDSError(f"{data_dir / lang}.idx: {dataset.num_tokens} tokens, but manifest.json says "
                                  f"{expected}; the dataset was changed after binarization")
        self._tables = {config.block_size: self._load_tables(config.block_size)}
        self.blocks = self._tables[config.block_size]
        recipe = recipe or Recipe.single_phase(steps=1 << 40)
        recipe.check_against(self.languages, max_sequence_length or (1 << 31))
        self.plan = PhasePlan(recipe, PhaseDefaults(config.alpha, config.mask_prob, config.block_size, batch_size,
                                                    tuple(self.languages), peak_lr))
        self.phase_orders: list[GlobalSampleOrder] = []
        self.phase_masking = [MaskingConfig.for_vocabulary(self.vocab_size, mask_prob=phase.mask_prob)
                              for phase in self.plan.phases]
        for phase in self.plan.phases:
            self.phase_orders.append(self._phase_order(phase))
        self.order = self.phase_orders[0]
        self.probabilities = dict(zip(self.languages, self.order.probabilities_of_chunk(0).tolist()))

    def _load_tables(self, block_size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return load_block_tables(Path(self.config.data_dir), self.languages, block_size, self.config.valid_fraction,
                                 self.config.split_seed, self.world)

    def tables(self, block_size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{language: (train blocks, validation blocks)} at `block_size` (built and cached on first use)."""
        if block_size not in self._tables:
            self._tables[block_size] = self._load_tables(block_size)
        return self._tables[block_size]

    def _phase_order(self, phase: ResolvedPhase) -> GlobalSampleOrder:
        """The phase's blend over its languages, continuing the epochs of earlier phases with its block size."""
        tables = self.tables(phase.block_size)
        block_counts = [len(tables[lang][0]) for lang in self.languages]
        trainable = [lang for lang, count in zip(self.languages, block_counts) if count and lang in phase.languages]
        if not trainable:
            raise XLMRDSError(f"{self.plan.recipe.source or 'the run'}: phase {phase.name!r} has no language with "
                              f"training blocks of {phase.block_size} tokens")
        tokens = {lang: self.manifest["languages"][lang]["tokens"] for lang in trainable}

        def probabilities(alpha: float) -> np.ndarray:
            q = alpha_probabilities(tokens, alpha)
            return np.array([q.get(lang, 0.0) for lang in self.languages])

        earlier = [(p, order) for p, order in zip(self.plan.phases, self.phase_orders)
                   if p.block_size == phase.block_size]
        initial = sum((order.draws(p.samples) for p, order in earlier), np.zeros(len(self.languages), np.int64))
        chunk_size = 1 << 16
        ramp = None
        if phase.alpha.start != phase.alpha.end:
            def ramp(chunk: int) -> np.ndarray:  # the alpha at the chunk's middle sample
                return probabilities(phase.alpha_at_sample(int((chunk + 0.5) * chunk_size)))
        first_block_size = self.plan.phases[0].block_size
        return GlobalSampleOrder(
            probabilities(phase.alpha.start), block_counts, self.config.seed, chunk_size,
            key=("phase", phase.index) if phase.index else (),
            epoch_key=("block-size", phase.block_size) if phase.block_size != first_block_size else (),
            initial_draws=initial, chunk_probabilities=ramp)

    def block_tokens(self, language: str, split: int, block_index: int, block_size: int | None = None) -> np.ndarray:
        """<s> + the block's tokens (+ </s> for a piece of a long line); split 0 = train, 1 = validation; blocks
        of the DataConfig's size unless `block_size` says."""
        tables = self.blocks if block_size is None else self.tables(block_size)
        start, count, append_eos = tables[language][split][block_index]
        body = self.datasets[language].tokens(int(start), int(count)).astype(np.int64)
        if count and body.max() >= self.vocab_size:
            # An id the embedding table does not have would end training with an IndexError deep in the model.
            raise XLMRDSError(f"{self.datasets[language].prefix}.bin: token id {int(body.max())} (tokens {int(start)}.."
                              f"{int(start) + int(count)}) is not below the tokenizer's vocabulary size "
                              f"{self.vocab_size}: the dataset does not match its tokenizer; binarize it again")
        return np.concatenate([[BOS_ID], body, [EOS_ID] if append_eos else []]).astype(np.int64)

    def train_sample(self, sample_index: int, masked: bool = True) -> dict:
        """Sample `sample_index` of the global order, masked; with masked=False the plain tokens and no
        labels, for a trainer that masks on the device (kernels.mlm_mask gives the same result)."""
        phase = self.plan.phase_of_sample(sample_index)
        language_index, block_index = self.phase_orders[phase.index][sample_index - phase.first_sample]
        tokens = self.block_tokens(self.languages[language_index], 0, block_index, phase.block_size)
        if masked:
            input_ids, labels = mask_tokens(tokens, self.phase_masking[phase.index], self.config.seed, sample_index)
        else:
            input_ids, labels = tokens, np.full_like(tokens, IGNORE_INDEX)
        return {"input_ids": input_ids, "labels": labels, "language": language_index, "sample_index": sample_index}

    def validation_samples(self, language: str, limit: int | None = None) -> Iterator[dict]:
        """The language's held-out blocks in order, masked deterministically (keyed by block index)."""
        count = len(self.blocks[language][1]) if limit is None else min(limit, len(self.blocks[language][1]))
        language_index = self.languages.index(language)
        # Masks keyed apart from the training stream: (a per-language seed, block index).
        validation_seed = stable_seed(self.config.seed, "validation-masks", language)
        for block_index in range(count):
            tokens = self.block_tokens(language, 1, block_index)
            input_ids, labels = mask_tokens(tokens, self.masking, validation_seed, block_index)
            yield {"input_ids": input_ids, "labels": labels, "language": language_index, "sample_index": block_index}


def collate(samples: list[dict]) -> dict[str, torch.Tensor]:
    """Pad to the longest sample of the batch: <pad> ids, attention_mask 0, labels -100."""
    length = max(len(s["input_ids"]) for s in samples)
    input_ids = np.full((len(samples), length), PAD_ID, dtype=np.int64)
    labels = np.full((len(samples), length), IGNORE_INDEX, dtype=np.int64)
    attention_mask = np.zeros((len(samples), length), dtype=np.int64)
    for row, sample in enumerate(samples):
        n = len(sample["input_ids"])
        input_ids[row, :n], labels[row, :n], attention_mask[row, :n] = sample["input_ids"], sample["labels"], 1
    return {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention_mask),
        "labels": torch.from_numpy(labels),
        "language": torch.tensor([s["language"] for s in samples]),
        "sample_index": torch.tensor([s["sample_index"] for s in samples]),
    }


class TrainSamples(Dataset):
    """Map-style view: global sample index -> sample (masked unless the device masks)."""

    def __init__(self, data: PretrainingData, masked: bool = True):
        self.data = data
        self.masked = masked

    def __getitem__(self, sample_index: int) -> dict:
        return self.data.train_sample(sample_index, self.masked)


class ConstantBatches:
    """The step layout of a run whose global batch never changes (the lookups PhasePlan offers)."""

    def __init__(self, global_batch_size: int):
        self.global_batch_size = global_batch_size

    def batch_size(self, step: int) -> int:
        return self.global_batch_size

    def samples_before(self, step: int) -> int:
        return step * self.global_batch_size

    def step_at(self, consumed_samples: int) -> int:
        if consumed_samples % self.global_batch_size:
            raise XLMRDSError(f"consumed_samples={consumed_samples} is not at a global batch boundary "
                              f"(global batch {self.global_batch_size})")
        return consumed_samples // self.global_batch_size

    def batch_multiples(self) -> list[tuple[str, int]]:
        return [("global batch", self.global_batch_size)]


def step_layout(batches: int | PhasePlan) -> ConstantBatches | PhasePlan:
    return ConstantBatches(batches) if isinstance(batches, int) else batches


def check_batch_layout(layout: ConstantBatches | PhasePlan, micro_batch_size: int, world_size: int) -> None:
    """Refuse a global batch size that the processes cannot split into whole micro-batches."""
    source = getattr(getattr(layout, "recipe", None), "source", None)
    for where, value in layout.batch_multiples():
        if value % (micro_batch_size * world_size):
            what = f"{source}: {where}={value}" if source else f"global batch {value}"
            raise XLMRDSError(f"{what} is not a multiple of micro batch {micro_batch_size} x {world_size} "
                              f"data-parallel ranks; choose a global batch of micro x accumulation x ranks")


class DataParallelBatchSampler(Sampler[list[int]]):
    """This rank's micro-batches of global sample indices, from consumed_samples on, without end.

    `batches` is the global batch size, or a recipe's PhasePlan whose batch size may change from step to
    step: step s takes samples [samples_before(s), samples_before(s) + batch_size(s)), and rank r of W the
    r-th contiguous share of them.
    """

    def __init__(self, batches: int | PhasePlan, micro_batch_size: int, rank: int, world_size: int,
                 consumed_samples: int = 0):
        self.layout = step_layout(batches)
        check_batch_layout(self.layout, micro_batch_size, world_size)
        self.micro_batch_size, self.rank, self.world_size = micro_batch_size, rank, world_size
        self.first_step = self.layout.step_at(consumed_samples)

    def __iter__(self) -> Iterator[list[int]]:
        step = self.first_step
        while True:
            share = self.layout.batch_size(step) // self.world_size
            first = self.layout.samples_before(step) + self.rank * share
            for start in range(first, first + share, self.micro_batch_size):
                yield list(range(start, start + self.micro_batch_size))
            step += 1


def build_train_loader(data: PretrainingData, batches: int | PhasePlan, micro_batch_size: int, rank: int,
                       world_size: int, consumed_samples: int = 0, num_workers: int = 0,
                       pin_memory: bool = False, masked: bool = True) -> DataLoader:
    """A DataLoader over this rank's micro-batches; resume by passing the checkpoint's consumed_samples.

    masked=False leaves the masking to the consumer (a GPU trainer runs the MLM masking kernel on
    input_ids and sample_index): labels are then all -100.
    """
    sampler = DataParallelBatchSampler(batches, micro_batch_size, rank, world_size, consumed_samples)
    # A generator of its own: creating the iterator must not draw from the global torch RNG, which drives
    # dropout and is restored exactly on resume. (Samples and masks do not depend on it.)
    return DataLoader(TrainSamples(data, masked), batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                      pin_memory=pin_memory, persistent_workers=num_workers > 0,
                      generator=torch.Generator().manual_seed(data.config.seed))


class TrainLoader:
    """This rank's training micro-batches, and the position they start from: the samples of completed steps.

    The trainer calls `step_done()` after each optimizer step; the position is what a checkpoint stores
    (`state_dict`: consumed_samples and the seed the order belongs to), and a resumed run loads it before
    iterating. Workers may have prepared batches ahead of it: they are not part of the state. `batches` is
    the global batch size or the recipe's PhasePlan (see DataParallelBatchSampler).
    """

    def __init__(self, data: PretrainingData, batches: int | PhasePlan, micro_batch_size: int, rank: int,
                 world_size: int, num_workers: int = 0, pin_memory: bool = False, masked: bool = True):
        self.data = data
        self.batches, self.layout = batches, step_layout(batches)
        check_batch_layout(self.layout, micro_batch_size, world_size)
        self.micro_batch_size = micro_batch_size
        self.rank, self.world_size = rank, world_size
        self.num_workers, self.pin_memory, self.masked = num_workers, pin_memory, masked
        self.consumed_samples = 0

    def __iter__(self) -> Iterator[dict]:
        return iter(build_train_loader(self.data, self.batches, self.micro_batch_size, self.rank,
                                       self.world_size, self.consumed_samples, num_workers=self.num_workers,
                                       pin_memory=self.pin_memory, masked=self.masked))

    def step_done(self) -> None:
        self.consumed_samples += self.layout.batch_size(self.layout.step_at(self.consumed_samples))

    def state_dict(self) -> dict:
        return {"consumed_samples": self.consumed_samples, "seed": self.data.config.seed}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a checkpoint's position, refusing one written for another sample order (seed)."""
        if state["seed"] != self.data.config.seed:
            raise XLMRDSError(f"the checkpoint's data seed is {state['seed']} but --seed is {self.data.config.seed}; "
                              f"resume with --seed {state['seed']} to continue the same sample order")
        self.layout.step_at(int(state["consumed_samples"]))  # at the start of a step of this layout
        self.consumed_samples = int(state["consumed_samples"])
