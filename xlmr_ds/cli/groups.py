"""Command groups such as `xlmr-ds spm train`: a parent command whose subcommands share its error style."""

from __future__ import annotations


def add_command_group(commands, name: str, help: str):
    """Register `name` under `commands` and return the action its subcommands are added to."""
    group = commands.add_parser(name, help=help)
    return group.add_subparsers(title=f"{name} commands", required=True, metavar="COMMAND", parser_class=type(group))
