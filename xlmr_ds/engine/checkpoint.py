"""Checkpoints that are complete or ignored, never half-trusted.

Layout of --save DIR:
    DIR/step_00000100/                 one DeepSpeed checkpoint (its tag), saved with save_latest=False
        mp_rank_00_model_states.pt ...  DeepSpeed's files
        rng_rank00000.pt ...            each rank's torch RNG state (dropout), saved by that rank
        xlmr_ds_checkpoint.json         the completion marker, written by rank 0 after a barrier, last; it
                                        also lists every file of the checkpoint with its size
        universal/                      DeepSpeed's universal form, made when resuming on another world size
DeepSpeed's `latest` file is never written nor read: it can name a partial save.

A checkpoint is used only when its marker is there and every file the marker lists is there with its size:
a save that died leaves no marker (ignored, and said so), a file lost or cut short later is named before
DeepSpeed would fail on it with a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from xlmr_ds.errors import XLMRDSError

MARKER = "xlmr_ds_checkpoint.json"
UNIVERSAL = "universal"
_TAG = re.compile(r"^step_(\d{8,})$")


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


def resolve_resume(resume: str, save_dir: str | Path | None) -> tuple[CheckpointInfo | None, list[CheckpointInfo]]:
    """(the checkpoint to resume from or None, incomplete checkpoints newer than it that are ignored)."""
    if resume == "none":
        return None, []
    if resume == "auto":
        if save_dir is None:
            return None, []
        checkpoints = list_checkpoints(save_dir)
        complete = [c for c in checkpoints if c.complete]
        newest = complete[-1] if complete else None
        ignored = [c for c in checkpoints if not c.complete and (newest is None or c.step > newest.step)]
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
    """Refuse a checkpoint of another model or ZeRO stage, saying what differs."""
    saved = info.marker
    if saved["model_config"] != model_config:
        differences = [f"{key} {saved['model_config'].get(key)} vs {model_config.get(key)}"
                       for key in sorted(set(saved["model_config"]) | set(model_config))
                       if saved["model_config"].get(key) != model_config.get(key)]
        raise XLMRDSError(f"{info.path}: saved for another model ({', '.join(differences[:4])}; checkpoint vs this "
                          f"run); use the same --model and data")
    if saved["zero_stage"] != stage:
        raise XLMRDSError(f"{info.path}: saved with ZeRO stage {saved['zero_stage']} but the config uses stage {stage}; "
                          f"DeepSpeed cannot change the stage of a checkpoint: use a stage-{saved['zero_stage']} config")


def verify_files(info: CheckpointInfo) -> None:
    """Every file the marker lists exists with its recorded size (markers written before the list: no check)."""
    listed = info.marker.get("files")
    if listed is None:
        return
    for name, size in sorted(listed.items()):
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
    if (isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)) or (free is not None and free < 1 << 20):
        cause = (f"no space left on the device of {checkpoint_dir.parent}; free space there or point --save at "
                 f"a larger disk")
    else:
        detail = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        cause = f"{type(error).__name__}: {detail}"
    kept = (f"the newest complete checkpoint, {newest_complete}, is intact and --resume auto uses it"
            if newest_complete else "no earlier complete checkpoint exists")
    return f"saving checkpoint {checkpoint_dir} failed: {cause}; {kept}"


def rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def save_rng_state(checkpoint_dir: Path, rank: int) -> None:
    target = checkpoint_dir / f"rng_rank{rank:05d}.pt"
    tmp = target.with_suffix(".pt.tmp")
    torch.save(rng_state(), tmp)
    os.replace(tmp, target)


def restore_rng_state(checkpoint_dir: Path, rank: int) -> None:
    state = torch.load(checkpoint_dir / f"rng_rank{rank:05d}.pt", weights_only=True)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def write_marker(checkpoint_dir: Path, marker: dict) -> None:
    tmp = checkpoint_dir / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(marker, indent=2) + "\n")
    os.replace(tmp, checkpoint_dir / MARKER)


def prune(save_dir: Path, keep: int) -> list[Path]:
    """Delete complete checkpoints beyond the newest `keep` (called only after a newer one is complete)."""
    complete = [c for c in list_checkpoints(save_dir) if c.complete]
    removed = []
    for info in complete[:-keep] if keep > 0 else []:
        remove_checkpoint(info.path)
        removed.append(info.path)
    return removed


def convert_to_universal(info: CheckpointInfo) -> Path:
    """DeepSpeed's universal checkpoint of `info` (made once, in info.path/universal), for another world size."""
    target = info.path / UNIVERSAL
    done = target / ".complete"
    if done.exists():
        return target
    staging = info.path / f".{UNIVERSAL}.tmp"
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
