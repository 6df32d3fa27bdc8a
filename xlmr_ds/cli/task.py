"""`xlmr-ds task demo`: write the demo's cross-lingual task and parallel strings (from CLDR, offline)."""

from __future__ import annotations

import argparse

from xlmr_ds.cli.arguments import add_command_group, output_directory
from xlmr_ds.prep.demo.task import DEFAULT_LANGUAGES


def register(commands) -> None:
    task_commands = add_command_group(commands, "task", "fine-tuning and evaluation task files")
    demo = task_commands.add_parser("demo", help="the demo's task: country, language or currency name? (CLDR)")
    demo.add_argument("--out", required=True, type=output_directory, metavar="DIR")
    demo.add_argument("--languages", nargs="+", default=list(DEFAULT_LANGUAGES),
                      help=f"task languages, English included (default {' '.join(DEFAULT_LANGUAGES)})")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from xlmr_ds.prep.demo.task import write_demo_task

    counts = write_demo_task(args.out, tuple(args.languages), args.seed)
    tests = ", ".join(f"{label} {n}" for label, n in counts["test"].items())
    print(f"wrote {args.out}: {counts['train']} English training names, test sets per language ({tests}) in "
          f"{len(args.languages)} languages, parallel country names for "
          f"{', '.join(f'{k} ({v})' for k, v in counts['parallel'].items())}; see {args.out}/README.md")
    return 0
