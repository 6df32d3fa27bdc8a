"""Model-state memory per GPU under ZeRO stages 1, 2 and 3, for `xlmr-ds info` (and later `plan`).

Two accountings side by side, because users compare against both:
- the ZeRO paper's (Rajbhandari et al. 2020), mixed-precision Adam: 2 bytes of 16-bit parameters,
  2 bytes of 16-bit gradients and 12 bytes of fp32 optimizer state (master weights, momentum, variance) per
  parameter; stage 1 partitions the optimizer state, stage 2 also the gradients, stage 3 also the parameters.
  In fp32 training (CPU runs) parameters and gradients take 4 bytes, and the optimizer still 12: DeepSpeed's
  ZeRO optimizers keep their own fp32 copy of each partition even when the model's parameters are fp32.
  ZeRO-3 also holds, for a moment, the largest parameter gathered whole and its full gradient before the
  reduce-scatter (`gathered`);
- DeepSpeed's own estimators (estimate_zero2_model_states_mem_needs for stages 1 and 2, which share one
  implementation, and estimate_zero3_model_states_mem_needs), which also count fp32 gradient copies and
  the largest layer that ZeRO-3 gathers whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from xlmr_ds.accelerator import select_deepspeed_accelerator

PARAM_BYTES = 2
GRAD_BYTES = 2
OPTIMIZER_BYTES = 12
BYTES_PER_PARAMETER = {
    # precision: (parameter, gradient, optimizer state) bytes per parameter
    "mixed": (PARAM_BYTES, GRAD_BYTES, OPTIMIZER_BYTES),
    "fp32": (4, 4, OPTIMIZER_BYTES),
}


@dataclass(frozen=True)
class ModelStateMemory:
    stage: int
    """ZeRO stage, 1, 2 or 3."""

    params: int
    """Bytes of parameters (16-bit, or fp32 in fp32 training) held by one GPU."""

    grads: int
    """Bytes of gradients (16-bit, or fp32 in fp32 training) held by one GPU."""

    optimizer: int
    """Bytes of fp32 master weights, Adam momentum and variance held by one GPU."""

    gathered: int
    """ZeRO-3 only (else 0): bytes of the largest parameter gathered whole plus its full gradient, held for
    a moment on top of the partitions."""

    deepspeed_gpu: int
    """DeepSpeed's estimate (mixed precision) of one GPU's model-state bytes (no offload)."""

    deepspeed_cpu: int
    """DeepSpeed's estimate of CPU bytes per node (no offload; buffers for loading and saving)."""

    @property
    def total(self) -> int:
        return self.params + self.grads + self.optimizer


def model_state_memory(
    stage: int, total_params: int, largest_layer_params: int, gpus_per_node: int, nodes: int,
    precision: str = "mixed",
) -> ModelStateMemory:
    select_deepspeed_accelerator()
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    gpus = gpus_per_node * nodes
    param_bytes, grad_bytes, optimizer_bytes = BYTES_PER_PARAMETER[precision]
    params = param_bytes * total_params
    grads = grad_bytes * total_params
    optimizer = optimizer_bytes * total_params // gpus
    if stage >= 2:
        grads //= gpus
    if stage >= 3:
        params //= gpus
    gathered = (param_bytes + grad_bytes) * largest_layer_params if stage == 3 else 0
    if stage in (1, 2):
        ds_cpu, ds_gpu = estimate_zero2_model_states_mem_needs(
            total_params, num_gpus_per_node=gpus_per_node, num_nodes=nodes, cpu_offload=False
        )
    elif stage == 3:
        ds_cpu, ds_gpu, _ = estimate_zero3_model_states_mem_needs(
            total_params, largest_layer_params, num_gpus_per_node=gpus_per_node, num_nodes=nodes,
            cpu_offload=False, cpu_offload_params=False, zero_init=True,
        )
    else:
        raise ValueError(f"ZeRO stage must be 1, 2 or 3, not {stage}")
    return ModelStateMemory(stage, params, grads, optimizer, gathered, ds_gpu, ds_cpu)
