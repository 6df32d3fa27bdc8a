"""`xlmr-ds bench`: training throughput of xlmr-ds, and with --compare hf of transformers' model beside it.

Each implementation runs as its own job (`python -m xlmr_ds.bench`, under `deepspeed --num_gpus N` for
several processes) with identical flags, one after the other in this invocation, so that memory figures
are per implementation. The last line printed is `ratio: X.XX (xlmr-ds / hf)` (tokens per second).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from xlmr_ds.bench import add_bench_arguments
from xlmr_ds.cli.table import format_table
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model import preset

CONFIGS = Path(__file__).resolve().parents[2] / "ds_configs"


def register(commands) -> None:
    parser = commands.add_parser("bench", help="training throughput (tokens/s, MFU, memory), optionally vs HF")
    add_bench_arguments(parser)
    parser.set_defaults(deepspeed_config=None)
    for action in parser._actions:
        if action.dest == "deepspeed_config":
            action.required = False
            action.help = ("DeepSpeed JSON config (default: ds_configs/tiny_cpu_zero2.json on CPU, "
                           "ds_configs/base_zero2_bf16.json on a GPU); its batch sizes are replaced")
    parser.add_argument("--processes", type=int, default=1, help="data-parallel processes (default 1)")
    parser.add_argument("--compare", choices=["hf"], help="also run transformers' XLMRobertaForMaskedLM")
    parser.add_argument("--data-gap", action="store_true",
                        help="also time xlmr-ds on one fixed batch: the difference is what the data path costs")
    parser.add_argument("--json", metavar="FILE", help="write the results, with the hardware named, here")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per implementation (default 3600)")
    parser.set_defaults(run=run)


def _check(args: argparse.Namespace) -> None:
    if args.data and not Path(args.data, "manifest.json").is_file():
        raise XLMRDSError(f"--data {args.data}: not a complete `xlmr-ds binarize` output (no manifest.json)")
    for flag in ("micro_batch", "steps", "processes"):
        if getattr(args, flag) < 1:
            raise XLMRDSError(f"--{flag.replace('_', '-')}={getattr(args, flag)} must be at least 1")
    if args.warmup_steps < 0:
        raise XLMRDSError(f"--warmup-steps={args.warmup_steps} must be 0 or more")
    limit = preset(args.model).max_sequence_length
    if not 8 <= args.seq <= limit:
        raise XLMRDSError(f"--seq={args.seq} must be between 8 and {limit} for model {args.model}")
    if not 0.0 <= args.padding <= 0.9:
        raise XLMRDSError(f"--padding={args.padding} must be between 0 and 0.9")
    if args.deepspeed_config is None:
        name = "base_zero2_bf16.json" if torch.cuda.is_available() else "tiny_cpu_zero2.json"
        args.deepspeed_config = str(CONFIGS / name)
    if not Path(args.deepspeed_config).is_file():
        raise XLMRDSError(f"--deepspeed_config {args.deepspeed_config}: no such file")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _worker_command(args: argparse.Namespace, impl: str, out: Path, fixed_batch: bool = False) -> list[str]:
    passthrough = ["--impl", impl, "--model", args.model, "--seq", str(args.seq), "--micro-batch",
                   str(args.micro_batch), "--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps),
                   "--padding", str(args.padding), "--deepspeed_config", args.deepspeed_config,
                   "--seed", str(args.seed), "--out", str(out)]
    for flag, value in (("--vocab-size", args.vocab_size), ("--peak-tflops", args.peak_tflops),
                        ("--data", args.data), ("--num-workers", args.num_workers)):
        if value is not None:
            passthrough += [flag, str(value)]
    if args.fixed_batch or fixed_batch:
        passthrough.append("--fixed-batch")
    if args.activation_checkpointing:
        passthrough.append("--activation-checkpointing")
    if args.processes == 1:
        return [sys.executable, "-m", "xlmr_ds.bench", *passthrough]
    launcher = Path(sys.executable).parent / "deepspeed"
    return [str(launcher), "--num_gpus", str(args.processes), "--master_port", str(_free_port()),
            "--module", "xlmr_ds.bench", *passthrough]


def hardware() -> dict:
    info = {"machine": platform.machine(), "cpu": _cpu_name(), "cpu_cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["gpu_count"] = torch.cuda.device_count()
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(args: argparse.Namespace) -> int:
    _check(args)
    jobs = [("xlmr-ds", False)] + ([("hf", False)] if args.compare else []) + (
        [("xlmr-ds", True)] if args.data_gap and not args.fixed_batch else [])
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    results = []
    with tempfile.TemporaryDirectory(prefix="xlmr-ds-bench-") as scratch:
        for number, (impl, fixed_batch) in enumerate(jobs):
            out = Path(scratch) / f"{number}.json"
            print(f"[xlmr-ds bench] {impl}{' (fixed batch)' if fixed_batch else ''}: {args.model}, seq {args.seq}, "
                  f"micro-batch {args.micro_batch}, {args.processes} process(es), {args.steps} timed steps", flush=True)
            try:
                finished = subprocess.run(_worker_command(args, impl, out, fixed_batch), env=env,
                                          capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                raise XLMRDSError(f"the {impl} benchmark ran past --timeout {args.timeout} s") from None
            if finished.returncode != 0 or not out.is_file():
                tail = (finished.stderr or finished.stdout).strip().splitlines()[-1:] or ["no output"]
                raise XLMRDSError(f"the {impl} benchmark failed (exit {finished.returncode}): {tail[0]}")
            results.append(json.loads(out.read_text()))
    rows = [(r["impl"] + (" (fixed batch)" if r["fixed_batch"] and not args.fixed_batch else ""), f"{r['tokens_per_s']:,.0f}", f"{r['sequences_per_s']:,.2f}", f"{r['step_time_s'] * 1e3:,.1f}",
             f"{r['peak_memory_gib']:.2f} ({r['peak_memory_kind']})",
             f"{r['mfu']:.1%}" if r["mfu"] is not None else f"{r['model_tflops_per_s']:.3f} TFLOP/s") for r in results]
    print(format_table(("impl", "tokens/s", "sequences/s", "step ms", "peak memory GiB", "MFU or model FLOP/s"), rows))
    report = {"hardware": hardware(), "results": results}
    if args.data_gap and not args.fixed_batch:
        with_data, without = results[0]["step_time_s"], results[-1]["step_time_s"]
        report["data_gap"] = (with_data - without) / with_data
        print(f"data gap: {report['data_gap']:+.1%} of the step ({with_data * 1e3:,.1f} ms with data, "
              f"{without * 1e3:,.1f} ms on a fixed batch)")
    if args.compare:
        report["ratio"] = results[0]["tokens_per_s"] / results[1]["tokens_per_s"]
        report["ratio_definition"] = "xlmr-ds tokens/s / hf tokens/s, same batches, config and processes"
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.compare:
        print(f"ratio: {report['ratio']:.2f} (xlmr-ds / hf)")
    return 0
