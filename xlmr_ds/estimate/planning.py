"""`xlmr-ds plan`: will a run fit, and what will it cost?

Memory per GPU, bf16 mixed precision with Adam, data parallel only:
- model states (ZeRO paper): 2 bytes of bf16 weights, 2 of bf16 gradients, 12 of fp32 optimizer state per
  parameter; stage 1 partitions the optimizer state over the GPUs, stage 2 also the gradients, stage 3 also
  the weights;
- activations per layer (Korthikanti et al. 2022, 16-bit, with dropout masks, no tensor parallelism):
  s*b*h*(34 + 5*a*s/h) bytes; with activation checkpointing only each layer's 16-bit input (2*s*b*h) is
  kept, plus one layer's activations while it is recomputed. The 5*a*s/h term is the s x s attention matrix,
  which fused attention avoids: the figure is an upper bound there. A ModernBERT layer, counted the same way
  for its own tensors with fused attention (no s x s term) and no dropout, keeps s*b*(22*h + 8*f) bytes: the
  two norms' inputs and outputs, q, k and v before and after RoPE, the attention's output and Wo's input
  (22*s*b*h), and the GeGLU's 2f-wide projection, GELU output and product (8*s*b*f);
- the LM head on masked positions: 8 bytes per (masked position x vocabulary) for bf16 logits, their fp32
  softmax and the gradient.
Compute: the FLOP formula of estimate/flops.py with 15% of the positions masked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.estimate.flops import PEAK_TFLOPS, training_flops
from xlmr_ds.estimate.memory import model_state_memory
from xlmr_ds.model.architectures import ModelConfig, largest_parameter_count, parameter_count
from xlmr_ds.model.modern_config import ModernBertConfig

GPU_MEMORY_GIB = {"a100": 80.0, "h100": 80.0, "h200": 141.0}
USABLE_MEMORY = 0.9
"""Share of a GPU's memory a plan may fill; the rest is the CUDA context, NCCL buffers and fragmentation."""

MASK_RATE = 0.15


@dataclass(frozen=True)
class Plan:
    parameters: int
    weights: int
    gradients: int
    optimizer: int
    deepspeed_model_states: int
    activations: int
    activations_checkpointed: int
    lm_head: int
    activation_checkpointing: bool
    gpu_memory: int
    flops_per_step: float
    steps: int
    seconds: float
    gpus: int
    micro_batch: int
    accumulation: int

    @property
    def total(self) -> int:
        used = self.activations_checkpointed if self.activation_checkpointing else self.activations
        return self.weights + self.gradients + self.optimizer + used + self.lm_head

    @property
    def fits(self) -> bool:
        return self.total <= USABLE_MEMORY * self.gpu_memory

    @property
    def gpu_hours(self) -> float:
        return self.seconds * self.gpus / 3600

    @property
    def days(self) -> float:
        return self.seconds / 86400


def activation_bytes(config: ModelConfig, micro_batch: int, seq: int) -> tuple[int, int]:
    """(all layers' activations, the same with activation checkpointing), bytes per GPU."""
    s, b, h, a, layers = seq, micro_batch, config.hidden_size, config.num_heads, config.num_layers
    if isinstance(config, ModernBertConfig):
        per_layer = s * b * (22 * h + 8 * config.ffn_size)
    else:
        per_layer = s * b * h * (34 + 5 * a * s / h)
    return int(layers * per_layer), int(layers * 2 * s * b * h + per_layer)


def make_plan(config: ModelConfig, gpus: int, gpus_per_node: int, gpu: str, zero: int, micro_batch: int, seq: int,
              global_batch: int, tokens: float, mfu: float, peak_tflops: float | None,
              activation_checkpointing: bool) -> Plan:
    """The plan for valid inputs (`xlmr-ds plan` checks its flags before calling this): gpu a key of
    GPU_MEMORY_GIB, ZeRO stage 1-3, gpus a multiple of gpus_per_node, global_batch a multiple of
    micro_batch x gpus, seq within the model's positions, mfu in (0, 1], tokens > 0."""
    total_params = parameter_count(config)
    states = model_state_memory(zero, total_params, largest_parameter_count(config), gpus_per_node,
                                gpus // gpus_per_node)
    activations, checkpointed = activation_bytes(config, micro_batch, seq)
    masked = round(MASK_RATE * seq)
    lm_head = 8 * micro_batch * masked * config.vocab_size
    flops_per_step = global_batch * training_flops(config, seq, masked)
    steps = math.ceil(tokens / (global_batch * seq))
    peak = (peak_tflops or PEAK_TFLOPS[gpu]) * 1e12
    seconds = steps * flops_per_step / (gpus * peak * mfu)
    return Plan(total_params, states.params, states.grads, states.optimizer, states.deepspeed_gpu, activations,
                checkpointed, lm_head, activation_checkpointing, int(GPU_MEMORY_GIB[gpu] * 1024**3), flops_per_step,
                steps, seconds, gpus, micro_batch, global_batch // (micro_batch * gpus))


def planned_ds_config(model_name: str, zero: int, plan: Plan, global_batch: int, template_dir: Path) -> dict:
    """The shipped bf16 config for this size and stage (or the Large one), with the plan's batch sizes."""
    candidates = [template_dir / f"{model_name}_zero{zero}_bf16.json", template_dir / f"large_zero{zero}_bf16.json",
                  template_dir / "large_zero2_bf16.json"]
    template = next((p for p in candidates if p.exists()), None)
    if template is None:
        raise XLMRDSError(f"{template_dir}: the shipped DeepSpeed configs are not there; reinstall xlmr-ds")
    config = json.loads(template.read_text())
    config["zero_optimization"]["stage"] = zero
    config.update(train_batch_size=global_batch, train_micro_batch_size_per_gpu=plan.micro_batch,
                  gradient_accumulation_steps=plan.accumulation)
    config["scheduler"]["params"]["total_num_steps"] = plan.steps
    return config

