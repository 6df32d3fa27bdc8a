"""Model-state memory per GPU under ZeRO stages 1, 2 and 3, for `xlmr-ds info` (and later `plan`).

Two accountings side by side, because users compare against both:
- the ZeRO paper's (Rajbhandari et al. 2020), mixed-precision Adam: 2 bytes of 16-bit parameters,
  2 bytes of 16-bit gradients and 12 bytes of fp32 optimizer state (master weights, momentum, variance) per
  parameter; stage 1 partitions the optimizer state, stage 2 also the gradients, stage 3 also the parameters;
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


@dataclass(frozen=True)
class ModelStateMemory:
    stage: int
    """ZeRO stage, 1, 2 or 3."""

    params: int
    """Bytes of 16-bit parameters held by one GPU."""

    grads: int
    """Bytes of 16-bit gradients held by one GPU."""

    optimizer: int
    """Bytes of fp32 master weights, Adam momentum and variance held by one GPU."""

    deepspeed_gpu: int
    """DeepSpeed's estimate of one GPU's model-state bytes (no offload)."""

    deepspeed_cpu: int
    """DeepSpeed's estimate of CPU bytes per node (no offload; buffers for loading and saving)."""

    @property
    def total(self) -> int:
        return self.params + self.grads + self.optimizer


def model_state_memory(
    stage: int, total_params: int, largest_layer_params: int, gpus_per_node: int, nodes: int
) -> ModelStateMemory:
    select_deepspeed_accelerator()
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    gpus = gpus_per_node * nodes
    params = PARAM_BYTES * total_params
    grads = GRAD_BYTES * total_params
    optimizer = OPTIMIZER_BYTES * total_params // gpus
    if stage >= 2:
        grads //= gpus
    if stage >= 3:
        params //= gpus
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
    return ModelStateMemory(stage, params, grads, optimizer, ds_gpu, ds_cpu)
