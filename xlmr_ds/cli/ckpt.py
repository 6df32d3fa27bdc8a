"""`xlmr-ds ckpt list DIR`, `xlmr-ds ckpt universal DIR/step_N` and `xlmr-ds export`."""

from __future__ import annotations

import argparse
from pathlib import Path

from xlmr_ds.cli.arguments import add_command_group, output_directory
from xlmr_ds.cli.table import format_table


def register(commands) -> None:
    ckpt_commands = add_command_group(commands, "ckpt", "training checkpoints")
    listing = ckpt_commands.add_parser("list", help="each checkpoint: step, world size, ZeRO stage, complete or not")
    listing.add_argument("save_dir", metavar="DIR")
    listing.set_defaults(run=run_list)
    universal = ckpt_commands.add_parser("universal", help="convert a checkpoint for another world size")
    universal.add_argument("checkpoint", metavar="DIR/step_N")
    universal.set_defaults(run=run_universal)

    export = commands.add_parser("export", help="write a checkpoint as a Hugging Face model directory")
    export.add_argument("--ckpt", required=True, metavar="DIR", help="the training --save directory")
    export.add_argument("--step", type=int, help="which checkpoint (default: the newest complete one)")
    export.add_argument("--out", required=True, type=output_directory, metavar="HF_DIR")
    export.add_argument("--spm", metavar="MODEL", help="SentencePiece model (default: the one the run used)")
    export.set_defaults(run=run_export)


def run_list(args: argparse.Namespace) -> int:
    from xlmr_ds.engine.checkpoint import MARKER, list_checkpoints

    checkpoints = list_checkpoints(args.save_dir)
    if not checkpoints:
        print(f"{args.save_dir}: no checkpoints")
        return 0
    rows = []
    for info in checkpoints:
        marker = info.marker or {}
        samples = marker.get("state", {}).get("data", {}).get("consumed_samples", "?")
        rows.append((info.path.name, str(info.step), str(marker.get("world_size", "?")),
                     str(marker.get("zero_stage", "?")), str(samples),
                     "complete" if info.complete else f"INCOMPLETE (no {MARKER}; ignored by --resume auto)"))
    print(format_table(("checkpoint", "step", "world size", "ZeRO", "samples", "state"), rows))
    return 0


def run_universal(args: argparse.Namespace) -> int:
    from xlmr_ds.engine.checkpoint import convert_to_universal, resolve_resume

    info, _ = resolve_resume(str(Path(args.checkpoint)), None)  # refuses a checkpoint without its marker
    target = convert_to_universal(info)
    print(f"wrote {target}; resuming on another number of processes loads it automatically")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from xlmr_ds.engine.export import export_checkpoint

    info = export_checkpoint(args.ckpt, args.out, args.step, args.spm)
    print(f"exported {info.path} (step {info.step}) to {args.out}: config.json, model.safetensors, tokenizer files")
    return 0
