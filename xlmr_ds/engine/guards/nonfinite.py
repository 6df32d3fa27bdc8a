"""What a step with a NaN/inf loss does: `--nonfinite-loss stop` (the default) or `skip`; never a corrupted model.

The mechanism is DeepSpeed's own: its ZeRO optimizers (fp32, and bf16 with bf16.check_grad_overflow, the
default) and its fp16 loss scaler discard a step whose gradient norm is not finite, without touching the
weights, the optimizer moments or the learning-rate schedule (engine.was_step_applied() is False and
engine.skipped_steps counts it). The trainer makes sure a non-finite loss always reaches that check: it
multiplies such a loss by NaN before backward, so every rank's gradients turn NaN together even where the
loss alone would have left them finite. What happens next is the policy's:

    fp16             the loss scaler's business: the step is skipped, the scale drops, training goes on
    skip             the step is skipped and counted (metrics: "skipped", "skipped_steps"), training goes on
    stop             the job ends with a message naming the step; nothing is saved after the last checkpoint

A step that DeepSpeed applied although some rank's loss was not finite would be a corrupted model: the job
stops (the configurations that allow it are refused up front by check_supported).
"""

from __future__ import annotations

from enum import Enum

import torch

from xlmr_ds.errors import XLMRDSError


class Outcome(Enum):
    APPLIED = "applied"
    SKIPPED = "skipped"
    STOP = "stop"
    CORRUPTED = "corrupted"


def check_supported(policy: str, ds_config: dict, stage: int, source: str) -> None:
    """Refuse a configuration in which DeepSpeed would apply a step with non-finite gradients."""
    fp16 = bool(ds_config.get("fp16", {}).get("enabled"))
    bf16 = ds_config.get("bf16", {})
    if bf16.get("enabled") and bf16.get("check_grad_overflow") is False:
        raise XLMRDSError(f"{source}: bf16.check_grad_overflow is false, so DeepSpeed would apply a step with NaN/inf "
                          f"gradients and corrupt the model; remove the key (it defaults to true)")
    if stage == 0 and not fp16:
        raise XLMRDSError(f"{source}: without ZeRO (stage 0) and without fp16 DeepSpeed does not check gradients for "
                          f"NaN/inf, so --nonfinite-loss {policy} cannot keep the model intact; use ZeRO stage 1, 2 "
                          f"or 3")


def poison_nonfinite(loss: torch.Tensor) -> torch.Tensor:
    """The loss, with a NaN factor if it is not finite: then this rank's gradients, and after the reduction
    every rank's gradient norm, are NaN, and DeepSpeed discards the step everywhere. A finite loss is
    multiplied by exactly 1.0, and nothing waits on the device for the test."""
    return loss * torch.where(torch.isfinite(loss.detach()), 1.0, float("nan")).to(loss.dtype)


def decide(policy: str, nonfinite_loss: bool, applied: bool, fp16: bool) -> Outcome:
    """The outcome of one optimizer step, from the all-reduced facts every rank shares."""
    if nonfinite_loss and applied:
        return Outcome.CORRUPTED
    if applied:
        return Outcome.APPLIED
    if fp16 or policy == "skip":
        return Outcome.SKIPPED
    return Outcome.STOP
