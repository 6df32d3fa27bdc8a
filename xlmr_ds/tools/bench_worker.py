"""One run of `xlmr-ds bench` (tools/bench.py): timed DeepSpeed training steps of one implementation.

    python -m xlmr_ds.tools.bench_worker --settings SETTINGS.json --impl xlmr-ds|hf --out RESULT.json
    deepspeed --num_gpus 2 --module xlmr_ds.tools.bench_worker ...      # what `--processes 2` runs

The model is ours (`XLMRForMaskedLM`, LM head on the masked positions only, attention through our dispatch,
dropout keyed by sample) or transformers' `XLMRobertaForMaskedLM` (SDPA attention) built from the same config;
for a fine-tuning task, our head (model/heads.py) or transformers' XLMRobertaFor{Sequence,Token}Classification
(3 labels) or XLMRobertaForQuestionAnswering (a random answer span). The timed step is training's own, for both
models: masked-LM steps are engine/step.py's MaskedLMStep (the step `xlmr-ds train` runs: masking on the
device on a GPU, on the host on the CPU as the loader does, the step's totals in one all-reduce), fine-tuning
steps are engine/finetune.py's fine_tuning_step (the step `xlmr-ds finetune` runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from xlmr_ds.dataset.sampling import stable_seed
from xlmr_ds.engine.build import parameter_groups
from xlmr_ds.engine.ds_config import load_ds_config
from xlmr_ds.engine.finetune import fine_tuning_step, head_loss
from xlmr_ds.engine.guards.teardown import exit_process
from xlmr_ds.engine.runtime import Runtime
from xlmr_ds.engine.step import MaskedLMStep, keyed_loss
from xlmr_ds.estimate.flops import device_peak_tflops, encoder_forward_flops
from xlmr_ds.kernels.mlm_masking_reference import MaskingConfig, mask_tokens
from xlmr_ds.model import XLMRConfig
from xlmr_ds.model.architectures import ModelConfig, data_vocabulary, masked_lm, preset_config, task_head
from xlmr_ds.model.modern_config import ModernBertConfig
from xlmr_ds.tasks.kinds import KINDS
from xlmr_ds.tools.bench import CLASSIFICATION_LABELS, IMPLEMENTATIONS, BenchSettings
from xlmr_ds.vocab import BOS_ID, EOS_ID, IGNORE_INDEX, PAD_ID, UNK_ID


def bench_ds_config(path: str, micro_batch: int, world_size: int, total_steps: int) -> dict:
    """The user's config with the bench's batch (micro x world, no accumulation) and no monitors."""
    config = load_ds_config(path)
    config.update(train_batch_size=micro_batch * world_size, train_micro_batch_size_per_gpu=micro_batch,
                  gradient_accumulation_steps=1, steps_per_print=10**9)
    for monitor in ("tensorboard", "csv_monitor", "wandb", "comet"):
        config.pop(monitor, None)
    params = config.get("scheduler", {}).get("params", {})
    if params.get("total_num_steps") == "auto":
        params["total_num_steps"] = total_steps
    return config


class SyntheticBatches:
    """Masked batches of packed-looking sequences: <s> tokens </s>, lengths drawn so that `padding` of the
    tokens are padding on average; a pure function of (seed, rank, step)."""

    def __init__(self, config: XLMRConfig, micro_batch: int, seq: int, padding: float, seed: int, rank: int,
                 task: str = "masked-lm", masked: bool = True):
        """task: masked-lm labels the masked positions (masked=False leaves the masking to the step, as the loader
        does for a GPU trainer); a classification task gets random labels instead (one per sequence, or one per
        real token), question answering a random (start, end) inside each sequence."""
        self.micro_batch, self.seq, self.padding, self.task, self.masked = micro_batch, seq, padding, task, masked
        self.seed, self.rank = seed, rank
        self.vocab_size = config.vocab_size
        self.masking = MaskingConfig.for_vocabulary(config.vocab_size)

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(stable_seed(self.seed, "bench", self.rank, step))
        input_ids = np.full((self.micro_batch, self.seq), PAD_ID, dtype=np.int64)
        labels = np.full((self.micro_batch, self.seq), IGNORE_INDEX, dtype=np.int64)
        attention_mask = np.zeros((self.micro_batch, self.seq), dtype=np.int64)
        spans = np.zeros((self.micro_batch, 2), dtype=np.int64)
        sample_index = np.zeros(self.micro_batch, dtype=np.int64)
        for row in range(self.micro_batch):
            short = rng.uniform(0, 2 * self.padding) if self.padding else 0.0
            length = max(3, int(round(self.seq * (1 - min(short, 0.95)))))
            tokens = rng.integers(UNK_ID + 1, self.masking.mask_id, length)
            tokens[0], tokens[-1] = BOS_ID, EOS_ID
            if self.task == "masked-lm":
                sample_index[row] = (step * 1_000_003 + self.rank) * self.micro_batch + row
                ids, row_labels = mask_tokens(tokens, self.masking, self.seed, int(sample_index[row])) \
                    if self.masked else (tokens, IGNORE_INDEX)
            elif self.task == "token-classification":
                ids, row_labels = tokens, rng.integers(0, CLASSIFICATION_LABELS, length)
            else:
                ids, row_labels = tokens, IGNORE_INDEX
            input_ids[row, :length], labels[row, :length], attention_mask[row, :length] = ids, row_labels, 1
            spans[row] = np.sort(rng.integers(1, length - 1, 2))
        if self.task in ("pair-classification", "sequence-classification"):
            labels = rng.integers(0, CLASSIFICATION_LABELS, self.micro_batch)
        elif self.task == "question-answering":
            labels = spans
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask),
                 "labels": torch.from_numpy(labels)}
        return {**batch, "sample_index": torch.from_numpy(sample_index)} if self.task == "masked-lm" else batch


def build_model(impl: str, config: ModelConfig, activation_checkpointing: bool,
                task: str = "masked-lm") -> torch.nn.Module:
    """Ours, or transformers' class of the same architecture (model/hf.py and model/modern_hf.py pair them), for
    `task`: masked-LM or a fine-tuning task kind (tasks/kinds.py)."""
    labels = () if task == "masked-lm" else KINDS[task].fixed_labels or tuple(map(str, range(CLASSIFICATION_LABELS)))
    if task == "masked-lm":
        ours = masked_lm(config, activation_checkpointing=activation_checkpointing)
    else:
        ours = task_head(KINDS[task].head, config)(config, labels, activation_checkpointing=activation_checkpointing)
    if impl == "xlmr-ds":
        return ours
    import transformers

    if isinstance(config, ModernBertConfig):
        from xlmr_ds.model.modern_hf import architecture_name, modern_config_to_hf

        architecture = architecture_name(ours)
        hf_config = {**modern_config_to_hf(config), "architectures": [architecture]}
        if labels:
            hf_config.update(id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
        model = getattr(transformers, architecture)(transformers.ModernBertConfig.from_dict(
            hf_config, attn_implementation="sdpa"))
        if activation_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return model
    from transformers import XLMRobertaConfig

    from xlmr_ds.model.hf import architecture_of, config_to_hf

    architecture = architecture_of(type(ours))
    hf_config = config_to_hf(config, architecture, labels)
    model = getattr(transformers, architecture)(XLMRobertaConfig(**hf_config, attn_implementation="sdpa"))
    if activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def transformers_loss(engine, batch: dict, sample_index: torch.Tensor | None = None) -> torch.Tensor:
    """transformers' model's loss on a micro-batch (its dropout is its own: no keys)."""
    labels = {"labels": batch["labels"]}
    # transformers' span head takes its labels as two arguments (the engine wraps it: look at its module)
    if type(engine.module).__name__.endswith("QuestionAnswering"):
        labels = {"start_positions": batch["labels"][:, 0], "end_positions": batch["labels"][:, 1]}
    return engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **labels)["loss"]


def training_step(impl: str, settings: BenchSettings, engine, runtime: Runtime, config: XLMRConfig):
    """The step to time, as training and fine-tuning run it: batch -> (tokens, model FLOPs) over every process.
    Fine-tuning's FLOPs are the encoder's (the head's are negligible beside them)."""
    if settings.task != "masked-lm":
        loss_of = head_loss if impl == "xlmr-ds" else transformers_loss

        def fine_tune(batch: dict) -> tuple[float, float]:
            _, tokens, _ = fine_tuning_step(engine, runtime, batch, loss_of)
            return tokens, 3 * encoder_forward_flops(config, settings.seq) * len(batch["input_ids"]) * runtime.size
        return fine_tune
    loss_of = keyed_loss(settings.seed, keyed_dropout=True) if impl == "xlmr-ds" else transformers_loss
    step = MaskedLMStep(engine, runtime, config, settings.seed, runtime.device.type == "cuda", loss_of)
    masking = MaskingConfig.for_vocabulary(config.vocab_size)

    def pretrain(batch: dict) -> tuple[float, float]:
        totals = step(iter([batch]), masking)
        return totals.tokens, totals.flops(config)
    return pretrain


def run_worker(settings: BenchSettings, impl: str) -> dict:
    """One run in this process (one rank of the job): its result, the same on every rank."""
    runtime = Runtime.start()
    import deepspeed

    rank, world, device = runtime.rank, runtime.world_size, runtime.device
    on_gpu = device.type == "cuda"
    config = preset_config(settings.model)
    data = None
    if settings.data:
        from xlmr_ds.dataset.loader import DataConfig, PretrainingData

        data = PretrainingData(DataConfig(settings.data, block_size=settings.seq, seed=settings.seed))
        config = config.replace(vocab_size=data.vocab_size)
    elif settings.vocab_size:
        config = config.replace(vocab_size=settings.vocab_size)
    # The batches carry xlmr-ds's special ids, whichever tokenizer a ModernBERT preset names.
    config = data_vocabulary(config, config.vocab_size)
    ds_config = bench_ds_config(settings.deepspeed_config, settings.micro_batch, world,
                                settings.warmup_steps + settings.steps)
    torch.manual_seed(settings.seed)
    model = build_model(impl, config, settings.activation_checkpointing, settings.task)
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=parameter_groups(model), config=ds_config)
    if data is not None:
        from xlmr_ds.dataset.loader import build_train_loader

        loader = iter(build_train_loader(data, settings.micro_batch * world, settings.micro_batch, rank, world,
                                         num_workers=settings.num_workers, pin_memory=on_gpu, masked=not on_gpu))
        batches = lambda index: next(loader)  # noqa: E731 - the loader's order is the step order
    else:
        batches = SyntheticBatches(config, settings.micro_batch, settings.seq, settings.padding, settings.seed, rank,
                                   settings.task, masked=not on_gpu)
    fixed = batches(0)
    timed_step = training_step(impl, settings, engine, runtime, config)

    def step(index: int) -> tuple[float, float]:
        batch = fixed if settings.fixed_batch else batches(index)
        keys = ("input_ids", "attention_mask", "labels") + (("sample_index",) if settings.task == "masked-lm" else ())
        return timed_step({key: batch[key] for key in keys})

    for index in range(settings.warmup_steps):
        step(index)
    if on_gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    runtime.barrier()
    tokens, flops, times = 0, 0.0, []
    for index in range(settings.warmup_steps, settings.warmup_steps + settings.steps):
        started = time.perf_counter()
        step_tokens, step_flops = step(index)  # summed over the processes by the step's own all-reduce
        times.append(time.perf_counter() - started)  # that all-reduce reads back: the GPU is done by then
        tokens, flops = tokens + step_tokens, flops + step_flops
    # Rates use the median step time (x steps): one step stalled by something else on the machine does not
    # move the figure. Step times are rank 0's.
    seconds = runtime.broadcast_object(statistics.median(times)) * settings.steps
    peak_memory = (torch.cuda.max_memory_allocated() if on_gpu
                   else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30
    peak_tflops = settings.peak_tflops or device_peak_tflops(torch.cuda.get_device_name() if on_gpu else None)
    result = {
        "impl": impl, "task": settings.task, "model": settings.model,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seq": settings.seq, "micro_batch": settings.micro_batch, "processes": world, "steps": settings.steps,
        "data": settings.data or "synthetic", "padding": None if settings.data else settings.padding,
        "fixed_batch": settings.fixed_batch, "activation_checkpointing": settings.activation_checkpointing,
        "zero_stage": ds_config.get("zero_optimization", {}).get("stage", 0),
        "precision": "bf16" if ds_config.get("bf16", {}).get("enabled") else
                     "fp16" if ds_config.get("fp16", {}).get("enabled") else "fp32",
        "tokens_per_s": tokens / seconds, "sequences_per_s": settings.micro_batch * world * settings.steps / seconds,
        "step_time_s": seconds / settings.steps, "step_time_kind": "median", "step_times_s": times,
        "peak_memory_gib": peak_memory, "peak_memory_kind": "cuda max allocated" if on_gpu else "max RSS",
        "model_tflops_per_s": flops / seconds / 1e12,
        "mfu": flops / seconds / (peak_tflops * 1e12 * world) if peak_tflops else None,
    }
    runtime.barrier()
    runtime.shut_down()
    return result


def main(argv: list[str] | None = None) -> int:
    """One run; rank 0 writes its result to --out."""
    parser = argparse.ArgumentParser(prog="python -m xlmr_ds.tools.bench_worker")
    parser.add_argument("--settings", required=True, help="BenchSettings as JSON (written by `xlmr-ds bench`)")
    parser.add_argument("--impl", choices=IMPLEMENTATIONS, required=True)
    parser.add_argument("--fixed-batch", action="store_true")
    parser.add_argument("--out", required=True)
    parser.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = BenchSettings(**json.loads(Path(args.settings).read_text()))
    if args.fixed_batch:
        settings = dataclasses.replace(settings, fixed_batch=True)
    result = run_worker(settings, args.impl)
    if int(os.environ.get("RANK", 0)) == 0:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    exit_process(main())
