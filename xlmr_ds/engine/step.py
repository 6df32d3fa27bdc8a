"""One optimizer step of masked-LM training on a DeepSpeed engine: the step `xlmr-ds train` runs, and the one
`xlmr-ds bench` times, for our model and for transformers' in the same harness.

For each of the step's micro-batches: the host batch goes to the device (non-blocking); on a GPU the masking
kernel masks it there (on the CPU the loader has masked it already: the two are bit-identical); the loss (ours
keys its dropout by sample), backward, DeepSpeed's step. The loss, the labelled positions and the micro-batches
with a non-finite loss are summed on the device; tokens and encoder FLOPs come from the host batch. One
all-reduce at the end carries them all, with the stop request: one host synchronization per step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from xlmr_ds.engine.guards.nonfinite import poison_nonfinite
from xlmr_ds.engine.runtime import Runtime
from xlmr_ds.estimate.flops import encoder_forward_flops, lm_head_forward_flops
from xlmr_ds.kernels import DropoutKeys, mlm_mask
from xlmr_ds.kernels.mlm_masking_reference import MaskingConfig
from xlmr_ds.model import XLMRConfig
from xlmr_ds.vocab import IGNORE_INDEX

LossOf = Callable[[object, dict, torch.Tensor], torch.Tensor]
"""(engine, the micro-batch on the device, its sample indices on the host) -> the loss."""


def keyed_loss(seed: int, keyed_dropout: bool) -> LossOf:
    """Our model's masked-LM loss; with `keyed_dropout` its dropout masks are keyed by (seed, sample, site), the
    same on any number of processes (kernels/keyed_dropout.py)."""
    def loss_of(engine, batch: dict, sample_index: torch.Tensor) -> torch.Tensor:
        keys = DropoutKeys(seed, sample_index) if keyed_dropout else None
        return engine(batch["input_ids"], batch["attention_mask"], labels=batch["labels"], dropout_keys=keys).loss
    return loss_of


@dataclass
class StepTotals:
    """What one optimizer step adds up over the processes: one all-reduce and one host synchronization per step
    (the values summed on the device stay there until then)."""

    loss: float
    """The sum over processes of each one's mean loss over its micro-batches."""

    labelled: float
    """Masked positions the LM head scored (its FLOPs are linear in them)."""

    nonfinite_ranks: float
    """The processes that saw a micro-batch loss that was not finite."""

    tokens: float
    """Real (non-padding) tokens."""

    encoder_flops: float
    """The encoder's FLOPs, forward and backward (estimate/flops.py)."""

    stop_requested: float
    """The processes that SIGTERM/SIGINT reached: any process's request stops every process at this step."""

    grad_norm: float | None
    """DeepSpeed's global gradient norm (the same on every process), None where DeepSpeed computes none."""

    @classmethod
    def reduce(cls, runtime: Runtime, on_device: torch.Tensor, tokens: float, encoder_flops: float,
               stop_requested: bool, grad_norm: torch.Tensor | float | None) -> StepTotals:
        """`on_device` holds (loss sum, labelled positions, micro-batches with a non-finite loss) on the device;
        the host's figures and the gradient norm (a device tensor under ZeRO 1/2) join it there, so that the step
        reads back once. The norm is global already: each process adds its share of it."""
        host = torch.tensor([tokens, encoder_flops, float(stop_requested)], dtype=torch.float64)
        norm = torch.as_tensor(0.0 if grad_norm is None else grad_norm, dtype=torch.float64)
        local = torch.cat([on_device[:2], (on_device[2:3] > 0).double(), host.to(on_device.device),
                           (norm.to(on_device.device) / runtime.world_size).reshape(1)])
        loss, labelled, nonfinite, tokens, encoder_flops, stop, norm_sum = runtime.sum_tensor(local)
        return cls(loss, labelled, nonfinite, tokens, encoder_flops, stop, None if grad_norm is None else norm_sum)

    def flops(self, config: XLMRConfig) -> float:
        """The step's model FLOPs over every process, forward and backward."""
        return self.encoder_flops + 3 * lm_head_forward_flops(config, int(self.labelled))


class MaskedLMStep:
    """Runs optimizer steps of masked-LM training (see the module docstring) on `engine`."""

    def __init__(self, engine, runtime: Runtime, model_config: XLMRConfig, seed: int, mask_on_device: bool,
                 loss_of: LossOf, on_micro_batch: Callable[[], None] = lambda: None):
        self.engine, self.runtime, self.model_config = engine, runtime, model_config
        self.seed = seed
        """The data seed: the masking kernel's key (the loader masks with the same one)."""
        self.mask_on_device = mask_on_device
        self.loss_of = loss_of
        self.on_micro_batch = on_micro_batch
        """Called after each micro-batch (the progress watchdog's beat)."""

    def __call__(self, batches: Iterator[dict], masking: MaskingConfig,
                 set_accumulation_boundaries: bool = False) -> StepTotals:
        """One step of the engine's gradient_accumulation_steps micro-batches from `batches`. With
        `set_accumulation_boundaries` each micro-batch tells DeepSpeed whether it ends the step (needed when the
        batch size changes between steps: DeepSpeed's own count assumes one accumulation for the run)."""
        engine = self.engine
        accumulation = engine.gradient_accumulation_steps()
        on_device = torch.zeros(3, dtype=torch.float64, device=self.runtime.device)
        tokens, encoder_flops = 0.0, 0.0
        for micro_step in range(accumulation):
            if set_accumulation_boundaries:
                engine.set_gradient_accumulation_boundary(micro_step == accumulation - 1)
            host_batch = next(batches)
            batch = self.to_device(host_batch, masking)
            loss = poison_nonfinite(self.loss_of(engine, batch, host_batch["sample_index"]))
            engine.backward(loss)
            engine.step()
            self.on_micro_batch()
            detached = loss.detach().double()
            on_device[0] += detached / accumulation
            on_device[1] += batch["labels"].ne(IGNORE_INDEX).sum()
            on_device[2] += (~torch.isfinite(detached)).double()
            # Tokens and the FLOPs outside the LM head come from the batch on the host: no device work.
            sequences, seq = host_batch["attention_mask"].shape
            tokens += float(host_batch["attention_mask"].sum())
            encoder_flops += sequences * 3 * encoder_forward_flops(self.model_config, seq)
        return StepTotals.reduce(self.runtime, on_device, tokens, encoder_flops, self.runtime.stop_requested,
                                 engine.get_global_grad_norm())

    def to_device(self, host_batch: dict, masking: MaskingConfig) -> dict:
        """The micro-batch on the device, masked there on a GPU (the masking kernel, bit-identical to the
        loader's CPU masking)."""
        device = self.runtime.device
        moved = {key: host_batch[key].to(device, non_blocking=True)
                 for key in ("input_ids", "attention_mask", "labels", "sample_index")}
        if self.mask_on_device:
            moved["input_ids"], moved["labels"] = mlm_mask(moved["input_ids"], moved["sample_index"], masking,
                                                           self.seed)
        return moved
