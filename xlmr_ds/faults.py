"""Fault injection for the reliability tests: make a process stall, die or see a NaN loss at a named point.

Test-only. Nothing happens unless the environment variable XLMR_DS_FAULT is set, so production runs pay one
dictionary lookup per call. A fault is `POINT:KEY:RANK:ACTION`; several are separated by commas. KEY (the
step, or the language for data points) and RANK may be `*`. The points are:

    step      start of optimizer step KEY (1-based), before its first micro-batch   (xlmr_ds/engine/trainer.py)
    loss      every micro-batch loss of step KEY                                    (xlmr_ds/engine/trainer.py)
    save      inside the save of step KEY: DeepSpeed's files and this rank's RNG state are written, the
              completion marker is not                                              (xlmr_ds/engine/trainer.py)
    binarize  after language KEY's dataset is renamed into place                    (xlmr_ds/data/binarize.py)
    index     after language KEY's block tables are written to the staging dir     (xlmr_ds/data/block_index.py)

Actions: `stall` (sleep until killed, as a hung process or node does), `kill` (SIGKILL this process),
`nan` (the loss becomes NaN; only at `loss`), `sleepS` (sleep S seconds, e.g. sleep2.5, then go on).
Example: XLMR_DS_FAULT=save:3:0:stall stalls rank 0 while it saves step 3.
"""

from __future__ import annotations

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
