"""`xlmr-ds spm train`: a SentencePiece unigram model from an alpha-sampled corpus sample."""

from __future__ import annotations

import argparse
import time

from xlmr_ds.cli.arguments import add_command_group
from xlmr_ds.cli.table import format_table
from xlmr_ds.prep.spm_train import train_sentencepiece
from xlmr_ds.prep.tokenizer import XLMRTokenizer


def register(commands) -> None:
    spm_commands = add_command_group(commands, "spm", "SentencePiece tokenizer")
    train = spm_commands.add_parser("train", help="train a unigram model on an alpha-sampled sample")
    train.add_argument("--input", required=True, metavar="DIR", help="corpus directory of <lang>.txt files")
    train.add_argument("--out", required=True, metavar="PREFIX", help="writes PREFIX.model and PREFIX.vocab")
    train.add_argument("--vocab-size", required=True, type=int, metavar="N",
                       help="SentencePiece pieces (XLM-R: 250000); the model's vocabulary is N + 2")
    train.add_argument("--alpha", type=float, default=0.3, help="language sampling exponent (default 0.3)")
    train.add_argument("--sample-lines", type=int, default=1_000_000, metavar="M",
                       help="lines in the training sample, split across languages by alpha (default 1,000,000)")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    samples = train_sentencepiece(args.input, args.out, args.vocab_size, alpha=args.alpha,
                                  sample_lines=args.sample_lines, seed=args.seed)
    tokenizer = XLMRTokenizer(f"{args.out}.model")
    rows = [(s.language, f"{s.bytes:,}", f"{s.probability:.4f}", f"{len(s.lines):,}", f"{s.replaced:,}")
            for s in samples]
    print(format_table(("language", "bytes", "q (alpha)", "sampled lines", "replaced chars"), rows))
    print(f"wrote {args.out}.model and {args.out}.vocab: {tokenizer.pieces:,} pieces, model vocab_size "
          f"{tokenizer.vocab_size:,} (<mask> = {tokenizer.mask_id}) in {time.perf_counter() - started:.1f} s")
    return 0
