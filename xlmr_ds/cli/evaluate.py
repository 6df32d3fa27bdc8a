"""`xlmr-ds eval`: the evaluations of a pretrained model.

    xlmr-ds eval --ckpt DIR|--hf HF_DIR --data OUT     per-language masked-LM loss, perplexity and accuracy
    xlmr-ds eval retrieval --model M --pairs LANG=SRC:TGT...   parallel sentence retrieval, no fine-tuning
    xlmr-ds eval transfer --ckpt RUN_DIR --task-config FILE    a task on every checkpoint of a run
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
from pathlib import Path

from xlmr_ds.cli.arguments import output_directory, output_file, positive_int, require_at_least
from xlmr_ds.cli.table import format_table
from xlmr_ds.dataset.config import DataConfig
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.outputs import write_text_atomically


def register(commands) -> None:
    parser = commands.add_parser("eval", help="masked-LM validation per language; `eval retrieval`, `eval transfer`",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--ckpt", metavar="DIR", help="a training --save directory (newest complete checkpoint)")
    source.add_argument("--hf", metavar="HF_DIR", help="a Hugging Face XLMRobertaForMaskedLM directory")
    parser.add_argument("--step", type=int, help="with --ckpt: which checkpoint")
    parser.add_argument("--data", metavar="OUT", help="an `xlmr-ds binarize` output directory")
    parser.add_argument("--samples", type=int, default=64, help="held-out blocks per language (default 64)")
    parser.add_argument("--batch-size", type=int, default=8)
    defaults = DataConfig("")
    parser.add_argument("--seed", type=int, help=f"masking seed (default: the run's, or {defaults.seed})")
    parser.add_argument("--valid-fraction", type=float,
                        help=f"held-out share (default: the run's, or {defaults.valid_fraction})")
    parser.add_argument("--block-size", type=int,
                        help=f"tokens per block (default: the run's, or {defaults.block_size})")
    parser.add_argument("--shuffled-order", action="store_true",
                        help="also the loss with each block's tokens in a random order (labels move with their "
                             "tokens): what the model takes from word order; none before it has learned any")
    parser.add_argument("--json", type=output_file, metavar="FILE", help="also write the table as JSON")
    parser.add_argument("--csv", type=output_file, metavar="FILE", help="also write the table as CSV")
    parser.set_defaults(run=run)
    kinds = parser.add_subparsers(title="other evaluations", dest="evaluation", metavar="{retrieval,transfer}",
                                  parser_class=type(parser))
    _register_retrieval(kinds)
    _register_transfer(kinds)


def _register_retrieval(kinds) -> None:
    from xlmr_ds.tasks.settings import RetrievalSettings

    defaults = RetrievalSettings("", ())
    parser = kinds.add_parser("retrieval", help="parallel sentence retrieval (Tatoeba/BUCC style), no fine-tuning")
    parser.add_argument("--model", required=True, metavar="CKPT_DIR|HF_DIR",
                        help="a pretraining --save directory (newest complete checkpoint, or --step) or a Hugging "
                             "Face directory with its tokenizer (sentencepiece.bpe.model or tokenizer.json)")
    parser.add_argument("--step", type=int, help="with a pretraining directory: the checkpoint")
    parser.add_argument("--pairs", required=True, nargs="+", metavar="LANG=SRC:TGT",
                        help="parallel files, one sentence per line, line i of SRC translating line i of TGT")
    parser.add_argument("--layer", type=int, help="hidden states after this many blocks (default: the middle one)")
    parser.add_argument("--max-length", type=positive_int, default=defaults.max_length)
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    parser.add_argument("--out", type=output_directory, metavar="DIR", help="also write results.json/.csv/.md there")
    parser.set_defaults(run=run_retrieval)


def run_retrieval(args: argparse.Namespace) -> int:
    from xlmr_ds.tasks.output import StagedOutput
    from xlmr_ds.tasks.settings import RetrievalSettings
    from xlmr_ds.tasks.task_config import parse_pair

    settings = RetrievalSettings(args.model, tuple(parse_pair(p, "--pairs") for p in args.pairs), args.out,
                                 args.layer, args.step, args.max_length, args.batch_size)
    if args.out:
        StagedOutput.check(args.out)
    from xlmr_ds.engine.retrieval import evaluate_retrieval
    from xlmr_ds.engine.transfer import write_retrieval

    table = evaluate_retrieval(settings)
    print(format_table(table.header(), table.rows()))
    if args.out:
        write_retrieval(table, args.out)
        print(f"results: {args.out}/results.md")
    return 0


def _register_transfer(kinds) -> None:
    parser = kinds.add_parser("transfer", help="a fine-tune or retrieval task on every checkpoint of a run")
    parser.add_argument("--ckpt", required=True, metavar="RUN_DIR", help="a pretraining --save directory")
    parser.add_argument("--task-config", required=True, metavar="FILE",
                        help="JSON task file (docs/evaluation.md; xlmr_ds/tasks/task_config.py)")
    parser.add_argument("--all-checkpoints", action="store_true", help="every complete checkpoint, not the newest")
    parser.add_argument("--out", type=output_directory, metavar="DIR",
                        help="default: RUN_DIR/transfer/<task file name>")
    parser.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)),
                        help=argparse.SUPPRESS)  # added by the deepspeed launcher
    parser.set_defaults(run=run_transfer, exits_without_finalizing=True)


def run_transfer(args: argparse.Namespace) -> int:
    from xlmr_ds.engine.transfer import run_transfer as sweep
    from xlmr_ds.world import launcher_rank

    out = Path(args.out) if args.out else Path(args.ckpt) / "transfer" / Path(args.task_config).stem
    summary = sweep(args.ckpt, args.task_config, out, args.all_checkpoints)
    if launcher_rank() == 0:
        print(format_table(summary.header(), summary.rows()))
        print(f"summary: {out}/transfer.md")
    return 0


# What fixes the held-out blocks and their masks: taken from the run that trained the model, else DataConfig's.
HELD_OUT_SETTINGS = ("seed", "valid_fraction", "block_size", "split_seed")


def _load(args: argparse.Namespace):
    """(model, the data settings the model was trained with, or {})."""
    if args.hf:
        from xlmr_ds.model.architectures import load_hf_directory
        from xlmr_ds.model.hf import require_masked_lm

        require_masked_lm(args.hf, "eval --hf")  # a classifier has no LM head to score masked tokens with
        return load_hf_directory(args.hf), {}
    from xlmr_ds.engine.export import choose_checkpoint, load_checkpoint_model

    info = choose_checkpoint(args.ckpt, args.step)
    return load_checkpoint_model(info), info.marker["run_config"]["data"]


def run(args: argparse.Namespace) -> int:
    if not (args.ckpt or args.hf) or not args.data:
        raise XLMRDSError("eval: pass --ckpt DIR or --hf HF_DIR, and --data OUT (masked-LM validation); or run "
                          "`xlmr-ds eval retrieval` or `xlmr-ds eval transfer`")
    import torch

    from xlmr_ds.dataset.loader import PretrainingData
    from xlmr_ds.engine.evaluation import context_free_guesses, evaluate_languages

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
    results = evaluate_languages(model, data, args.samples, args.batch_size, device,
                                 guesses=context_free_guesses(data))
    # (key in the results, column header, format)
    columns = [("loss", "loss", "{:.4f}"), ("perplexity", "perplexity", "{:.2f}"), ("accuracy", "accuracy", "{:.4f}"),
               ("accuracy_context_free", "accuracy, context-free guess", "{:.4f}"), ("tokens", "masked tokens", "{:,}")]
    if args.shuffled_order:
        shuffled = evaluate_languages(model, data, args.samples, args.batch_size, device, shuffle_seed=config.seed)
        for lang, r in results.items():
            r["loss_shuffled_order"] = shuffled[lang]["loss"]
        columns.append(("loss_shuffled_order", "loss, tokens shuffled", "{:.4f}"))
    print(format_table(("language", *(header for _, header, _ in columns)),
                       [(lang, *(form.format(r[key]) for key, _, form in columns)) for lang, r in results.items()]))
    if results:
        mean = {key: sum(r[key] for r in results.values()) / len(results) for key, _, _ in columns}
        print(f"mean over {len(results)} languages: loss {mean['loss']:.4f}, accuracy {mean['accuracy']:.4f}"
              + (f"; with the tokens shuffled {mean['loss_shuffled_order']:.4f} (word order is worth "
                 f"{mean['loss_shuffled_order'] - mean['loss']:+.4f} nats)" if args.shuffled_order else ""))
    if args.json:
        write_text_atomically(args.json, json.dumps({"settings": settings, "languages": results}, indent=2) + "\n")
    if args.csv:
        table = io.StringIO(newline="")
        writer = csv.writer(table)
        writer.writerow(["language", *(key for key, _, _ in columns)])
        for lang, r in results.items():
            writer.writerow([lang, *(r[key] for key, _, _ in columns)])
        write_text_atomically(args.csv, table.getvalue(), newline="")
    return 0
