"""`xlmr-ds bench`: training throughput of xlmr-ds, and with --compare hf of transformers' model beside it.

The runs are jobs of their own, interleaved (hf, ours, hf, ours, ...) for --repeats pairs (tools/bench.py).
The last line printed is `ratio: X.XX [min A, max B over N pairs] (xlmr-ds / hf)`, the median of the pairs'
tokens-per-second ratios.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xlmr_ds.cli.arguments import output_file, require_at_least
from xlmr_ds.cli.table import format_table
from xlmr_ds.engine.ds_config import shipped_configs_dir
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model.architectures import ALL_ARCHITECTURES, preset_config, preset_names
from xlmr_ds.outputs import write_text_atomically
from xlmr_ds.tools.bench import BENCH_TASKS, SHORT_TIMED_SECONDS, BenchSettings, compare

DEFAULT_CONFIGS = {"cpu": "tiny_cpu_zero2.json", "cuda": "base_zero2_bf16.json"}


def register(commands) -> None:
    parser = commands.add_parser("bench", help="training throughput (tokens/s, MFU, memory), optionally vs HF")
    defaults = BenchSettings(deepspeed_config="")
    parser.add_argument("--task", choices=BENCH_TASKS, default=defaults.task,
                        help="masked-lm pretraining steps (default), or fine-tuning steps of that task's head "
                             "(synthetic labels; --padding makes the batches ragged as fine-tuning batches are)")
    parser.add_argument("--model", choices=preset_names(ALL_ARCHITECTURES), default=defaults.model,
                        help="an XLM-R or a ModernBERT preset (--compare hf: transformers' class of its architecture)")
    parser.add_argument("--vocab-size", type=int, help="override the preset's vocabulary size")
    parser.add_argument("--seq", type=int, default=defaults.seq, help=f"tokens per sequence (default {defaults.seq})")
    parser.add_argument("--micro-batch", type=int, default=defaults.micro_batch, help="sequences per process per step")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="timed steps per run")
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps, help="untimed steps first")
    parser.add_argument("--data", metavar="OUT", help="batches from this binarized dataset through the training "
                        "loader (default: synthetic batches made in the step)")
    parser.add_argument("--num-workers", type=int, default=defaults.num_workers,
                        help=f"loader worker processes with --data (default {defaults.num_workers})")
    parser.add_argument("--padding", type=float, default=defaults.padding,
                        help="synthetic batches: mean share of padding tokens (0 = full rows)")
    parser.add_argument("--fixed-batch", action="store_true", help="reuse one batch: the step without data work")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--deepspeed_config", metavar="FILE",
                        help=f"DeepSpeed JSON config (default: the shipped {DEFAULT_CONFIGS['cpu']} on CPU, "
                             f"{DEFAULT_CONFIGS['cuda']} on a GPU); its batch sizes are replaced")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--peak-tflops", type=float, help="device peak for MFU (default: the GPU's table value)")
    parser.add_argument("--processes", type=int, default=1, help="data-parallel processes (default 1)")
    parser.add_argument("--compare", choices=["hf"], help="also run transformers' XLMRobertaForMaskedLM")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each implementation, interleaved hf, ours, hf, ours, ... (default 3)")
    parser.add_argument("--data-gap", action="store_true",
                        help="also time xlmr-ds on one fixed batch: the difference is what the data path costs")
    parser.add_argument("--json", type=output_file, metavar="FILE",
                        help="write the results, with the hardware named, here")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per run (default 3600)")
    parser.set_defaults(run=run)


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    if args.data and args.task != "masked-lm":
        raise XLMRDSError(f"--data feeds masked-LM batches; --task {args.task} uses synthetic labelled batches")
    if args.data and not Path(args.data, "manifest.json").is_file():
        raise XLMRDSError(f"--data {args.data}: not a complete `xlmr-ds binarize` output (no manifest.json)")
    require_at_least(args, 1, "micro_batch", "steps", "processes", "repeats")
    if args.warmup_steps < 0:
        raise XLMRDSError(f"--warmup-steps={args.warmup_steps} must be 0 or more")
    limit = preset_config(args.model).max_sequence_length
    if not 8 <= args.seq <= limit:
        raise XLMRDSError(f"--seq={args.seq} must be between 8 and {limit} for model {args.model}")
    if not 0.0 <= args.padding <= 0.9:
        raise XLMRDSError(f"--padding={args.padding} must be between 0 and 0.9")
    if args.deepspeed_config is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        args.deepspeed_config = str(shipped_configs_dir() / DEFAULT_CONFIGS[device])
    config = args.deepspeed_config
    if not Path(config).is_file():
        raise XLMRDSError(f"--deepspeed_config {config}: no such file")
    return BenchSettings(config, args.model, args.vocab_size, args.seq, args.micro_batch, args.steps,
                         args.warmup_steps, args.data, args.num_workers, args.padding, args.fixed_batch,
                         args.activation_checkpointing, args.seed, args.peak_tflops, args.task)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)

    def announce(number: int, total: int, run) -> None:
        print(f"[xlmr-ds bench] run {number + 1} of {total}: {run.label}: {settings.task}, {settings.model}, "
              f"seq {settings.seq}, "
              f"micro-batch {settings.micro_batch}, {args.processes} process(es), {settings.steps} timed steps",
              flush=True)

    report = compare(settings, args.processes, bool(args.compare), args.data_gap, args.repeats, args.timeout, announce)
    rows = [(r["impl"] + (" (fixed batch)" if r["fixed_batch"] and not settings.fixed_batch else ""),
             f"{r['tokens_per_s']:,.0f}", f"{r['sequences_per_s']:,.2f}", f"{r['step_time_s'] * 1e3:,.1f}",
             f"{r['peak_memory_gib']:.2f} ({r['peak_memory_kind']})",
             f"{r['mfu']:.1%}" if r["mfu"] is not None else f"{r['model_tflops_per_s']:.3f} TFLOP/s")
            for r in report["results"]]
    print(f"median run of {args.repeats} per implementation:")
    print(format_table(("impl", "tokens/s", "sequences/s", "step ms", "peak memory GiB", "MFU or model FLOP/s"), rows))
    timed = min(r["step_time_s"] * r["steps"] for r in report["runs"])
    if timed < SHORT_TIMED_SECONDS:
        print(f"note: the shortest run's timed steps took {timed:.2f} s; raise --steps for steadier figures")
    if "data_gap" in report:
        print(f"data gap: {report['data_gap']:+.1%} of the step (median of {args.repeats} pairs of runs with data "
              f"and on a fixed batch)")
    if args.json:
        write_text_atomically(args.json, json.dumps(report, indent=2) + "\n")
    if args.compare:
        pairs = ", ".join(f"{ratio:.2f}" for ratio in report["pair_ratios"])
        print(f"pairs (xlmr-ds / hf, in run order): {pairs}")
        print(f"ratio: {report['ratio']:.2f} [min {report['ratio_min']:.2f}, max {report['ratio_max']:.2f} over "
              f"{args.repeats} pairs] (xlmr-ds / hf)")
    return 0
