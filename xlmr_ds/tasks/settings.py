"""The settings of one fine-tuning run (`xlmr-ds finetune`) and of one retrieval evaluation, one docstring per
field; the command line and a transfer task file (tasks/task_config.py) both build them. `xlmr-ds finetune`'s
flags take their defaults, help (the docstrings) and choices (the Literal types) from FinetuneSettings' fields,
and each class refuses wrong values itself (`__post_init__`) with the message the command line prints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, get_args

from xlmr_ds.errors import require_choice, require_minimum, require_within
from xlmr_ds.tasks.formats import TASKS, Task, TaskFile

SelectOn = Literal["source", "all"]
SELECT_ON = get_args(SelectOn)


@dataclass(frozen=True)
class FinetuneSettings:
    """Every setting of one fine-tuning run."""

    task: Task
    """What the files hold and how the model is scored on them; the same name in a task file."""

    model: str
    """A pretraining --save directory (its newest complete checkpoint, or `step`; or one step_* directory in it)
    or a Hugging Face directory with its tokenizer (sentencepiece.bpe.model or tokenizer.json); a classifier's
    encoder too (its head is replaced)."""

    train: tuple[TaskFile, ...]
    """Training files ([LANG=]FILE); several languages for translate-train-all. Their languages are the source
    languages: from LANG=, an XNLI language column, `lang:` token prefixes or the file's name."""

    test: tuple[TaskFile, ...]
    """One file per evaluated language (LANG=FILE); each gets its score in the results."""

    out: str
    """Where results.json/.csv/.md, metrics.jsonl and the fine-tuned model (model/, Hugging Face) go."""

    valid: tuple[TaskFile, ...] = ()
    """Development files ([LANG=]FILE), scored after every epoch to pick the epoch whose test scores are
    reported."""

    step: int | None = None
    """With a pretraining directory: the checkpoint's step (default: the newest complete one)."""

    deepspeed_config: str | None = None
    """DeepSpeed JSON config (optimizer, scheduler, ZeRO stage, precision); default ds_configs/finetune.json.
    --lr and --batch-size override its learning rate and batch size."""

    epochs: int = 3
    """Passes over the training examples."""

    lr: float = 2e-5
    """Peak learning rate (the optimizer's lr and the scheduler's warmup_max_lr)."""

    batch_size: int = 32
    """Examples per optimizer step, over all processes."""

    max_length: int = 128
    """Tokens per example, <s> and </s> included; longer ones are cut (encoding.py says how), except for
    question answering, where a longer context is read in overlapping windows (spans.py; 384 is usual)."""

    doc_stride: int = 128
    """Question answering: pieces that consecutive windows over a long context share (run_qa's doc_stride)."""

    seed: int = 42
    """Seed of the head's initialization, the example order and dropout."""

    select_on: SelectOn = "source"
    """Which dev sets pick the best epoch: those of the source languages, or all of them."""

    warmup_fraction: float = 0.1
    """Share of the steps with a rising learning rate when the config's warmup_num_steps is "auto", in [0, 1)."""

    eval_batch_size: int = 64
    """Examples per forward pass when scoring."""

    def __post_init__(self):
        require_choice("--task", self.task, TASKS)
        for name in ("epochs", "batch_size", "max_length", "doc_stride", "eval_batch_size"):
            require_minimum(_flag(name), getattr(self, name), 1)
        require_minimum("--lr", self.lr, 0, strict=True)
        require_within("--warmup-fraction", self.warmup_fraction, "[0, 1)")
        require_choice("--select-on", self.select_on, SELECT_ON)

    def replace(self, **changes) -> FinetuneSettings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        for name in ("train", "valid", "test"):
            values[name] = [f"{f.language}={f.path}" if f.language else str(f.path) for f in getattr(self, name)]
        return values


@dataclass(frozen=True)
class RetrievalPair:
    """One language pair of parallel sentences: line i of `source` translates line i of `target`."""

    language: str
    """The name the pair's scores are reported under (LANG of LANG=SRC:TGT)."""

    source: str
    """A file of sentences, one per line."""

    target: str
    """The other side: as many lines as `source`, each translating the same line of it."""


@dataclass(frozen=True)
class RetrievalSettings:
    """Every setting of one retrieval evaluation."""

    model: str
    """A pretraining --save directory (or one step_* directory) or a Hugging Face directory."""

    pairs: tuple[RetrievalPair, ...]
    """The parallel files, one entry per language (LANG=SRC:TGT)."""

    out: str | None = None
    """Where results.json/.csv/.md go; None: the terminal only."""

    layer: int | None = None
    """Hidden states after this many blocks (0: the embeddings); default the middle one, as XTREME."""

    step: int | None = None
    """With a pretraining directory: the checkpoint's step (default: the newest complete one)."""

    max_length: int = 128
    """Tokens per sentence, <s> and </s> included."""

    batch_size: int = 64
    """Sentences per forward pass."""

    def __post_init__(self):
        require_minimum("--max-length", self.max_length, 1)
        require_minimum("--batch-size", self.batch_size, 1)


def _flag(field: str) -> str:
    """The command line's name of a field: --max-length for max_length."""
    return f"--{field.replace('_', '-')}"
