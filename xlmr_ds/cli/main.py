"""`xlmr-ds` and `python -m xlmr_ds`: one subcommand per module, user errors printed on one line."""

from __future__ import annotations

import argparse
import os
import sys

from xlmr_ds import __version__
from xlmr_ds.cli import (
    bench,
    binarize,
    ckpt,
    compare,
    corpus,
    data,
    evaluate,
    fill_mask,
    finetune,
    info,
    launch,
    model,
    plan,
    report,
    smoke,
    spm,
    task,
    train,
)
from xlmr_ds.cli.arguments import OneLineErrorParser
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.logs import configure_logging
from xlmr_ds.world import launcher_rank

SUBCOMMANDS = (info, plan, corpus, spm, binarize, data, train, model, task, finetune, ckpt, evaluate, fill_mask,
               report, compare, smoke, bench, launch)


def build_parser() -> OneLineErrorParser:
    parser = OneLineErrorParser(prog="xlmr-ds", description=__doc__)
    parser.add_argument("--version", action="version", version=f"xlmr-ds {__version__}")
    parser.add_argument("-v", "--verbose", dest="verbose_all", action="store_true",
                        help="also show the libraries' warnings and info lines (or set XLMR_DS_VERBOSE=1)")
    # `deepspeed --module xlmr_ds eval transfer ...` puts the launcher's --local_rank before the command.
    parser.add_argument("--local_rank", type=int, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND",
                                     parser_class=OneLineErrorParser)
    for module in SUBCOMMANDS:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(rank=launcher_rank(), verbose=args.verbose_all or getattr(args, "verbose", False))
    try:
        code = args.run(args) or 0
    except XLMRDSError as error:
        print(f"xlmr-ds: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("xlmr-ds: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `xlmr-ds info ... | head`: the reader has gone, nothing is wrong. stdout now points at /dev/null so that
        # the interpreter's last flush does not raise again; 141 is what a program killed by SIGPIPE returns.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    if getattr(args, "exits_without_finalizing", False):
        from xlmr_ds.engine.guards.teardown import exit_process

        exit_process(code)  # a finished training job (engine/guards/teardown.py says why)
    return code
