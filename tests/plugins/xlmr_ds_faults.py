"""Fault injection for the reliability tests: make a process stall, die or see a NaN loss at a named point.

Loaded by sitecustomize.py when XLMR_DS_FAULT is set; `install` wraps the functions at those points, so
xlmr-ds itself has no fault code and no branch for it in the step. A fault is `POINT:KEY:RANK:ACTION`;
several are separated by commas. KEY (the step, or the language for data points) and RANK may be `*`:

    step      start of optimizer step KEY (1-based), before its first micro-batch   Trainer.train_step
    finetune-step  start of fine-tuning step KEY (1-based)                          FineTuner._train_step
    loss      every micro-batch loss of step KEY                                    Trainer.micro_batch_loss
    save      inside the save of step KEY: DeepSpeed's files are written, the
              completion marker is not                                              CheckpointManager._commit
    binarize  after language KEY's dataset is renamed into place                    binarize.binarize_language
    index     after language KEY's block tables are written to the staging dir     block_index.write_language_tables
    build     corpus build, KEY "identify": before pass 3 (LID and filters)          corpus_build._identify_and_filter

Actions: `stall` (sleep until killed, as a hung process or node does), `kill` (SIGKILL this process),
`nan` (the loss becomes NaN; only at `loss`), `sleepS` (sleep S seconds, e.g. sleep2.5, then go on).
Example: XLMR_DS_FAULT=save:3:0:stall stalls rank 0 while it saves step 3.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time

ENVIRONMENT_VARIABLE = "XLMR_DS_FAULT"


def _matching_action(point: str, key: str, rank: int) -> str | None:
    spec = os.environ.get(ENVIRONMENT_VARIABLE)
    if not spec:
        return None
    for fault in spec.split(","):
        parts = fault.strip().split(":")
        if len(parts) != 4:
            raise ValueError(f"{ENVIRONMENT_VARIABLE}={spec!r}: expected POINT:KEY:RANK:ACTION")
        name, want_key, want_rank, action = parts
        if name == point and want_key in ("*", key) and want_rank in ("*", str(rank)):
            return action
    return None


def fault_point(point: str, key: object, rank: int = 0) -> str | None:
    """Carry out the fault configured for (point, key, rank), if any; returns an action the caller performs
    itself ("nan"), else None."""
    action = _matching_action(point, str(key), rank)
    if action is None:
        return None
    print(f"[xlmr-ds fault] {point}:{key} rank {rank}: {action}", file=sys.stderr, flush=True)
    if action == "stall":
        while True:
            time.sleep(3600)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action.startswith("sleep"):
        time.sleep(float(action[len("sleep"):]))
        return None
    return action


def _before(owner, name: str, fault):
    """Wrap owner.name so that `fault(*args)` runs before it."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        fault(*args, **kwargs)
        return original(*args, **kwargs)
    setattr(owner, name, wrapped)


def _after(owner, name: str, fault):
    """Wrap owner.name so that `fault(result, *args)` runs after it and its value is returned."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        return fault(original(*args, **kwargs), *args, **kwargs)
    setattr(owner, name, wrapped)


def _nan_loss(loss, trainer, batch, sample_index):
    if fault_point("loss", trainer.step + 1, trainer.rank) == "nan":
        return loss * float("nan")
    return loss


def _after_language(result, source, segments, text_field, tokenizer, out_dir, tmp_dir, world, progress):
    fault_point("binarize", source.language, world.rank)
    return result


def install() -> None:
    from xlmr_ds.dataset import block_index
    from xlmr_ds.engine.checkpoint import CheckpointManager
    from xlmr_ds.engine.finetune import FineTuner
    from xlmr_ds.engine.trainer import Trainer
    from xlmr_ds.prep import binarize
    from xlmr_ds.prep.corpus import build as corpus_build
    from xlmr_ds.world import launcher_rank

    _before(Trainer, "train_step", lambda trainer, batches: fault_point("step", trainer.step + 1, trainer.rank))
    _after(Trainer, "micro_batch_loss", _nan_loss)
    _before(FineTuner, "_train_step", lambda tuner, engine, batch, step: fault_point("finetune-step", step, tuner.rank))
    _before(CheckpointManager, "_commit", lambda manager, target, step, newest: fault_point("save", step, manager.rank))
    _after(binarize, "binarize_language", _after_language)
    _before(corpus_build, "_identify_and_filter",
            lambda settings, identifier, tmp, rank, *rest: fault_point("build", "identify", rank))
    _after(block_index, "write_language_tables",
           lambda result, staging, data_dir, language, *rest: fault_point("index", language, launcher_rank()))
