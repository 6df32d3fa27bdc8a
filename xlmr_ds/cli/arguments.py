"""What every command's parser shares: one-line errors, value checks written once, command groups, --model.

Two kinds of checks, both here so that each is written once: argparse types (`positive_int`, ...,
`output_directory` and `output_file` for every path a command writes) for a value that is wrong on its own,
reported by argparse as `argument --steps: -1 must be at least 1` (exit 2), before any work starts;
and `require_at_least` for commands that check their flags after parsing, as `--steps=-3 must be at least 1`
(exit 1, like every other error a command finds in its input).
"""

from __future__ import annotations

import argparse

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model.config import PRESETS, XLMRConfig, preset
from xlmr_ds.outputs import check_output_directory, check_output_file, check_output_prefix


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; we print only the error, on one line, and exit 2."""

    def __init__(self, *args, help_command: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.help_command = help_command

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.help_command or self.prog} --help)\n")


def _number(kind, minimum, strict: bool, words: str):
    def parse(value: str):
        number = kind(value)
        if number < minimum or (strict and not number > minimum):
            raise argparse.ArgumentTypeError(f"{value} {words}")
        return number
    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return parse


positive_int = _number(int, 1, False, "must be at least 1")
non_negative_int = _number(int, 0, False, "must be 0 or more")
positive_float = _number(float, 0.0, True, "must be more than 0")


def _output_path(check, name: str):
    def parse(value: str) -> str:
        try:
            check(value)
        except XLMRDSError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value
    parse.__name__ = name
    return parse


output_directory = _output_path(check_output_directory, "output directory")
"""A directory the command writes: not a file, not under one (xlmr_ds/outputs.py)."""
output_file = _output_path(check_output_file, "output file")
"""A file the command writes: not a directory, not under a file."""
spm_prefix = _output_path(lambda prefix: check_output_prefix(prefix, (".model", ".vocab")), "output prefix")
"""PREFIX of a SentencePiece model's PREFIX.model and PREFIX.vocab."""
OUTPUT_TYPES = (output_directory, output_file, spm_prefix)


def require_at_least(args: argparse.Namespace, minimum: int, *names: str) -> None:
    """Refuse the first of `names` (argparse dests) whose value is below `minimum`, naming its flag."""
    for name in names:
        value = getattr(args, name)
        if value < minimum:
            raise XLMRDSError(f"--{name.replace('_', '-')}={value} must be at least {minimum}")


def add_command_group(commands, name: str, help: str):
    """Register a parent command such as `spm` (for `xlmr-ds spm train`) and return the action its subcommands
    are added to; they share its one-line error style."""
    group = commands.add_parser(name, help=help)
    return group.add_subparsers(title=f"{name} commands", required=True, metavar="COMMAND", parser_class=type(group))


def add_model_arguments(parser: argparse.ArgumentParser, default: str | None = "tiny") -> None:
    """The --model / --model-config pair of every command that builds a model."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--model", choices=list(PRESETS), default=default, help=f"preset (default: {default})")
    group.add_argument("--model-config", metavar="FILE", help="JSON file of XLMRConfig fields instead of a preset")


def model_config_from_args(args: argparse.Namespace) -> tuple[str, XLMRConfig]:
    """(a display name, the config) from --model or --model-config."""
    if args.model_config:
        return args.model_config, XLMRConfig.from_json(args.model_config)
    return args.model, preset(args.model)


def add_text_field_argument(parser: argparse.ArgumentParser) -> None:
    """--text-field: which field of JSON-lines records / column of parquet shards holds the text."""
    from xlmr_ds.prep.shard_reader import DEFAULT_TEXT_FIELD

    parser.add_argument("--text-field", default=DEFAULT_TEXT_FIELD, metavar="NAME",
                        help=f"JSON-lines field / parquet column holding the text (default {DEFAULT_TEXT_FIELD!r})")
