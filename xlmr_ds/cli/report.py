"""`xlmr-ds report --run DIR --out report.md`: plots and tables of a training run."""

from __future__ import annotations

import argparse

from xlmr_ds.cli.arguments import output_file
from xlmr_ds.tools.report import write_report


def register(commands) -> None:
    parser = commands.add_parser("report", help="write a Markdown report with plots of a training run")
    parser.add_argument("--run", dest="run_dir", required=True, metavar="DIR", help="the training --save directory")
    parser.add_argument("--out", required=True, type=output_file, metavar="FILE", help="report.md (plots go beside it)")
    parser.add_argument("--hf", metavar="HF_DIR", help="an exported model for fill-mask examples")
    parser.add_argument("--fill-mask", nargs="*", default=[], metavar="TEXT", help="sentences with <mask>")
    parser.add_argument("--finetune", metavar="DIR", help="an `xlmr-ds finetune --out` directory: its zero-shot table")
    parser.add_argument("--retrieval", metavar="DIR", help="an `xlmr-ds eval retrieval --out` directory: its table")
    parser.add_argument("--corpus", metavar="DIR", help="an `xlmr-ds corpus build --out` directory: its statistics "
                                                          "and language recovery")
    parser.add_argument("--word-order", metavar="FILE", help="the --json file of `xlmr-ds eval --shuffled-order`: "
                                                             "what word order is worth to the model")
    parser.add_argument("--title", default="xlmr-ds run")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = write_report(args.run_dir, args.out, args.hf, args.fill_mask, args.title, args.finetune, args.retrieval,
                        args.corpus, args.word_order)
    print(f"wrote {path} with {path.parent / 'loss.png'} and {path.parent / 'lr.png'}")
    return 0
