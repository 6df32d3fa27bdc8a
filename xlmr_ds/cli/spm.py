"""`xlmr-ds spm train`: a SentencePiece unigram model from an alpha-sampled corpus sample; `xlmr-ds spm extend`:
a model extended with the pieces of new languages, every old id kept (prep/spm/extend.py)."""

from __future__ import annotations

import argparse
import time

from xlmr_ds.cli.arguments import add_command_group, add_text_field_argument, positive_int, spm_prefix
from xlmr_ds.cli.table import format_table
from xlmr_ds.prep.spm.extend import extend_sentencepiece
from xlmr_ds.prep.spm.train import train_sentencepiece
from xlmr_ds.tokenizer import XLMRTokenizer


def register(commands) -> None:
    spm_commands = add_command_group(commands, "spm", "SentencePiece tokenizer")
    train = spm_commands.add_parser("train", help="train a unigram model on an alpha-sampled sample")
    train.add_argument("--input", required=True, metavar="DIR",
                       help="corpus directory: per language <lang>.txt[.xz|.gz|.zst] or a <lang>/ folder of shards")
    add_text_field_argument(train)
    train.add_argument("--out", required=True, type=spm_prefix, metavar="PREFIX",
                       help="writes PREFIX.model and PREFIX.vocab")
    train.add_argument("--vocab-size", required=True, type=int, metavar="N",
                       help="SentencePiece pieces (XLM-R: 250000); the model's vocabulary is N + 2")
    train.add_argument("--alpha", type=float, default=0.3, help="language sampling exponent (default 0.3)")
    train.add_argument("--sample-lines", type=int, default=1_000_000, metavar="M",
                       help="lines in the training sample, split across languages by alpha (default 1,000,000)")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(run=run_train)

    extend = spm_commands.add_parser("extend", help="add the pieces of new languages to a unigram model, keeping "
                                                    "every old id")
    extend.add_argument("--base", required=True, metavar="OLD.model", help="the unigram model to extend")
    extend.add_argument("--input", required=True, metavar="DIR",
                        help="corpus directory of <lang>.txt files: the new languages' text, and the old languages' "
                             "text that must tokenize as with --base")
    extend.add_argument("--add", required=True, type=int, metavar="N", help="pieces to add (at most)")
    extend.add_argument("--out", required=True, type=spm_prefix, metavar="PREFIX",
                        help="writes PREFIX.model, PREFIX.vocab and PREFIX.extension.json")
    extend.add_argument("--new-languages", nargs="+", metavar="LANG",
                        help="the languages of --input to train pieces on (default: all of them); the others are "
                             "checked to tokenize as with --base")
    extend.add_argument("--alpha", type=float, default=0.3, help="language sampling exponent (default 0.3)")
    extend.add_argument("--sample-lines", type=positive_int, default=200_000, metavar="M",
                        help="lines of new-language text to train on, split by alpha (default 200,000)")
    extend.add_argument("--check-lines", type=positive_int, default=20_000, metavar="K",
                        help="lines per old language that the added pieces must leave as they were (default "
                             "20,000); the changed share is reported on other lines")
    extend.add_argument("--seed", type=int, default=0)
    add_text_field_argument(extend)
    extend.set_defaults(run=run_extend)


def run_train(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    samples = train_sentencepiece(args.input, args.out, args.vocab_size, alpha=args.alpha,
                                  sample_lines=args.sample_lines, seed=args.seed, text_field=args.text_field)
    tokenizer = XLMRTokenizer(f"{args.out}.model")
    rows = [(s.language, f"{s.bytes:,}", f"{s.probability:.4f}", f"{len(s.lines):,}", f"{s.replaced:,}")
            for s in samples]
    print(format_table(("language", "bytes", "q (alpha)", "sampled lines", "replaced chars"), rows))
    print(f"wrote {args.out}.model and {args.out}.vocab: {tokenizer.pieces:,} pieces, model vocab_size "
          f"{tokenizer.vocab_size:,} (<mask> = {tokenizer.mask_id}) in {time.perf_counter() - started:.1f} s")
    return 0


def run_extend(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    report = extend_sentencepiece(args.base, args.input, args.add, args.out, args.new_languages, alpha=args.alpha,
                                  sample_lines=args.sample_lines, check_lines=args.check_lines, seed=args.seed,
                                  text_field=args.text_field)
    if report.new_languages:
        rows = [(lang, f"{r['lines']:,}", f"{r['tokens_per_line_before']:.2f}", f"{100 * r['unk_share_before']:.1f}%",
                 f"{r['tokens_per_line_after']:.2f}", f"{100 * r['unk_share_after']:.1f}%")
                for lang, r in report.new_languages.items()]
        print(format_table(("new language", "lines", "tokens/line before", "<unk> before", "after", "<unk> after"),
                           rows))
    if report.old_languages:
        rows = [(lang, f"{r['lines']:,}", f"{r['changed_lines']:,}", f"{100 * r['changed_share']:.3f}%")
                for lang, r in report.old_languages.items()]
        print(format_table(("old language", "lines", "lines whose ids changed", "share"), rows))
    else:
        print("no old-language text in --input: the old languages' tokenization was not checked")
    short = f" ({report.requested:,} asked; the new text has no more)" if report.added < report.requested else ""
    print(f"wrote {args.out}.model: {report.base_pieces:,} pieces of {args.base} kept with their ids, "
          f"{report.added:,} added{short}; {report.dropped_by_check:,} candidates left out because old-language "
          f"text would change ({report.dropped_as_expected:,} of them absent from the check sample but expected in "
          f"old-language text by the base model; {report.check_rounds} check rounds); model vocab_size "
          f"{report.base_pieces + report.added + 2:,}; "
          f"report {args.out}.extension.json; {time.perf_counter() - started:.1f} s")
    return 0
