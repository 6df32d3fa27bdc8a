"""Checkpoints that are complete or ignored, never half-trusted: one manager writes and reads a run's state.

Layout of a run's --save DIR:

    DIR/step_00000100/                 one checkpoint, named by its step
        mp_rank_00_model_states.pt ...  DeepSpeed's files (weights, optimizer, scheduler), save_latest=False
        xlmr_ds_checkpoint.json         the marker: everything else of the run's state, written by rank 0 after
                                        a barrier, last (temporary name, then rename)
        universal/                      DeepSpeed's universal form, made when resuming on another world size

The marker is one JSON object (format_version 2):

    format_version  2
    step            the optimizer steps done; the directory's name says the same
    world_size      processes that wrote it; zero_stage: the ZeRO stage; ds_config_hash: of the DeepSpeed
                    config used (batch sizes resolved)
    model_config    the XLMRConfig fields (another model is refused on resume)
    tokenizer       the dataset's tokenizer record (file, source, sha256, pieces, vocab_size) and the resolved
                    path of its model file (export copies it)
    run_config      the run's settings (xlmr_ds/config.py), compared with the next run's on resume
    state           {name: state_dict()} of each object the manager tracks, as saved by rank 0 (the loader's
                    position under "data": consumed_samples and the seed of the sample order)
    rng             one entry per rank, in rank order: {"torch": base64 of torch.get_rng_state(), "cuda": ...
                    when a GPU is used}; the dropout streams
    versions        xlmr_ds, deepspeed and torch versions
    files           {file name: size} of every other file of the checkpoint

DeepSpeed's `latest` file is never written nor read: it can name a partial save. A checkpoint is used only
when its marker is there and every file the marker lists is there with its size: a save that died leaves no
marker (ignored, and said so), a file lost or cut short later is named before DeepSpeed would fail on it
with a traceback. DeepSpeed's client_state is not used: the marker holds the state once.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model.architectures import DESCRIPTIONS, XLMR
from xlmr_ds.outputs import temporary_path, write_json_atomically

MARKER = "xlmr_ds_checkpoint.json"
MARKER_FORMAT_VERSION = 2
UNIVERSAL = "universal"
_TAG = re.compile(r"^step_(\d{8,})$")


class Stateful(Protocol):
    """What the manager saves besides DeepSpeed's engine: an object whose state is the same on every rank."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def tag_for(step: int) -> str:
    return f"step_{step:08d}"


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    step: int
    marker: dict | None

    @property
    def complete(self) -> bool:
        return self.marker is not None


def read_marker(path: Path) -> dict | None:
    marker = path / MARKER
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text())
    except json.JSONDecodeError:
        return None


def list_checkpoints(save_dir: str | Path) -> list[CheckpointInfo]:
    """Every step_* directory in save_dir, oldest first, complete or not."""
    save_dir = Path(save_dir)
    if not save_dir.is_dir():
        return []
    found = []
    for child in save_dir.iterdir():
        match = _TAG.match(child.name)
        if match and child.is_dir():
            found.append(CheckpointInfo(child, int(match.group(1)), read_marker(child)))
    return sorted(found, key=lambda info: info.step)


def complete_checkpoints(save_dir: str | Path | None) -> list[CheckpointInfo]:
    """The checkpoints of save_dir that have their marker, oldest first (none without a directory)."""
    return [info for info in list_checkpoints(save_dir) if info.complete] if save_dir is not None else []


def newest_complete(save_dir: str | Path | None) -> Path | None:
    complete = complete_checkpoints(save_dir)
    return complete[-1].path if complete else None


def resolve_resume(resume: str, save_dir: str | Path | None) -> tuple[CheckpointInfo | None, list[CheckpointInfo]]:
    """(the checkpoint to resume from or None, incomplete checkpoints newer than it that are ignored)."""
    if resume == "none":
        return None, []
    if resume == "auto":
        if save_dir is None:
            return None, []
        complete = complete_checkpoints(save_dir)
        newest = complete[-1] if complete else None
        ignored = [c for c in list_checkpoints(save_dir)
                   if not c.complete and (newest is None or c.step > newest.step)]
        return newest, ignored
    path = Path(resume)
    match = _TAG.match(path.name)
    if not path.is_dir() or not match:
        raise XLMRDSError(f"--resume {resume}: not a checkpoint directory (expected DIR/step_NNNNNNNN)")
    info = CheckpointInfo(path, int(match.group(1)), read_marker(path))
    if not info.complete:
        raise XLMRDSError(f"--resume {resume}: the checkpoint has no {MARKER}: its save did not finish; "
                          f"use an older checkpoint (xlmr-ds ckpt list {path.parent})")
    return info, []


