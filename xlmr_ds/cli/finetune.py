"""`xlmr-ds finetune`: fine-tune a pretrained checkpoint or Hugging Face model on a task and score every test
language (cross-lingual transfer). One process as it is; launchers run `deepspeed --module xlmr_ds.finetune`."""

from __future__ import annotations

import argparse
import os

from xlmr_ds.cli.arguments import output_directory, positive_float, positive_int
from xlmr_ds.cli.table import format_table
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.logs import configure_logging, error_line
from xlmr_ds.tasks.formats import TASKS, TaskFile
from xlmr_ds.tasks.settings import SELECT_ON, FinetuneSettings
from xlmr_ds.world import launcher_placement

PROG = "xlmr_ds.finetune"
_DEFAULTS = FinetuneSettings("", "", (), (), "")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--model", required=True, metavar="CKPT_DIR|HF_DIR",
                        help="a pretraining --save directory (newest complete checkpoint, or --step) or a Hugging "
                             "Face directory with its tokenizer (sentencepiece.bpe.model or tokenizer.json); a "
                             "classifier's encoder too (its head is replaced)")
    parser.add_argument("--step", type=int, help="with a pretraining directory: the checkpoint to fine-tune")
    parser.add_argument("--train", required=True, nargs="+", metavar="[LANG=]FILE",
                        help="training files; several languages for translate-train-all (the languages are the "
                             "source: from LANG=, an XNLI language column, `lang:` token prefixes or the name)")
    parser.add_argument("--valid", nargs="+", default=[], metavar="[LANG=]FILE", help="dev files, to pick the epoch")
    parser.add_argument("--test", required=True, nargs="+", metavar="LANG=FILE", help="one test file per language")
    parser.add_argument("--out", required=True, type=output_directory, metavar="DIR",
                        help="results, metrics.jsonl and the model")
    parser.add_argument("--deepspeed_config", metavar="FILE",
                        help="DeepSpeed JSON config (default: the shipped ds_configs/finetune.json, ZeRO-0)")
    parser.add_argument("--epochs", type=positive_int, default=_DEFAULTS.epochs)
    parser.add_argument("--lr", type=positive_float, default=_DEFAULTS.lr, help=f"peak learning rate "
                                                                                f"(default {_DEFAULTS.lr:g})")
    parser.add_argument("--batch-size", type=positive_int, default=_DEFAULTS.batch_size,
                        help=f"examples per step over all processes (default {_DEFAULTS.batch_size})")
    parser.add_argument("--max-length", type=positive_int, default=_DEFAULTS.max_length,
                        help=f"tokens per example (default {_DEFAULTS.max_length})")
    parser.add_argument("--doc-stride", type=positive_int, default=_DEFAULTS.doc_stride,
                        help=f"question-answering: pieces shared by consecutive windows over a long context "
                             f"(default {_DEFAULTS.doc_stride})")
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    parser.add_argument("--select-on", choices=SELECT_ON, default=_DEFAULTS.select_on,
                        help="dev sets that pick the best epoch: the source languages' (default) or all")
    parser.add_argument("--warmup-fraction", type=float, default=_DEFAULTS.warmup_fraction,
                        help="share of steps warming up when the config says warmup_num_steps \"auto\"")
    parser.add_argument("--eval-batch-size", type=positive_int, default=_DEFAULTS.eval_batch_size)
    parser.add_argument("--dist-timeout-minutes", type=positive_float, default=30.0, metavar="M")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show the libraries' warnings")
    parser.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)),
                        help=argparse.SUPPRESS)  # added by the deepspeed launcher


def settings_from_args(args: argparse.Namespace) -> FinetuneSettings:
    if not 0.0 <= args.warmup_fraction < 1.0:
        raise XLMRDSError(f"--warmup-fraction={args.warmup_fraction} must be in [0, 1)")
    return FinetuneSettings(
        task=args.task, model=args.model, step=args.step,
        train=tuple(TaskFile.parse(s, "--train") for s in args.train),
        valid=tuple(TaskFile.parse(s, "--valid") for s in args.valid),
        test=tuple(TaskFile.parse(s, "--test", language_required=True) for s in args.test),
        out=args.out, deepspeed_config=args.deepspeed_config, epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size, max_length=args.max_length, seed=args.seed, select_on=args.select_on,
        warmup_fraction=args.warmup_fraction, eval_batch_size=args.eval_batch_size, doc_stride=args.doc_stride)


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
