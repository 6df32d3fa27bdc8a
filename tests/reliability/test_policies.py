"""The decisions behind the fault tests, row by row: the non-finite-loss policy and the progress watchdog.

fp16 rows matter here most: DeepSpeed's CPU accelerator has no fp16 on this machine (mkldnn fp16 is missing),
so the loss-scaler path is checked as a decision, not as a run.
"""

import re
import subprocess
import sys
import time

import pytest

from xlmr_ds.engine.guards.nonfinite import Outcome, check_supported, decide
from xlmr_ds.errors import XLMRDSError

DECISIONS = [
    # policy, a rank saw a non-finite loss, DeepSpeed applied the step, fp16 -> outcome
    ("stop", False, True, False, Outcome.APPLIED),
    ("skip", False, True, True, Outcome.APPLIED),
    ("stop", True, False, False, Outcome.STOP),
    ("skip", True, False, False, Outcome.SKIPPED),
    ("stop", False, False, False, Outcome.STOP),      # finite loss, non-finite gradients (skipped by DeepSpeed)
    ("skip", False, False, False, Outcome.SKIPPED),
    ("stop", True, False, True, Outcome.SKIPPED),     # fp16: the loss scaler's business, whatever the policy
    ("stop", False, False, True, Outcome.SKIPPED),    # fp16 overflow in backward
    ("skip", True, True, False, Outcome.CORRUPTED),   # never trusted, whatever the policy
    ("stop", True, True, True, Outcome.CORRUPTED),
]


@pytest.mark.parametrize("policy,nonfinite,applied,fp16,outcome", DECISIONS)
def test_the_outcome_of_a_step(policy, nonfinite, applied, fp16, outcome):
    assert decide(policy, nonfinite, applied, fp16) is outcome


SUPPORT = [
    ({"zero_optimization": {"stage": 2}}, 2, None),
    ({"fp16": {"enabled": True}}, 0, None),
    ({"bf16": {"enabled": True}}, 3, None),  # DeepSpeed checks bf16 gradients unless told not to
    ({}, 0, "without ZeRO (stage 0) and without fp16 DeepSpeed does not check gradients"),
    ({"bf16": {"enabled": True, "check_grad_overflow": False}}, 2, "bf16.check_grad_overflow is false"),
]


@pytest.mark.parametrize("config,stage,refusal", SUPPORT)
def test_skip_is_refused_where_deepspeed_would_apply_nan_gradients(config, stage, refusal):
    if refusal is None:
        check_supported("skip", config, stage, "ds.json")
    else:
        with pytest.raises(XLMRDSError, match=re.escape(refusal)):
            check_supported("skip", config, stage, "ds.json")


WATCHED = """
import sys, time
from xlmr_ds.engine.guards.watchdog import ProgressWatchdog
dog = ProgressWatchdog(0.5, rank=1, world_size=2)
for _ in range(int(sys.argv[1])):
    time.sleep(0.2)
    dog.beat("step 7")
time.sleep(float(sys.argv[2]))
dog.stop()
print("finished")
"""


@pytest.mark.parametrize("beats,then_idle,ends_by_watchdog", [(10, 0.0, False), (3, 5.0, True)])
def test_the_watchdog_ends_only_a_process_without_progress(beats, then_idle, ends_by_watchdog):
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", WATCHED, str(beats), str(then_idle)], capture_output=True,
                            text=True, timeout=60)
    if ends_by_watchdog:
        assert result.returncode == 124 and "finished" not in result.stdout
        assert re.match(r"\[rank 1\] xlmr-ds train: error: no progress for \d+\.\d s during step 7 \(limit 0\.5 s, "
                        r"--dist-timeout-minutes\): another process of the job has probably died or hangs", result.stderr)
        assert time.monotonic() - started < 5.0  # it did not wait for the 5 s of idleness to end
    else:  # 2 s of work with a beat every 0.2 s: never 0.5 s without progress
        assert result.returncode == 0 and result.stdout == "finished\n", result.stderr