def check_compatible(info: CheckpointInfo, model_config: dict, stage: int) -> None:
    """Refuse a checkpoint of another marker format, model or ZeRO stage, saying what differs."""
    saved = info.marker
    if saved.get("format_version") != MARKER_FORMAT_VERSION:
        raise XLMRDSError(f"{info.path}: its {MARKER} has format {saved.get('format_version', 1)}, this xlmr-ds reads "
                          f"format {MARKER_FORMAT_VERSION}; resume it with the xlmr-ds version that wrote it")
    saved_kind, run_kind = (DESCRIPTIONS[config.get("architecture", XLMR)] for config in (saved["model_config"],
                                                                                      model_config))
    if saved_kind != run_kind:
        raise XLMRDSError(f"{info.path}: saved for a model of the {saved_kind} architecture, and this run trains a "
                          f"{run_kind} one; resume it with the model it was trained with, or start a new --save")
    if saved["model_config"] != model_config:
        differences = [f"{key} {saved['model_config'].get(key)} vs {model_config.get(key)}"
                       for key in sorted(set(saved["model_config"]) | set(model_config))
                       if saved["model_config"].get(key) != model_config.get(key)]
        raise XLMRDSError(f"{info.path}: saved for another model ({', '.join(differences[:4])}; checkpoint vs this "
                          f"run); use the same --model and data")
    if saved["zero_stage"] != stage:
        raise XLMRDSError(f"{info.path}: saved with ZeRO stage {saved['zero_stage']} but the config uses stage "
                          f"{stage}; DeepSpeed cannot change the stage of a checkpoint: use a "
                          f"stage-{saved['zero_stage']} config")


def verify_files(info: CheckpointInfo) -> None:
    """Every file the marker lists exists with its recorded size."""
    for name, size in sorted(info.marker.get("files", {}).items()):
        path = info.path / name
        if not path.is_file():
            raise XLMRDSError(f"{path}: missing from this checkpoint (its marker lists it); restore the file or "
                              f"resume from another checkpoint (xlmr-ds ckpt list {info.path.parent})")
        if path.stat().st_size != size:
            raise XLMRDSError(f"{path}: {path.stat().st_size} bytes, but {size} were saved: the file is damaged; "
                              f"restore it or resume from another checkpoint (xlmr-ds ckpt list {info.path.parent})")


def list_files(checkpoint_dir: Path) -> dict[str, int]:
    """{file name: size} of a checkpoint's own files, for its marker (not the marker, temporaries or universal/)."""
    return {p.name: p.stat().st_size for p in sorted(checkpoint_dir.iterdir())
            if p.is_file() and p.name != MARKER and not p.name.startswith(".")}


def remove_checkpoint(checkpoint_dir: Path) -> None:
    """Delete a checkpoint directory, its marker first: an interrupted deletion leaves an incomplete checkpoint
    (ignored), never a complete-looking one with files missing."""
    (checkpoint_dir / MARKER).unlink(missing_ok=True)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)


def is_write_error(error: RuntimeError) -> bool:
    """torch.save reports a failed write (ENOSPC included) as a RuntimeError from its zip writer, without errno."""
    text = str(error)
    return any(words in text for words in ("PytorchStreamWriter", "inline_container", "iostream error",
                                           "file write failed"))


def save_failure_message(error: BaseException, checkpoint_dir: Path, newest_complete: Path | None) -> str:
    """One line for a save that failed: the cause (a full disk named as such, whatever the library said) and
    what is still there."""
    try:
        free = shutil.disk_usage(checkpoint_dir.parent).free
    except OSError:
        free = None
    # torch.save says only "file write failed"; a write that ran out of space fills the disk to the last block.
    out_of_space = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
    if out_of_space or (free is not None and free < 1 << 20):
        cause = (f"no space left on the device of {checkpoint_dir.parent}; free space there or point --save at "
                 f"a larger disk")
    else:
        detail = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        cause = f"{type(error).__name__}: {detail}"
    kept = (f"the newest complete checkpoint, {newest_complete}, is intact and --resume auto uses it"
            if newest_complete else "no earlier complete checkpoint exists")
    return f"saving checkpoint {checkpoint_dir} failed: {cause}; {kept}"


def write_marker(checkpoint_dir: Path, marker: dict) -> None:
    """The marker appears whole or not at all: a checkpoint is never complete with half a marker."""
    write_json_atomically(checkpoint_dir / MARKER, marker, indent=2)


def prune(save_dir: Path, keep: int) -> list[Path]:
    """Delete complete checkpoints beyond the newest `keep` (called only after a newer one is complete)."""
    removed = []
    for info in complete_checkpoints(save_dir)[:-keep] if keep > 0 else []:
        remove_checkpoint(info.path)
        removed.append(info.path)
    return removed


