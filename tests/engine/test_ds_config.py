"""Every shipped DeepSpeed config validates; bad configs fail with one line naming the key and the fix."""

import json
from pathlib import Path

import pytest
import torch

from xlmr_ds.engine.ds_config import load_ds_config, prepare_ds_config, resolve_batch_sizes
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model import XLMRForMaskedLM, parameter_count, preset

SHIPPED = sorted((Path(__file__).parents[2] / "ds_configs").glob("*.json"))
FINETUNE = [p for p in SHIPPED if p.name.startswith("finetune")]
CONFIGS = [p for p in SHIPPED if p not in FINETUNE]  # pretraining


def test_all_xlmr_configs_are_present():
    names = {p.name for p in CONFIGS}
    assert {"tiny_cpu_zero1.json", "tiny_cpu_zero2.json", "tiny_cpu_zero3.json", "base_zero2_bf16.json",
            "large_zero2_bf16.json", "large_zero3_bf16.json", "large_zero3_offload.json"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates_and_states_the_xlmr_optimizer(path):
    config = load_ds_config(path)
    optimizer = config["optimizer"]
    assert optimizer["type"] == "AdamW"
    assert optimizer["params"]["betas"] == [0.9, 0.98] and optimizer["params"]["eps"] == 1e-6
    assert optimizer["params"]["weight_decay"] == 0.01
    assert config["scheduler"]["type"] == "WarmupDecayLR"
    assert config["tensorboard"]["enabled"] and config["csv_monitor"]["enabled"]
    assert not (config.get("fp16", {}).get("enabled") and config.get("bf16", {}).get("enabled"))


@pytest.mark.parametrize("path", FINETUNE, ids=lambda p: p.name)
def test_finetune_config_validates_with_the_roberta_fine_tuning_optimizer(path):
    config = load_ds_config(path)
    assert config["optimizer"]["type"] == "AdamW"
    assert config["optimizer"]["params"]["betas"] == [0.9, 0.98] and config["optimizer"]["params"]["eps"] == 1e-6
    assert config["scheduler"]["params"]["warmup_num_steps"] == "auto"  # --warmup-fraction of the steps


@pytest.mark.parametrize("path", [p for p in CONFIGS if "_cpu_" not in p.name], ids=lambda p: p.name)
def test_gpu_configs_instantiate_their_model_on_the_meta_device(path):
    config = load_ds_config(path)
    size = path.name.split("_")[0]
    with torch.device("meta"):
        model = XLMRForMaskedLM(preset(size))
    assert sum(p.numel() for p in model.parameters()) == parameter_count(preset(size))
    # XLM-R's global batch of 8192 sequences on 64 GPUs.
    prepared = prepare_ds_config(config, path.name, data_parallel_size=64, total_steps=1_500_000)
    assert prepared["train_batch_size"] == 8192
    assert prepared["gradient_accumulation_steps"] * prepared["train_micro_batch_size_per_gpu"] * 64 == 8192
    assert prepared["scheduler"]["params"]["total_num_steps"] == 1_500_000


def _write(tmp_path, config) -> Path:
    path = tmp_path / "ds.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return path


BASE = {"train_batch_size": 8, "train_micro_batch_size_per_gpu": 2, "zero_optimization": {"stage": 2}}

BAD_CONFIGS = [
    ("{not json", "ds.json: invalid JSON at line 1"),
    ("[1, 2]", "ds.json: a DeepSpeed config must be a JSON object"),
    ({**BASE, "zero_optimisation": {"stage": 2}}, "unknown key 'zero_optimisation'; did you mean 'zero_optimization'?"),
    ({**BASE, "gradient_clip": 1.0}, "unknown key 'gradient_clip'; did you mean 'gradient_clipping'?"),
    ({**BASE, "zero_optimization": {"stage": 2, "overlap_com": True}},
     "unknown key 'zero_optimization.overlap_com'; did you mean 'overlap_comm'?"),
    ({**BASE, "zero_optimization": {"stage": 7}}, "zero_optimization.stage"),
    ({**BASE, "optimizer": {"type": "AdamW", "parms": {}}}, "unknown key 'optimizer.parms'; did you mean 'params'?"),
    ({**BASE, "fp16": {"enabled": True}, "bf16": {"enabled": True}}, "fp16.enabled and bf16.enabled are both true"),
    ({**BASE, "bf16": {"enabeld": True}}, "unknown key 'bf16.enabeld'; did you mean 'enabled'?"),
    ({**BASE, "train_micro_batch_size_per_gpu": 0}, "train_micro_batch_size_per_gpu=0 must be a positive integer"),
    ({**BASE, "tensorboard": {"enabled": True, "job": "x"}}, "unknown key 'tensorboard.job'"),
]


@pytest.mark.parametrize("config,message", BAD_CONFIGS)
def test_bad_configs_are_refused_with_the_key_named(tmp_path, config, message):
    with pytest.raises(XLMRDSError, match=message.replace("?", r"\?").replace("(", r"\(").replace(")", r"\)")) as error:
        load_ds_config(_write(tmp_path, config))
    assert "\n" not in str(error.value)


BATCHES = [
    # (config, processes, expected (batch, micro, accumulation) or an error fragment)
    ({"train_batch_size": 8, "train_micro_batch_size_per_gpu": 2}, 2, (8, 2, 2)),
    ({"train_batch_size": 8, "train_micro_batch_size_per_gpu": 2}, 1, (8, 2, 4)),
    ({"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 3}, 2, (12, 2, 3)),
    ({"train_batch_size": 12}, 4, (12, 3, 1)),
    ({"train_batch_size": 8, "train_micro_batch_size_per_gpu": 2}, 3,
     "train_batch_size=8 != train_micro_batch_size_per_gpu=2 x gradient_accumulation_steps=1 x 3 processes"),
    ({"train_batch_size": 8, "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 3}, 2,
     "with 2 processes set train_batch_size to 12 or gradient_accumulation_steps to 2"),
    ({"train_batch_size": 10, "gradient_accumulation_steps": 2}, 2, "is not divisible by"),
    ({}, 2, "set train_batch_size or train_micro_batch_size_per_gpu"),
]


@pytest.mark.parametrize("config,processes,expected", BATCHES)
def test_batch_size_arithmetic_against_the_world_size(config, processes, expected):
    if isinstance(expected, tuple):
        assert resolve_batch_sizes(config, "ds.json", processes) == expected
    else:
        with pytest.raises(XLMRDSError, match=expected.replace("(", r"\(")):
            resolve_batch_sizes(config, "ds.json", processes)
