"""`xlmr-ds` and `python -m xlmr_ds`: one subcommand per module, user errors printed on one line."""

from __future__ import annotations

import argparse
import sys

from xlmr_ds import __version__
from xlmr_ds.cli import (bench, binarize, ckpt, corpus, data, evaluate, fill_mask, info, launch, plan, report, smoke,
                         spm)
from xlmr_ds.errors import XLMRDSError

SUBCOMMANDS = (info, plan, corpus, spm, binarize, data, ckpt, evaluate, fill_mask, report, smoke, bench, launch)


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; we print only the error, on one line, and exit 2."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="xlmr-ds", description=__doc__)
    parser.add_argument("--version", action="version", version=f"xlmr-ds {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND",
                                     parser_class=OneLineErrorParser)
    for module in SUBCOMMANDS:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except XLMRDSError as error:
        print(f"xlmr-ds: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("xlmr-ds: interrupted", file=sys.stderr)
        return 130
