"""`xlmr-ds compare RUN_DIR... --out report.md`: several training runs in one report (a recipe study)."""

from __future__ import annotations

import argparse


def register(commands) -> None:
    parser = commands.add_parser("compare", help="one report over several training runs: per-language validation "
                                                 "perplexity by resource group, final tables, plots")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="training --save directories")
    parser.add_argument("--out", required=True, metavar="FILE", help="report.md (plots go beside it)")
    parser.add_argument("--names", nargs="+", metavar="NAME", help="a label per run (default: directory names)")
    parser.add_argument("--title", default="xlmr-ds comparison")
    parser.add_argument("--reach", metavar="LANG",
                        help="also: the steps each run needs to reach the last run's final validation loss on LANG")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from xlmr_ds.tools.compare import GROUPS, write_comparison  # torch: only when comparing, not at startup

    path = write_comparison(args.run_dirs, args.out, args.names, args.title, args.reach)
    plots = ", ".join(str(path.parent / f"compare_{group}.png") for group in GROUPS)
    print(f"wrote {path} with {plots}")
    report = path.read_text()
    print(report.split("## The alpha study\n", 1)[1].split("\n## ", 1)[0].strip())
    if args.reach:
        print(report.split("## Steps to reach", 1)[1].split("\n## ", 1)[0].split("\n", 1)[1].strip())
    return 0
