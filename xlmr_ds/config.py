"""The settings of a training run, as one typed config.

`RunConfig` is built from the command line in one place (cli/train.py), handed to the trainer whole, and
saved in every checkpoint's marker, so that a resumed run says which settings changed. Each group is a
frozen dataclass with a docstring per field, and each default is written once, here or in the config of the
part it belongs to (DataConfig for the data, XLMRConfig presets for the model). The train command's flags take
their defaults, help (the docstrings) and choices (the Literal types) from these fields.

Each group refuses values that are wrong on their own or together in `__post_init__`, with the one-line
message the command line prints (naming the flags), so that a RunConfig built in Python is held to the same
rules as one built from flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, get_args

from xlmr_ds.dataset.config import DataConfig
from xlmr_ds.errors import XLMRDSError, require_choice, require_minimum
from xlmr_ds.model.architectures import (
    ALL_ARCHITECTURES,
    DESCRIPTIONS,
    ModelConfig,
    architecture_of,
    preset_config,
    preset_names,
    read_config_file,
)

NonfiniteLossPolicy = Literal["stop", "skip"]
NONFINITE_POLICIES = get_args(NonfiniteLossPolicy)
DropoutKeys = Literal["sample", "rank"]
DROPOUT_KEYS = get_args(DropoutKeys)


@dataclass(frozen=True)
class ModelSettings:
    """Which model is trained, and how it runs."""

    preset: str | None = "tiny"
    """A named model shape (xlmr_ds.model.architectures: XLM-R's and ModernBERT's presets); its vocabulary (and a
    ModernBERT's special ids) are replaced by the dataset's. Not given (None) with `init_from`: the directory's
    shape."""

    config_file: str | None = None
    """A JSON file of a model config's fields (its "architecture" key picks XLM-R's or ModernBERT's), used
    instead of the preset."""

    init_from: str | None = None
    """A Hugging Face directory whose weights and whole config (shape, LayerNorm epsilon, dropout) the run starts
    from (with a fresh optimizer); a `preset` or `config_file` given too must agree with it."""

    activation_checkpointing: bool = False
    """Recompute each block in backward instead of keeping its activations."""

    dropout_keys: DropoutKeys = "sample"
    """"sample": every dropout mask is a function of (seed, global sample index, site), so the same run on any
    number of processes sees the same masks (kernels/keyed_dropout.py); "rank": each process draws from its
    own RNG stream, so masks depend on the number of processes (the same speed on CPU for the tiny model; on a
    GPU see benchmarks/GPU.md)."""

    def __post_init__(self):
        if not (self.preset or self.config_file or self.init_from):
            raise XLMRDSError("no model shape: give --model, --model-config or --init-from")
        if self.preset is not None:
            require_choice("--model", self.preset, tuple(preset_names(ALL_ARCHITECTURES)))
        require_choice("--dropout-keys", self.dropout_keys, DROPOUT_KEYS)

    def shape(self) -> ModelConfig:
        """The model's configuration before the dataset's vocabulary size is put in: init_from's config.json when
        there is one, else the config file's or the preset's."""
        given = None
        if self.config_file:
            given = read_config_file(self.config_file)
        elif self.preset:
            given = preset_config(self.preset)
        if not self.init_from:
            return given  # not None: __post_init__ refuses settings without a shape
        from xlmr_ds.model.hf import read_hf_config
        from xlmr_ds.model.modern_hf import is_modern_hf, read_modern_hf_config

        theirs = read_modern_hf_config(self.init_from) if is_modern_hf(self.init_from) else \
            read_hf_config(self.init_from)
        if given is not None:
            self._check_agrees(given, theirs)
        return theirs

    def _check_agrees(self, given: ModelConfig, theirs: ModelConfig) -> None:
        """A shape given beside init_from must be the directory's; the vocabulary is the dataset's in either."""
        flag = f"--model-config {self.config_file}" if self.config_file else f"--model {self.preset}"
        if architecture_of(given) != architecture_of(theirs):
            theirs_kind, given_kind = DESCRIPTIONS[architecture_of(theirs)], DESCRIPTIONS[architecture_of(given)]
            raise XLMRDSError(f"--init-from {self.init_from}: its config.json is a {theirs_kind} model and {flag} a "
                              f"{given_kind} one; leave {flag.split()[0]} out to train the directory's model")
        fields = [f.name for f in dataclasses.fields(type(given)) if f.name != "vocab_size"]
        differs = [f"{name} {getattr(theirs, name)} vs {getattr(given, name)}" for name in fields
                   if getattr(theirs, name) != getattr(given, name)]
        if differs:
            raise XLMRDSError(f"--init-from {self.init_from}: its config.json disagrees with {flag}: "
                              f"{', '.join(differs)} (config.json vs {flag.split()[0]}); leave {flag.split()[0]} out "
                              f"to train the directory's shape")


@dataclass(frozen=True)
class OptimizationSettings:
    """How long and with what the run optimizes."""

    deepspeed_config: str
    """The DeepSpeed JSON config: optimizer, learning-rate schedule, precision, ZeRO stage, batch sizes."""

    steps: int | None
    """Optimizer steps to reach; also the length of a schedule whose total_num_steps is "auto". Required
    without a `recipe`; with one, not given (None) means the recipe's length, and a number must equal it."""

    exit_at_step: int | None = None
    """Save and exit once this step is done (a time-limited job); `steps` still sets the schedule, so a
    later run continues the same learning-rate curve."""

    def __post_init__(self):
        for name, value in (("--steps", self.steps), ("--exit-at-step", self.exit_at_step)):
            if value is not None:
                require_minimum(name, value, 1)


@dataclass(frozen=True)
class CheckpointSettings:
    """Where and when the run saves, and what it resumes from."""

    save_dir: str | None = None
    """Checkpoints, metrics.jsonl and monitor output; without it nothing is saved."""

    save_every: int = 0
    """Save every this many steps (0: only at the end, and when stopped)."""

    keep: int = 0
    """Keep the newest this many complete checkpoints (0: keep all)."""

    resume: str = "auto"
    """"auto": the newest complete checkpoint in `save_dir`; "none": start afresh; or a checkpoint directory."""

    branch_from: str | None = None
    """A checkpoint of another run (DIR/step_NNNNNNNN) that this run, in its own `save_dir`, starts from:
    model, optimizer and data position, usually with a recipe whose later phases differ (a decay branch). The
    other run's directory is only read; once the branch has checkpoints of its own it resumes from those."""

    def __post_init__(self):
        require_minimum("--save-every", self.save_every, 0)
        require_minimum("--keep", self.keep, 0)
        if self.branch_from and not self.save_dir:
            raise XLMRDSError("--branch-from needs --save: a branch is a run of its own, in a directory of its own")
        if self.branch_from and self.resume != "auto":
            raise XLMRDSError(f"--branch-from and --resume {self.resume} both say where to start; give one")


@dataclass(frozen=True)
class LoggingSettings:
    """What the run measures and writes down besides checkpoints."""

    metrics_file: str | None = None
    """Where metrics.jsonl goes (default: `save_dir`/metrics.jsonl; this allows metrics without `save_dir`)."""

    eval_every: int = 0
    """Per-language validation every this many steps, and before the first one (0: never)."""

    eval_samples: int = 32
    """Held-out blocks per language in each validation."""

    probe_languages: tuple[str, ...] = ()
    """Languages whose held-out fill-mask probe (one whole word masked in a held-out block) is asked at every
    validation (none given: the 4 with the most tokens)."""

    peak_tflops: float | None = None
    """The device's peak TFLOP/s for MFU (default: from the GPU's name; none on a CPU)."""

    def __post_init__(self):
        require_minimum("--eval-every", self.eval_every, 0)
        require_minimum("--eval-samples", self.eval_samples, 1)
        object.__setattr__(self, "probe_languages", tuple(self.probe_languages))  # argparse gives a list
        if self.peak_tflops is not None:
            require_minimum("--peak-tflops", self.peak_tflops, 0, strict=True)


@dataclass(frozen=True)
class PolicySettings:
    """What the run does when something goes wrong."""

    dist_timeout_minutes: float = 30.0
    """Minutes without progress (a collective waiting on a dead or hung peer) after which a process exits, so
    that the job ends instead of hanging; fractions allowed."""

    nonfinite_loss: NonfiniteLossPolicy = "stop"
    """What a NaN/inf loss does: "stop" the job naming the step, or "skip" the step and count it in the
    metrics. The model is never updated from it (with fp16 the loss scaler skips)."""

    def __post_init__(self):
        require_minimum("--dist-timeout-minutes", self.dist_timeout_minutes, 0, strict=True)
        require_choice("--nonfinite-loss", self.nonfinite_loss, NONFINITE_POLICIES)


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one training run."""

    data: DataConfig
    """The dataset and what fixes the sample order and masks; its seed also seeds weights and dropout."""

    optimization: OptimizationSettings
    """The DeepSpeed config and how many steps."""

    model: ModelSettings = field(default_factory=ModelSettings)
    """The model's shape and start, and how it runs."""

    checkpointing: CheckpointSettings = field(default_factory=CheckpointSettings)
    """Where and when to save, and what to resume from."""

    logging: LoggingSettings = field(default_factory=LoggingSettings)
    """Metrics, validation and MFU."""

    policies: PolicySettings = field(default_factory=PolicySettings)
    """Timeouts and the non-finite-loss policy."""

    loader_workers: int | None = None
    """DataLoader worker processes (default: 2 on a GPU, so that batches are ready before the step needs
    them; 0 on a CPU, where the cores are the model's)."""

    def __post_init__(self):
        # The one rule across groups; each group checks its own fields.
        if self.optimization.steps is None and self.data.recipe is None:
            raise XLMRDSError("--steps is required (or a --recipe, whose phases give the run's length)")
        if self.loader_workers is not None:
            require_minimum("--num-workers", self.loader_workers, 0)

    @property
    def seed(self) -> int:
        return self.data.seed

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def changes_since(self, saved: dict) -> list[str]:
        """'group.field: old -> new' for every setting that differs from `saved` (a to_dict() of an earlier run)."""
        return _differences(saved, self.to_dict())


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    changes = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if isinstance(before, (list, tuple)) and isinstance(after, (list, tuple)):
            before, after = list(before), list(after)  # JSON has no tuples: a saved tuple reads back as a list
        if isinstance(before, dict) and isinstance(after, dict):
            changes += _differences(before, after, f"{prefix}{key}.")
        elif before != after:
            changes.append(f"{prefix}{key}: {before!r} -> {after!r}")
    return changes
