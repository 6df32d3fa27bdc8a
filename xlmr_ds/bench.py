"""One side of `xlmr-ds bench`: timed DeepSpeed training steps of one implementation, results as JSON.

    python -m xlmr_ds.bench --impl xlmr-ds|hf --model tiny --seq 512 --micro-batch 4 --steps 10 \\
        --deepspeed_config ds_configs/tiny_cpu_zero2.json --out result.json
    deepspeed --num_gpus 2 --module xlmr_ds.bench ...      # what `xlmr-ds bench --processes 2` runs

Both implementations get the same batches (synthetic packed sequences masked by the data path's MLM rule,
a pure function of (seed, rank, step)), the same DeepSpeed config, optimizer, parameter groups and process
count; only the model differs: ours (`XLMRForMaskedLM`, LM head on the masked positions only, attention
through our dispatch) or transformers' `XLMRobertaForMaskedLM` (SDPA attention) built from the same config.
The timed loop is the same minimal one for both: forward, backward, step, and no host synchronization
inside the timed steps except one at the end of each step on a GPU. `--fixed-batch` reuses one batch to
measure what the data path costs (the difference is the loader's share of the step).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from xlmr_ds.accelerator import select_deepspeed_accelerator
from xlmr_ds.data.masking import IGNORE_INDEX, MaskingConfig, mask_tokens
from xlmr_ds.data.sampling import stable_seed
from xlmr_ds.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS
from xlmr_ds.engine.build import parameter_groups
from xlmr_ds.engine.ds_config import load_ds_config
from xlmr_ds.engine.teardown import exit_process, release_shared_memory_buffer, shut_down_process_group
from xlmr_ds.flops import device_peak_tflops, training_flops
from xlmr_ds.model import PRESETS, XLMRConfig, XLMRForMaskedLM, preset

IMPLEMENTATIONS = ("xlmr-ds", "hf")


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

    def __init__(self, config: XLMRConfig, micro_batch: int, seq: int, padding: float, seed: int, rank: int):
        self.micro_batch, self.seq, self.padding = micro_batch, seq, padding
        self.seed, self.rank = seed, rank
        self.vocab_size = config.vocab_size
        # The specials of every XLM-R vocabulary; <mask> is the last id.
        self.masking = MaskingConfig(config.vocab_size, (*SPECIAL_TOKENS.values(), config.vocab_size - 1))

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(stable_seed(self.seed, "bench", self.rank, step))
        input_ids = np.full((self.micro_batch, self.seq), PAD_ID, dtype=np.int64)
        labels = np.full((self.micro_batch, self.seq), IGNORE_INDEX, dtype=np.int64)
        attention_mask = np.zeros((self.micro_batch, self.seq), dtype=np.int64)
        for row in range(self.micro_batch):
            short = rng.uniform(0, 2 * self.padding) if self.padding else 0.0
            length = max(3, int(round(self.seq * (1 - min(short, 0.95)))))
            tokens = rng.integers(4, self.vocab_size - 1, length)
            tokens[0], tokens[-1] = BOS_ID, EOS_ID
            sample_index = (step * 1_000_003 + self.rank) * self.micro_batch + row
            ids, row_labels = mask_tokens(tokens, self.masking, self.seed, sample_index)
            input_ids[row, :length], labels[row, :length], attention_mask[row, :length] = ids, row_labels, 1
        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask),
                "labels": torch.from_numpy(labels)}


def build_model(impl: str, config: XLMRConfig) -> torch.nn.Module:
    if impl == "xlmr-ds":
        return XLMRForMaskedLM(config)
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    from xlmr_ds.model.hf import config_to_hf

    return XLMRobertaForMaskedLM(XLMRobertaConfig(**config_to_hf(config), attn_implementation="sdpa"))


def _loss(impl: str, model, batch: dict) -> torch.Tensor:
    output = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    return output.loss if impl == "xlmr-ds" else output["loss"]


def run(args: argparse.Namespace) -> dict:
    select_deepspeed_accelerator()
    import deepspeed
    import torch.distributed as dist

    deepspeed.init_distributed()
    rank, world = dist.get_rank(), dist.get_world_size()
    on_gpu = torch.cuda.is_available()
    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
    config = preset(args.model)
    data = None
    if args.data:
        from xlmr_ds.data.pretraining import DataConfig, PretrainingData

        data = PretrainingData(DataConfig(args.data, block_size=args.seq, seed=args.seed))
        config = config.replace(vocab_size=data.vocab_size)
    elif args.vocab_size:
        config = config.replace(vocab_size=args.vocab_size)
    ds_config = bench_ds_config(args.deepspeed_config, args.micro_batch, world, args.warmup_steps + args.steps)
    torch.manual_seed(args.seed)
    model = build_model(args.impl, config)
    if args.activation_checkpointing:
        if args.impl == "xlmr-ds":
            model.activation_checkpointing = True
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=parameter_groups(model), config=ds_config)
    if data is not None:
        from xlmr_ds.data.pretraining import build_train_loader

        loader = iter(build_train_loader(data, args.micro_batch * world, args.micro_batch, rank, world,
                                         num_workers=args.num_workers, pin_memory=on_gpu))
        batches = lambda index: next(loader)  # noqa: E731 - the loader's order is the step order
    else:
        batches = SyntheticBatches(config, args.micro_batch, args.seq, args.padding, args.seed, rank)
    fixed = batches(0)

    def step(index: int) -> tuple[int, float]:
        batch = fixed if args.fixed_batch else batches(index)
        batch = {key: batch[key] for key in ("input_ids", "attention_mask", "labels")}
        on_device = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
        engine.backward(_loss(args.impl, engine, on_device))
        engine.step()
        labelled = (batch["labels"] != IGNORE_INDEX).sum(dim=1).tolist()
        flops = sum(training_flops(config.num_layers, config.hidden_size, config.vocab_size, args.seq, m)
                    for m in labelled)
        return int(batch["attention_mask"].sum()), flops

    for index in range(args.warmup_steps):
        step(index)
    if on_gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    dist.barrier()
    tokens, flops, times = 0, 0.0, []
    for index in range(args.warmup_steps, args.warmup_steps + args.steps):
        started = time.perf_counter()
        step_tokens, step_flops = step(index)
        if on_gpu:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
        tokens, flops = tokens + step_tokens, flops + step_flops
    # Rates use the median step time (x steps): one step stalled by something else on the machine does not
    # move the figure. Tokens and FLOPs are summed over the processes, step times taken from rank 0.
    totals = torch.tensor([tokens, flops], dtype=torch.float64)
    dist.all_reduce(totals)
    tokens, flops = totals[0].item(), totals[1].item()
    median_step = torch.tensor([statistics.median(times)], dtype=torch.float64)
    dist.broadcast(median_step, 0)
    seconds = median_step.item() * args.steps
    peak_memory = (torch.cuda.max_memory_allocated() if on_gpu
                   else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30
    peak_tflops = args.peak_tflops or device_peak_tflops(torch.cuda.get_device_name() if on_gpu else None)
    result = {
        "impl": args.impl, "model": args.model, "parameters": sum(p.numel() for p in model.parameters()),
        "seq": args.seq, "micro_batch": args.micro_batch, "processes": world, "steps": args.steps,
        "data": args.data or "synthetic", "padding": None if args.data else args.padding,
        "fixed_batch": args.fixed_batch,
        "activation_checkpointing": args.activation_checkpointing,
        "zero_stage": ds_config.get("zero_optimization", {}).get("stage", 0),
        "precision": "bf16" if ds_config.get("bf16", {}).get("enabled") else
                     "fp16" if ds_config.get("fp16", {}).get("enabled") else "fp32",
        "tokens_per_s": tokens / seconds, "sequences_per_s": args.micro_batch * world * args.steps / seconds,
        "step_time_s": seconds / args.steps, "step_time_kind": "median", "step_times_s": times,
        "peak_memory_gib": peak_memory, "peak_memory_kind": "cuda max allocated" if on_gpu else "max RSS",
        "model_tflops_per_s": flops / seconds / 1e12,
        "mfu": flops / seconds / (peak_tflops * 1e12 * world) if peak_tflops else None,
    }
    if rank == 0 and args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    dist.barrier()
    release_shared_memory_buffer()
    shut_down_process_group()
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xlmr_ds.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=IMPLEMENTATIONS, required=True)
    add_bench_arguments(parser)
    parser.add_argument("--out", help="JSON result file (written by rank 0)")
    parser.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)), help=argparse.SUPPRESS)
    return parser


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags the `xlmr-ds bench` front end passes through to each worker unchanged."""
    parser.add_argument("--model", choices=list(PRESETS), default="tiny")
    parser.add_argument("--vocab-size", type=int, help="override the preset's vocabulary size")
    parser.add_argument("--seq", type=int, default=512, help="tokens per sequence (default 512)")
    parser.add_argument("--micro-batch", type=int, default=4, help="sequences per process per step")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup-steps", type=int, default=2, help="untimed steps first")
    parser.add_argument("--data", metavar="OUT", help="batches from this binarized dataset through the training "
                        "loader (default: synthetic batches made in the step)")
    parser.add_argument("--num-workers", type=int, default=1, help="loader worker processes with --data (default 1)")
    parser.add_argument("--padding", type=float, default=0.0,
                        help="synthetic batches: mean share of padding tokens (0 = full rows)")
    parser.add_argument("--fixed-batch", action="store_true", help="reuse one batch: the step without data work")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--deepspeed_config", required=True, metavar="FILE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peak-tflops", type=float, help="device peak for MFU (default: the GPU's table value)")


def main(argv: list[str] | None = None) -> int:
    run(build_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    exit_process(main())
