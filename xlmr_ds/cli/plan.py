"""`xlmr-ds plan`: memory per GPU, whether it fits, FLOPs, steps, days and GPU-hours, the data preparation's
time, and the ds_config."""

from __future__ import annotations

import argparse
import json

from xlmr_ds.cli.arguments import add_model_arguments, model_config_from_args, output_file, require_at_least
from xlmr_ds.cli.table import format_table
from xlmr_ds.engine.ds_config import shipped_configs_dir
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model.architectures import ALL_ARCHITECTURES
from xlmr_ds.outputs import write_text_atomically

GIB = 1024**3


def register(commands) -> None:
    parser = commands.add_parser("plan", help="will a run fit, and what will it cost")
    add_model_arguments(parser, default="large", architectures=ALL_ARCHITECTURES)
    parser.add_argument("--gpus", type=int, required=True)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--gpu", default="h100", help="a100, h100 or h200 (memory and peak from a table)")
    parser.add_argument("--zero", type=int, default=2, help="ZeRO stage 1, 2 or 3")
    parser.add_argument("--micro-batch", type=int, required=True)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--global-batch", type=int, required=True)
    parser.add_argument("--tokens", type=float, required=True, help="tokens to train on, e.g. 6.3e12")
    parser.add_argument("--mfu", type=float, default=0.4, help="model FLOP utilization to assume (default 0.4)")
    parser.add_argument("--peak-tflops", type=float, help="override the table's bf16 peak per GPU")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--corpus-bytes", type=float, default=2.5e12,
                        help="size of the corpus to prepare (corpus build, binarize, block index), e.g. 2.5e12 "
                             "(the default: CC-100)")
    parser.add_argument("--prep-cores-per-node", type=int, default=16,
                        help="CPU cores per node that corpus build and binarize run on (default 16)")
    parser.add_argument("--write-config", type=output_file, metavar="FILE",
                        help="write the DeepSpeed config this plan would use")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def _check(args: argparse.Namespace, config) -> None:
    from xlmr_ds.estimate.planning import GPU_MEMORY_GIB

    if args.gpu not in GPU_MEMORY_GIB:
        raise XLMRDSError(f"--gpu {args.gpu!r} is not in the table; use one of {', '.join(GPU_MEMORY_GIB)}")
    require_at_least(args, 1, "gpus", "gpus_per_node", "micro_batch", "seq", "global_batch", "prep_cores_per_node")
    if args.gpus % args.gpus_per_node:
        raise XLMRDSError(f"--gpus={args.gpus} is not a multiple of --gpus-per-node={args.gpus_per_node}")
    if args.zero not in (1, 2, 3):
        raise XLMRDSError(f"--zero={args.zero} must be 1, 2 or 3")
    if args.seq > config.max_sequence_length:
        raise XLMRDSError(f"--seq={args.seq} exceeds the model's {config.max_sequence_length} positions")
    if args.global_batch % (args.micro_batch * args.gpus):
        raise XLMRDSError(f"--global-batch={args.global_batch} is not a multiple of --micro-batch x --gpus = "
                          f"{args.micro_batch * args.gpus}; choose a global batch of micro x accumulation x gpus")
    if not 0 < args.mfu <= 1:
        raise XLMRDSError(f"--mfu={args.mfu} must be in (0, 1]")
    if args.tokens <= 0:
        raise XLMRDSError(f"--tokens={args.tokens} must be positive")
    if args.corpus_bytes <= 0:
        raise XLMRDSError(f"--corpus-bytes={args.corpus_bytes} must be positive")