def convert_to_universal(info: CheckpointInfo) -> Path:
    """DeepSpeed's universal checkpoint of `info` (made once, in info.path/universal), for another world size."""
    target = info.path / UNIVERSAL
    done = target / ".complete"
    if done.exists():
        return target
    staging = temporary_path(target)
    shutil.rmtree(staging, ignore_errors=True)
    command = [sys.executable, "-m", "deepspeed.checkpoint.ds_to_universal", "--input_folder", str(info.path),
               "--output_folder", str(staging), "--inject_missing_state", "--num_extract_workers", "1",
               "--num_merge_workers", "1"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise XLMRDSError(f"{info.path}: conversion to a universal checkpoint failed: {tail}")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    done.touch()
    return target


def rng_state() -> dict[str, str]:
    """This process's torch RNG states (the dropout streams), base64-encoded for the marker."""
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()
    return {name: base64.b64encode(state.numpy().tobytes()).decode("ascii") for name, state in states.items()}


def restore_rng_state(state: dict[str, str]) -> None:
    decoded = {name: torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)
               for name, text in state.items()}
    torch.set_rng_state(decoded["torch"])
    if "cuda" in decoded and torch.cuda.is_available():
        torch.cuda.set_rng_state(decoded["cuda"])


class CheckpointManager:
    """Saves and loads one run's checkpoints: DeepSpeed's engine, every rank's RNG state, and the tracked
    objects' states, all in one checkpoint directory that is complete once its marker is there.

    `states` are the objects whose state_dict is the same on every rank (rank 0's is written); `meta` is what
    the marker records about the run (model_config, tokenizer, run_config, zero_stage, ...). All ranks call
    save() and load() together: they contain collectives, the `runtime`'s (engine/runtime.py), which also hears
    a beat around the long parts (its progress watchdog); `log` prints on rank 0.
    """

    def __init__(self, save_dir: Path | None, engine, states: dict[str, Stateful], meta: dict, runtime,
                 log: Callable[[str], None]):
        self.save_dir, self.engine, self.states, self.meta = save_dir, engine, states, meta
        self.runtime = runtime
        self.rank, self.world_size = runtime.rank, runtime.world_size
        self.log, self.beat = log, runtime.beat

    def save(self, step: int, keep: int) -> Path:
        tag = tag_for(step)
        target = self.save_dir / tag
        self.beat(f"saving {tag}")
        newest = newest_complete(self.save_dir)
        if self.rank == 0 and target.exists():
            # The leftovers of a save that died, or a checkpoint of this step from a history that was resumed
            # from an earlier step: either way it is replaced, its marker removed first.
            if (target / MARKER).exists():
                self.log(f"replacing {target}: this run resumed from an earlier step")
            remove_checkpoint(target)
        self.runtime.barrier()
        try:
            self.engine.save_checkpoint(str(self.save_dir), tag=tag, save_latest=False)
        except (OSError, RuntimeError) as error:
            self._save_failed(error, target, newest)
        self._commit(target, step, newest)
        if self.rank == 0:
            for removed in prune(self.save_dir, keep):
                self.log(f"removed old checkpoint {removed}")
        self.runtime.barrier()
        self.log(f"saved {target}")
        return target

    def _commit(self, target: Path, step: int, newest: Path | None) -> None:
        """Every rank has written its files: rank 0 writes the marker, which makes the checkpoint complete."""
        rng = self.runtime.gather_objects(rng_state())
        self.beat(f"saving {target.name}")
        self.runtime.barrier()
        if self.rank != 0:
            return
        marker = {"format_version": MARKER_FORMAT_VERSION, "step": step, "world_size": self.world_size,
                  **self.meta, "state": {name: obj.state_dict() for name, obj in self.states.items()},
                  "rng": rng, "files": list_files(target)}
        try:
            write_marker(target, marker)
        except OSError as error:
            self._save_failed(error, target, newest)

    def _save_failed(self, error: BaseException, target: Path, newest: Path | None) -> None:
        """A write error (a full disk, a lost mount) becomes one line. The partial checkpoint stays until the next
        start removes it: deleting it now would free the space and hide from the other ranks why their writes
        failed. Other errors are bugs and keep their traceback."""
        if isinstance(error, RuntimeError) and not is_write_error(error):
            raise error
        raise XLMRDSError(save_failure_message(error, target, newest)) from None

    def load(self, info: CheckpointInfo, universal: bool) -> int:
        """Restore everything from `info` (through its universal form when `universal`); returns its step.

        RNG states are restored only on the world size that saved them; on another one the caller seeds
        the new ranks' streams (there is no rank r of the old run to continue)."""
        load_dir, tag = (info.path, UNIVERSAL) if universal else (info.path.parent, info.path.name)
        path, _ = self.engine.load_checkpoint(str(load_dir), tag=tag, load_optimizer_states=True,
                                              load_lr_scheduler_states=True)
        if path is None:
            raise XLMRDSError(f"{info.path}: DeepSpeed could not load this checkpoint (files missing?)")
        marker = info.marker
        for name, obj in self.states.items():
            obj.load_state_dict(marker["state"][name])
        if not universal:
            restore_rng_state(marker["rng"][self.rank])
        return marker["step"]

