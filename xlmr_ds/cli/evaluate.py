"""`xlmr-ds eval --ckpt DIR|--hf HF_DIR --data OUT`: per-language masked-LM loss, perplexity and accuracy."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
from pathlib import Path

from xlmr_ds.cli.arguments import require_at_least
from xlmr_ds.cli.table import format_table
from xlmr_ds.dataset.config import DataConfig
from xlmr_ds.errors import XLMRDSError


def register(commands) -> None:
    parser = commands.add_parser("eval", help="per-language validation loss, perplexity and accuracy")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", metavar="DIR", help="a training --save directory (newest complete checkpoint)")
    source.add_argument("--hf", metavar="HF_DIR", help="a Hugging Face XLMRobertaForMaskedLM directory")
    parser.add_argument("--step", type=int, help="with --ckpt: which checkpoint")
    parser.add_argument("--data", required=True, metavar="OUT", help="an `xlmr-ds binarize` output directory")
    parser.add_argument("--samples", type=int, default=64, help="held-out blocks per language (default 64)")
    parser.add_argument("--batch-size", type=int, default=8)
    defaults = DataConfig("")
    parser.add_argument("--seed", type=int, help=f"masking seed (default: the run's, or {defaults.seed})")
    parser.add_argument("--valid-fraction", type=float,
                        help=f"held-out share (default: the run's, or {defaults.valid_fraction})")
    parser.add_argument("--block-size", type=int,
                        help=f"tokens per block (default: the run's, or {defaults.block_size})")
    parser.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    parser.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    parser.set_defaults(run=run)


# What fixes the held-out blocks and their masks: taken from the run that trained the model, else DataConfig's.
HELD_OUT_SETTINGS = ("seed", "valid_fraction", "block_size", "split_seed")


def _load(args: argparse.Namespace):
    """(model, the data settings the model was trained with, or {})."""
    if args.hf:
        from xlmr_ds.model.hf import load_hf

        return load_hf(args.hf), {}
    from xlmr_ds.engine.export import choose_checkpoint, load_checkpoint_model

    info = choose_checkpoint(args.ckpt, args.step)
    return load_checkpoint_model(info), info.marker["run_config"]["data"]


def run(args: argparse.Namespace) -> int:
    import torch

    from xlmr_ds.dataset.loader import PretrainingData
    from xlmr_ds.engine.evaluation import evaluate_languages

    require_at_least(args, 1, "samples", "batch_size")
    model, trained = _load(args)
    settings = {key: trained[key] for key in HELD_OUT_SETTINGS if key in trained}
    settings.update({key: getattr(args, key) for key in ("seed", "valid_fraction", "block_size")
                     if getattr(args, key) is not None})
    config = DataConfig(args.data, **settings)
    config = dataclasses.replace(config, block_size=min(config.block_size, model.config.max_sequence_length))
    settings = {key: getattr(config, key) for key in HELD_OUT_SETTINGS}
    data = PretrainingData(config)
    if data.vocab_size != model.config.vocab_size:
        raise XLMRDSError(f"{args.data}: its tokenizer has {data.vocab_size} ids but the model has "
                          f"{model.config.vocab_size}; evaluate on data binarized with the model's tokenizer")
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    model = model.to(device).eval()
    results = evaluate_languages(model, data, args.samples, args.batch_size, device)
    rows = [(lang, f"{r['loss']:.4f}", f"{r['perplexity']:.2f}", f"{r['accuracy']:.4f}", f"{r['tokens']:,}")
            for lang, r in results.items()]
    print(format_table(("language", "loss", "perplexity", "accuracy", "masked tokens"), rows))
    if results:
        print(f"mean over {len(results)} languages: loss "
              f"{sum(r['loss'] for r in results.values()) / len(results):.4f}, accuracy "
              f"{sum(r['accuracy'] for r in results.values()) / len(results):.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": settings, "languages": results}, indent=2) + "\n")
    if args.csv:
        with open(args.csv, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["language", "loss", "perplexity", "accuracy", "tokens"])
            for lang, r in results.items():
                writer.writerow([lang, r["loss"], r["perplexity"], r["accuracy"], r["tokens"]])
    return 0
