"""`xlmr-ds compare RUN_DIR... --out report.md`: several training runs in one report (a recipe study)."""

from __future__ import annotations

import argparse

from xlmr_ds.cli.arguments import output_file


def register(commands) -> None:
    parser = commands.add_parser("compare", help="one report over several training runs: per-language validation "
                                                 "perplexity by resource group, final tables, plots")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="training --save directories")
    parser.add_argument("--out", required=True, type=output_file, metavar="FILE", help="report.md (plots go beside it)")
    parser.add_argument("--names", nargs="+", metavar="NAME", help="a label per run (default: directory names)")
    parser.add_argument("--title", default="xlmr-ds comparison")
    parser.add_argument("--reach", metavar="LANG",
                        help="also: the steps each run needs to reach the last run's final validation loss on LANG")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from xlmr_ds.tools.compare import write_comparison  # torch: only when comparing, not at startup

    comparison = write_comparison(args.run_dirs, args.out, args.names, args.title, args.reach)
    print(f"wrote {comparison.path} with {', '.join(map(str, comparison.plots))}")
    print("\n".join(comparison.findings))
    return 0
