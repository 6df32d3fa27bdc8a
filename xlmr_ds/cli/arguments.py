"""What every command's parser shares: one-line errors, value checks written once, command groups, --model,
and flags made from the fields of a settings dataclass (`SettingFlag`).

Two kinds of checks, both here so that each is written once: argparse types (`positive_int`, ...,
`output_directory` and `output_file` for every path a command writes) for a value that is wrong on its own,
reported by argparse as `argument --steps: -1 must be at least 1` (exit 2), before any work starts;
and `require_at_least` for commands that check their flags after parsing, as `--steps=-3 must be at least 1`
(exit 1, like every other error a command finds in its input). Both say it in xlmr_ds/errors.py's words, which
the settings dataclasses use to refuse the same values when they are built in Python.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import re
import textwrap
import typing

from xlmr_ds.errors import XLMRDSError, below_minimum, require_minimum
from xlmr_ds.model.architectures import (
    XLMR,
    ModelConfig,
    preset_config,
    preset_names,
    read_config_file,
    require_architecture,
)
from xlmr_ds.outputs import check_output_directory, check_output_file, check_output_prefix


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; we print only the error, on one line, and exit 2."""

    def __init__(self, *args, help_command: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.help_command = help_command

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.help_command or self.prog} --help)\n")


def _number(kind, minimum, strict: bool = False):
    def parse(value: str):
        number = kind(value)
        problem = below_minimum(number, minimum, strict)
        if problem:
            raise argparse.ArgumentTypeError(f"{value} {problem}")
        return number
    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return parse


positive_int = _number(int, 1)
non_negative_int = _number(int, 0)
positive_float = _number(float, 0.0, strict=True)


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
        require_minimum(f"--{name.replace('_', '-')}", getattr(args, name), minimum)


def add_command_group(commands, name: str, help: str):
    """Register a parent command such as `spm` (for `xlmr-ds spm train`) and return the action its subcommands
    are added to; they share its one-line error style."""
    group = commands.add_parser(name, help=help)
    return group.add_subparsers(title=f"{name} commands", required=True, metavar="COMMAND", parser_class=type(group))


def add_model_arguments(parser: argparse.ArgumentParser, default: str | None = "tiny",
                        architectures: tuple[str, ...] = (XLMR,)) -> None:
    """The --model / --model-config pair of every command that builds a model, offering the presets of the
    `architectures` the command runs (model/architectures.py)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--model", choices=preset_names(architectures), default=default,
                       help=f"preset (default: {default})")
    group.add_argument("--model-config", metavar="FILE",
                       help="JSON file of a model config's fields instead of a preset (its \"architecture\" key: "
                            f"{' or '.join(architectures)}; xlmr when it has none)")
    parser.set_defaults(model_architectures=architectures, model_command=parser.prog)


def model_config_from_args(args: argparse.Namespace) -> tuple[str, ModelConfig]:
    """(a display name, the config) from --model or --model-config, of an architecture the command runs."""
    if args.model_config:
        name, config = args.model_config, read_config_file(args.model_config)
    else:
        name, config = args.model, preset_config(args.model)
    require_architecture(config, getattr(args, "model_architectures", (XLMR,)), name,
                         getattr(args, "model_command", "this command"))
    return name, config


def add_text_field_argument(parser: argparse.ArgumentParser) -> None:
    """--text-field: which field of JSON-lines records / column of parquet shards holds the text."""
    from xlmr_ds.prep.corpus.reader import DEFAULT_TEXT_FIELD

    parser.add_argument("--text-field", default=DEFAULT_TEXT_FIELD, metavar="NAME",
                        help=f"JSON-lines field / parquet column holding the text (default {DEFAULT_TEXT_FIELD!r})")


class SettingFlag:
    """A flag that sets one field of a settings dataclass. Its default, its help (the field's docstring) and its
    choices (a Literal type's values) are the field's, written once there; `options` are argparse's other
    keywords (type, metavar, action, nargs, required; a default or choices of the flag's own). Flags with the
    same `exclusive` name are a mutually exclusive group."""

    def __init__(self, name: str, settings: type, field: str, exclusive: str | None = None, **options):
        self.name, self.settings, self.field, self.exclusive, self.options = name, settings, field, exclusive, options

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")

    def keywords(self, flag_names: dict[str, str]) -> dict:
        """add_argument's keywords: the field's default, help and choices, then this flag's own options."""
        keywords = {"default": field_default(self.settings, self.field),
                    "help": field_help(self.settings, self.field, flag_names)}
        choices = literal_choices(self.settings, self.field)
        if choices:
            keywords["choices"] = choices
        return {**keywords, **self.options}


def add_setting_flags(parser: argparse.ArgumentParser, flags) -> None:
    """Add `flags` (SettingFlags) in their order; a help that names another flag's field names the flag."""
    flag_names = {flag.field: flag.name for flag in flags}
    groups = {}
    for flag in flags:
        if flag.exclusive and flag.exclusive not in groups:
            groups[flag.exclusive] = parser.add_mutually_exclusive_group()
        container = groups[flag.exclusive] if flag.exclusive else parser
        container.add_argument(flag.name, **flag.keywords(flag_names))


def setting_values(settings: type, flags, args: argparse.Namespace) -> dict:
    """{field: the parsed value} of the `flags` that set fields of `settings`."""
    return {flag.field: getattr(args, flag.dest) for flag in flags if flag.settings is settings}


def field_default(settings: type, name: str):
    """A dataclass field's default (None for a field without one)."""
    field = next(f for f in dataclasses.fields(settings) if f.name == name)
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None if field.default is dataclasses.MISSING else field.default


def literal_choices(settings: type, name: str) -> tuple | None:
    """The values a field typed Literal[...] allows, or None for a field of another type."""
    kind = typing.get_type_hints(settings)[name]
    return typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else None


# A field named in a docstring, in backquotes: `save_dir`.
_FIELD_NAME = re.compile(r"`(\w+)`")


def field_help(settings: type, name: str, flag_names: dict[str, str]) -> str:
    """A field's docstring as one paragraph of --help, the fields it names (in backquotes) that have flags named
    as flags (`save_dir`: --save), and its default unless that is None or off."""
    text = " ".join(field_docs(settings).get(name, "").split())
    text = _FIELD_NAME.sub(lambda match: flag_names.get(match[1], match[0]), text)
    default = field_default(settings, name)
    if default is not None and not isinstance(default, (bool, tuple)):
        text += f" Default: {format(default, 'g') if isinstance(default, float) else default}."
    return text.replace("%", "%%")  # argparse formats help with %


@functools.cache
def field_docs(settings: type) -> dict[str, str]:
    """{field: its docstring} of a dataclass, read from its source (Python keeps no docstring of a field)."""
    try:
        source = textwrap.dedent(inspect.getsource(settings))
    except OSError:  # no source installed: help without the docstrings
        return {}
    body = ast.parse(source).body[0].body
    return {statement.target.id: inspect.cleandoc(following.value.value)
            for statement, following in zip(body, body[1:])
            if isinstance(statement, ast.AnnAssign) and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant) and isinstance(following.value.value, str)}
