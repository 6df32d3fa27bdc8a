"""Loading and validating DeepSpeed JSON configs before DeepSpeed sees them.

DeepSpeed ignores unknown top-level keys silently, so a typo such as "zero_optimisation" would train
without ZeRO. We refuse unknown keys (naming the nearest valid one), check the sections DeepSpeed models
with pydantic through those models, and check the batch-size arithmetic against the real world size. Each
problem is one line that names the file, the key and the fix.

One extension: scheduler.params.total_num_steps may be "auto", filled in from the run's steps.

The configs shipped in the repository's ds_configs/ are installed with the package (setup.py maps the folder
into xlmr_ds/ds_configs), so `shipped_configs_dir` finds them from a clone and from an installed xlmr-ds.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from pathlib import Path

import xlmr_ds
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.jsonfile import read_json_object

# Top-level keys DeepSpeed 0.19 reads (docs: deepspeed.ai/docs/config-json, runtime/config.py).
TOP_LEVEL_KEYS = frozenset({
    "train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "optimizer",
    "scheduler", "fp16", "bf16", "amp", "torch_autocast", "gradient_clipping", "prescale_gradients",
    "gradient_predivide_factor", "sparse_gradients", "zero_optimization", "zero_allow_untested_optimizer",
    "zero_force_ds_cpu_optimizer", "activation_checkpointing", "aio", "flops_profiler", "tensorboard", "wandb",
    "csv_monitor", "comet", "comms_logger", "steps_per_print", "wall_clock_breakdown", "dump_state",
    "memory_breakdown", "checkpoint", "data_types", "communication_data_type",
    "seq_parallel_communication_data_type", "sparse_attention", "data_efficiency", "curriculum_learning",
    "compression_training", "elasticity", "autotuning", "disable_allgather", "dataloader_drop_last",
    "pipeline", "eigenvalue", "progressive_layer_drop", "compile", "timers", "graph_harvesting",
    "use_data_before_expert_parallelism", "gradient_allreduce_op", "disable_python_gc", "nebula",
    "hybrid_engine", "weight_quantization", "tensor_parallel", "zenflow",
})
OPTIMIZER_KEYS = frozenset({"type", "params"})
SCHEDULER_KEYS = frozenset({"type", "params"})
CHECKPOINT_KEYS = frozenset({"tag_validation", "load_universal", "use_node_local_storage", "parallel_write",
                             "writer"})


def _nearest(key: str, valid) -> str:
    match = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else f"; valid keys: {', '.join(sorted(valid))}"


def _check_keys(source: str, section: str, values: dict, valid) -> None:
    for key in values:
        if key not in valid:
            where = f"{section}.{key}" if section else key
            raise XLMRDSError(f"{source}: unknown key {where!r}{_nearest(key, valid)}")


def _check_pydantic_section(source: str, section: str, values: dict, model) -> None:
    """Validate a section through DeepSpeed's own pydantic model; report the first problem on one line."""
    from pydantic import ValidationError

    if not isinstance(values, dict):
        raise XLMRDSError(f"{source}: {section!r} must be a JSON object")
    try:
        model(**values)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in (section, *first["loc"]))
        if first["type"] == "extra_forbidden":
            valid = set(model.model_fields)
            valid |= {f.alias for f in model.model_fields.values() if f.alias}
            raise XLMRDSError(f"{source}: unknown key {location!r}{_nearest(str(first['loc'][-1]), valid)}") from None
        raise XLMRDSError(f"{source}: {location}: {first['msg']} (got {first.get('input')!r})") from None


def load_ds_config(path: str | Path) -> dict:
    config = read_json_object(path, "DeepSpeed config")
    validate_ds_config(config, str(path))
    return config