def run(args: argparse.Namespace) -> int:
    from xlmr_ds.estimate.data_prep import corpus_lines, data_prep_times
    from xlmr_ds.estimate.planning import USABLE_MEMORY, make_plan, planned_ds_config

    name, config = model_config_from_args(args)
    _check(args, config)
    plan = make_plan(config, args.gpus, args.gpus_per_node, args.gpu, args.zero, args.micro_batch, args.seq,
                     args.global_batch, args.tokens, args.mfu, args.peak_tflops, args.activation_checkpointing)
    nodes, lines = args.gpus // args.gpus_per_node, corpus_lines(args.corpus_bytes)
    # The block index is built by the training job's processes, one per GPU.
    prep = data_prep_times(args.corpus_bytes, lines, nodes, args.prep_cores_per_node, index_processes=args.gpus)
    ds_config = planned_ds_config(name if args.model_config is None else "large", args.zero, plan,
                                  args.global_batch, shipped_configs_dir())
    if args.write_config:
        write_text_atomically(args.write_config, json.dumps(ds_config, indent=2) + "\n")
    if args.json:
        print(json.dumps({
            "parameters": plan.parameters, "weights": plan.weights, "gradients": plan.gradients,
            "optimizer": plan.optimizer, "deepspeed_model_states": plan.deepspeed_model_states,
            "activations": plan.activations, "activations_checkpointed": plan.activations_checkpointed,
            "lm_head": plan.lm_head, "total": plan.total, "fits": plan.fits, "gpu_memory": plan.gpu_memory,
            "flops_per_step": plan.flops_per_step, "steps": plan.steps, "days": plan.days,
            "gpu_hours": plan.gpu_hours, "accumulation": plan.accumulation,
            "data_prep": {"corpus_bytes": args.corpus_bytes, "lines": lines, "nodes": nodes,
                          "cores_per_node": args.prep_cores_per_node, "index_processes": args.gpus,
                          "build_seconds": prep.build, "binarize_seconds": prep.binarize,
                          "index_seconds": prep.index, "total_seconds": prep.total},
            "ds_config": ds_config}, indent=2))
        return 0
    used = "with" if args.activation_checkpointing else "without"
    rows = [("weights (bf16)", plan.weights), ("gradients (bf16)", plan.gradients),
            ("optimizer (fp32 master, m, v)", plan.optimizer),
            ("activations, no checkpointing", plan.activations),
            ("activations, with checkpointing", plan.activations_checkpointed),
            ("LM head (masked positions)", plan.lm_head),
            (f"total ({used} checkpointing)", plan.total)]
    print(f"model {name}: {plan.parameters:,} parameters; {args.gpus} x {args.gpu.upper()} "
          f"({nodes} node{'s' if nodes > 1 else ''}), ZeRO-{args.zero}, micro-batch {args.micro_batch} x "
          f"accumulation {plan.accumulation} x {args.gpus} GPUs = {args.global_batch} sequences of {args.seq}")
    print(format_table(("memory per GPU", "GiB"), [(label, f"{value / GIB:.2f}") for label, value in rows]))
    print(f"DeepSpeed's estimate of model states per GPU: {plan.deepspeed_model_states / GIB:.2f} GiB")
    verdict = "fits" if plan.fits else "does NOT fit"
    print(f"{verdict}: {plan.total / GIB:.1f} GiB of {plan.gpu_memory / GIB:.0f} GiB "
          f"({USABLE_MEMORY:.0%} usable)")
    print(f"compute: {plan.flops_per_step / 1e15:,.1f} PFLOP per step, {plan.steps:,} steps for "
          f"{args.tokens:.3g} tokens; "
          f"at {args.mfu:.0%} MFU: {plan.days:,.1f} days, {plan.gpu_hours:,.0f} GPU-hours")
    cores = nodes * args.prep_cores_per_node
    on_nodes = f"{nodes} node{'s' if nodes > 1 else ''} x {args.prep_cores_per_node} cores"
    print(f"data preparation: {args.corpus_bytes / 1e12:,.3g} TB corpus, {lines / 1e9:,.2f}B lines (CC-100's shape) on "
          f"{on_nodes}: {prep.total / 3600:,.1f} hours before training")
    print(format_table(("data preparation", "hours"), [
        (f"corpus build ({cores:,} cores)", f"{prep.build / 3600:,.2f}"),
        (f"binarize ({cores:,} cores)", f"{prep.binarize / 3600:,.2f}"),
        (f"block index ({args.gpus:,} processes)", f"{prep.index / 3600:,.2f}"),
        ("total", f"{prep.total / 3600:,.2f}")]))
    print("ds_config:" if not args.write_config else f"ds_config written to {args.write_config}:")
    if not args.write_config:
        print(json.dumps(ds_config, indent=2))
    return 0
