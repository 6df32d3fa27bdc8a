"""`xlmr-ds finetune`: fine-tune a pretrained checkpoint or Hugging Face model on a task and score every test
language (cross-lingual transfer). One process as it is; launchers run `deepspeed --module xlmr_ds.finetune`.

The flags are FinetuneSettings' fields (`FLAGS`: their defaults, docstrings as help, Literal types as choices),
and FinetuneSettings refuses wrong values itself, with the error lines this command prints."""

from __future__ import annotations

import argparse
import os

from xlmr_ds.cli.arguments import (
    SettingFlag,
    add_setting_flags,
    output_directory,
    positive_float,
    positive_int,
    setting_values,
)
from xlmr_ds.cli.table import format_table
from xlmr_ds.config import PolicySettings
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.logs import configure_logging, error_line
from xlmr_ds.tasks.formats import TaskFile
from xlmr_ds.tasks.settings import FinetuneSettings
from xlmr_ds.world import launcher_placement

PROG = "xlmr_ds.finetune"

FLAGS = (
    SettingFlag("--task", FinetuneSettings, "task", required=True),
    SettingFlag("--model", FinetuneSettings, "model", required=True, metavar="CKPT_DIR|HF_DIR"),
    SettingFlag("--step", FinetuneSettings, "step", type=int),
    SettingFlag("--train", FinetuneSettings, "train", required=True, nargs="+", metavar="[LANG=]FILE"),
    SettingFlag("--valid", FinetuneSettings, "valid", nargs="+", metavar="[LANG=]FILE"),
    SettingFlag("--test", FinetuneSettings, "test", required=True, nargs="+", metavar="LANG=FILE"),
    SettingFlag("--out", FinetuneSettings, "out", required=True, type=output_directory, metavar="DIR"),
    SettingFlag("--deepspeed_config", FinetuneSettings, "deepspeed_config", metavar="FILE"),
    SettingFlag("--epochs", FinetuneSettings, "epochs", type=positive_int),
    SettingFlag("--lr", FinetuneSettings, "lr", type=positive_float),
    SettingFlag("--batch-size", FinetuneSettings, "batch_size", type=positive_int),
    SettingFlag("--max-length", FinetuneSettings, "max_length", type=positive_int),
    SettingFlag("--doc-stride", FinetuneSettings, "doc_stride", type=positive_int),
    SettingFlag("--seed", FinetuneSettings, "seed", type=int),
    SettingFlag("--select-on", FinetuneSettings, "select_on"),
    SettingFlag("--warmup-fraction", FinetuneSettings, "warmup_fraction", type=float),
    SettingFlag("--eval-batch-size", FinetuneSettings, "eval_batch_size", type=positive_int),
    # Not a setting of the fine-tuning itself but of the job's processes, as in a training run.
    SettingFlag("--dist-timeout-minutes", PolicySettings, "dist_timeout_minutes", type=positive_float, metavar="M"),
)
"""Every flag that sets a field of FinetuneSettings (and the process timeout), in --help's order."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_flags(parser, FLAGS)
    parser.add_argument("-v", "--verbose", action="store_true", help="also show the libraries' warnings")
    parser.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)),
                        help=argparse.SUPPRESS)  # added by the deepspeed launcher


def settings_from_args(args: argparse.Namespace) -> FinetuneSettings:
    """The settings the flags describe; FinetuneSettings checks its values itself (tasks/settings.py)."""
    files = {"train": tuple(TaskFile.parse(s, "--train") for s in args.train),
             "valid": tuple(TaskFile.parse(s, "--valid") for s in args.valid),
             "test": tuple(TaskFile.parse(s, "--test", language_required=True) for s in args.test)}
    return FinetuneSettings(**{**setting_values(FinetuneSettings, FLAGS, args), **files})


def print_table(table, rank: int = 0) -> None:
    if rank == 0:
        print(format_table(table.header(), table.rows()), flush=True)


def register(commands) -> None:
    parser = commands.add_parser("finetune", help="fine-tune on a task and score every test language (zero-shot)")
    add_arguments(parser)
    parser.set_defaults(run=run, exits_without_finalizing=True)


def run(args: argparse.Namespace) -> int:
    placed = launcher_placement()
    rank = placed[0] if placed else 0
    configure_logging(rank=rank, verbose=args.verbose)
    prefix = f"[rank {rank}] " if placed else ""
    try:
        settings = settings_from_args(args)
        from xlmr_ds.engine.finetune import FineTuner

        table = FineTuner(settings, args.dist_timeout_minutes).run()
    except XLMRDSError as error:
        error_line(f"{prefix}xlmr-ds finetune: error: {error}")
        return 1
    print_table(table, rank)
    if rank == 0:
        print(f"results: {settings.out}/results.md; model: {settings.out}/model", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    from xlmr_ds.cli.arguments import OneLineErrorParser

    parser = OneLineErrorParser(prog=PROG, description=__doc__, help_command=f"python -m {PROG}")
    add_arguments(parser)
    return run(parser.parse_args(argv))
