"""`xlmr-ds eval --ckpt DIR|--hf HF_DIR --data OUT`: per-language masked-LM loss, perplexity and accuracy."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch

from xlmr_ds.cli.table import format_table
from xlmr_ds.data.pretraining import DataConfig, PretrainingData
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.evaluation import evaluate_languages


def register(commands) -> None:
    parser = commands.add_parser("eval", help="per-language validation loss, perplexity and accuracy")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", metavar="DIR", help="a training --save directory (newest complete checkpoint)")
    source.add_argument("--hf", metavar="HF_DIR", help="a Hugging Face XLMRobertaForMaskedLM directory")
    parser.add_argument("--step", type=int, help="with --ckpt: which checkpoint")
    parser.add_argument("--data", required=True, metavar="OUT", help="an `xlmr-ds binarize` output directory")
    parser.add_argument("--samples", type=int, default=64, help="held-out blocks per language (default 64)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, help="masking seed (default: the run's, or 0)")
    parser.add_argument("--valid-fraction", type=float, help="held-out share (default: the run's, or 0.005)")
    parser.add_argument("--block-size", type=int, help="tokens per block (default: the run's, or 512)")
    parser.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    parser.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    parser.set_defaults(run=run)


def _load(args: argparse.Namespace):
    """(model, the data settings the model was trained with, or {})."""
    if args.hf:
        from xlmr_ds.model import XLMRForMaskedLM

        return XLMRForMaskedLM.from_hf(args.hf), {}
    from xlmr_ds.engine.export import choose_checkpoint, load_checkpoint_model

    info = choose_checkpoint(args.ckpt, args.step)
    return load_checkpoint_model(info), info.marker.get("data_config", {})


def run(args: argparse.Namespace) -> int:
    for flag in ("samples", "batch_size"):
        if getattr(args, flag) < 1:
            raise XLMRDSError(f"--{flag.replace('_', '-')}={getattr(args, flag)} must be at least 1")
    model, trained = _load(args)
    settings = {"seed": 0, "valid_fraction": 0.005, "block_size": 512, "split_seed": 0,
                **{k: trained[k] for k in ("seed", "valid_fraction", "block_size", "split_seed") if k in trained}}
    for flag in ("seed", "valid_fraction", "block_size"):
        if getattr(args, flag) is not None:
            settings[flag] = getattr(args, flag)
    settings["block_size"] = min(settings["block_size"], model.config.max_sequence_length)
    data = PretrainingData(DataConfig(args.data, **settings))
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
