"""`xlmr-ds corpus demo`: write the bundled multilingual demo corpus."""

from __future__ import annotations

import argparse

from xlmr_ds.cli.arguments import add_command_group
from xlmr_ds.cli.table import format_table
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.prep.demo_corpus import write_demo_corpus


def register(commands) -> None:
    corpus_commands = add_command_group(commands, "corpus", "corpora")
    demo = corpus_commands.add_parser("demo", help="write the demo corpus (21 languages, a few MB)")
    demo.add_argument("--out", required=True, metavar="DIR", help="directory for the <lang>.txt files")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--scale", type=float, default=1.0, help="multiply every language's size (default 1.0)")
    demo.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    if not 0.0 < args.scale <= 100.0:
        raise XLMRDSError(f"--scale={args.scale} must be in (0, 100]")
    sizes = write_demo_corpus(args.out, seed=args.seed, scale=args.scale)
    rows = [(lang, f"{size:,}") for lang, size in sorted(sizes.items(), key=lambda item: -item[1])]
    print(format_table(("language", "bytes"), rows))
    print(f"wrote {len(sizes)} languages, {sum(sizes.values()) / 1e6:.2f} MB, to {args.out}")
    return 0