def validate_ds_config(config: dict, source: str) -> None:
    """Structure only (no world size): keys, sections, precision."""
    from deepspeed.monitor.config import CometConfig, CSVConfig, TensorBoardConfig, WandbConfig
    from deepspeed.runtime.precision_config import DeepSpeedBF16Config, DeepSpeedFP16Config
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig

    _check_keys(source, "", config, TOP_LEVEL_KEYS)
    for section, valid in (("optimizer", OPTIMIZER_KEYS), ("scheduler", SCHEDULER_KEYS),
                           ("checkpoint", CHECKPOINT_KEYS)):
        if section in config:
            if not isinstance(config[section], dict):
                raise XLMRDSError(f"{source}: {section!r} must be a JSON object")
            _check_keys(source, section, config[section], valid)
    models = {"zero_optimization": DeepSpeedZeroConfig, "fp16": DeepSpeedFP16Config, "bf16": DeepSpeedBF16Config,
              "tensorboard": TensorBoardConfig, "csv_monitor": CSVConfig, "wandb": WandbConfig, "comet": CometConfig}
    for section, model in models.items():
        if section in config:
            _check_pydantic_section(source, section, config[section], model)
    if config.get("fp16", {}).get("enabled") and config.get("bf16", {}).get("enabled"):
        raise XLMRDSError(f"{source}: fp16.enabled and bf16.enabled are both true; enable at most one")
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
        value = config.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise XLMRDSError(f"{source}: {key}={value!r} must be a positive integer")


def resolve_batch_sizes(config: dict, source: str, data_parallel_size: int) -> tuple[int, int, int]:
    """(train_batch_size, micro batch per GPU, accumulation steps), checked against the world size."""
    batch = config.get("train_batch_size")
    micro = config.get("train_micro_batch_size_per_gpu")
    accumulation = config.get("gradient_accumulation_steps")
    if batch is None and micro is None:
        raise XLMRDSError(f"{source}: set train_batch_size or train_micro_batch_size_per_gpu")
    if micro is None:
        accumulation = accumulation or 1
        if batch % (accumulation * data_parallel_size):
            raise XLMRDSError(
                f"{source}: train_batch_size={batch} is not divisible by gradient_accumulation_steps={accumulation} "
                f"x {data_parallel_size} processes; use a train_batch_size that is a multiple of "
                f"{accumulation * data_parallel_size}"
            )
        micro = batch // (accumulation * data_parallel_size)
    elif accumulation is None:
        accumulation = 1 if batch is None else batch // (micro * data_parallel_size)
    if batch is None:
        batch = micro * accumulation * data_parallel_size
    if batch != micro * accumulation * data_parallel_size or accumulation < 1:
        raise XLMRDSError(
            f"{source}: train_batch_size={batch} != train_micro_batch_size_per_gpu={micro} x "
            f"gradient_accumulation_steps={accumulation} x {data_parallel_size} processes; with "
            f"{data_parallel_size} processes set train_batch_size to "
            f"{micro * (accumulation or 1) * data_parallel_size} "
            f"or gradient_accumulation_steps to {max(1, batch // (micro * data_parallel_size))}"
        )
    return batch, micro, accumulation


def prepare_ds_config(config: dict, source: str, data_parallel_size: int, total_steps: int) -> dict:
    """A copy ready for deepspeed.initialize: batch sizes made explicit, "auto" total steps filled."""
    config = copy.deepcopy(config)
    batch, micro, accumulation = resolve_batch_sizes(config, source, data_parallel_size)
    config.update(train_batch_size=batch, train_micro_batch_size_per_gpu=micro,
                  gradient_accumulation_steps=accumulation)
    params = config.get("scheduler", {}).get("params", {})
    if params.get("total_num_steps") == "auto":
        params["total_num_steps"] = total_steps
    return config


def route_monitors(config: dict, save_dir: Path | None) -> None:
    """TensorBoard and CSV monitors write under save_dir unless the config names a path; off without one."""
    for key in ("tensorboard", "csv_monitor"):
        section = config.get(key)
        if not section or not section.get("enabled"):
            continue
        if save_dir is None:
            section["enabled"] = False
        elif not section.get("output_path"):
            section["output_path"] = str(save_dir / "monitor")


def zero_stage(config: dict) -> int:
    return int(config.get("zero_optimization", {}).get("stage", 0))


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def shipped_configs_dir() -> Path:
    """The folder of the DeepSpeed configs that ship with xlmr-ds: inside the installed package, or at the top
    of the clone that an editable install runs from."""
    package = Path(xlmr_ds.__file__).resolve().parent
    for candidate in (package / "ds_configs", package.parent / "ds_configs"):
        if candidate.is_dir() and any(candidate.glob("*.json")):
            return candidate
    raise XLMRDSError(f"{package}: the DeepSpeed configs that ship with xlmr-ds are missing (no ds_configs/ in the "
                      f"package or beside it); reinstall xlmr-ds")
