"""`xlmr-ds model extend-vocab`: grow a pretrained model's vocabulary to an extended tokenizer
(tools/extend_vocab.py)."""

from __future__ import annotations

import argparse
import time

from xlmr_ds.cli.arguments import add_command_group, output_directory
from xlmr_ds.vocab import NEW_ROW_INITS


def register(commands) -> None:
    model_commands = add_command_group(commands, "model", "change a pretrained model")
    extend = model_commands.add_parser("extend-vocab", help="grow the vocabulary to an extended tokenizer, keeping "
                                                            "what the model computes for old ids")
    extend.add_argument("--model", required=True, metavar="HF_DIR|CKPT_DIR",
                        help="a Hugging Face directory with its sentencepiece.bpe.model, or a pretraining --save "
                             "directory (newest complete checkpoint) or one of its step_* directories")
    extend.add_argument("--spm", required=True, metavar="NEW.model", help="the extended tokenizer (xlmr-ds spm extend)")
    extend.add_argument("--out", required=True, type=output_directory, metavar="HF_DIR",
                        help="the grown model, with NEW.model's tokenizer files")
    extend.add_argument("--init", choices=NEW_ROW_INITS, default="mean",
                        help="a new piece's embedding: mean of the old embeddings of the pieces the old tokenizer "
                             "splits it into (default), or random as at pretraining")
    extend.add_argument("--seed", type=int, default=0, help="seed of the random rows")
    extend.set_defaults(run=run_extend)


def run_extend(args: argparse.Namespace) -> int:
    from xlmr_ds.tools.extend_vocab import extend_model_vocabulary

    started = time.perf_counter()
    result = extend_model_vocabulary(args.model, args.spm, args.out, args.init, args.seed)
    fallback = (f"; {result.random_fallbacks:,} of them random (the old tokenizer splits them into <unk> only)"
                if result.random_fallbacks else "")
    print(f"wrote {args.out}: {result.source} grown from {result.old_size:,} to {result.new_size:,} ids "
          f"({result.new_size - result.old_size:,} new pieces, {args.init} init{fallback}; <mask> moved from "
          f"{result.old_size - 1:,} to {result.new_size - 1:,}); {result.parameters:,} parameters; "
          f"{time.perf_counter() - started:.1f} s")
    return 0
