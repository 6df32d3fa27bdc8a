"""`xlmr-ds data`: look into a binarize output and prepare it for training.

- `data inspect OUT/<lang>`: counts of one binarized language and its first sequences as text.
- `[mpiexec -n R] data index --data DIR --block-size N [--recipe FILE]`: build the block index training would
  build at its start (every block size the run uses), as a separate step of a cluster job.
- `data batches --data DIR --start-sample N --count K`: the samples training sees from global sample N.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from xlmr_ds.cli.arguments import add_command_group, add_model_arguments, model_config_from_args
from xlmr_ds.cli.table import format_table
from xlmr_ds.dataset.config import DataConfig
from xlmr_ds.dataset.indexed import IndexedDataset
from xlmr_ds.dataset.manifest import read_manifest, tokenizer_file
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model.architectures import MODERNBERT, XLMR
from xlmr_ds.tokenizer import XLMRTokenizer

XLMR_GLOBAL_BATCH = 8192
"""XLM-R's sequences per step (Conneau et al. 2019): the default step layout of `data batches`."""
SHOWN_TOKENS = 12


def register(commands) -> None:
    data_commands = add_command_group(commands, "data", "inspect binarized datasets and build their block index")
    inspect = data_commands.add_parser("inspect", help="counts and the first sequences decoded")
    inspect.add_argument("prefix", metavar="OUT/LANG", help="dataset prefix, e.g. data/bin/en")
    inspect.add_argument("--spm", metavar="MODEL", help="SentencePiece model (default: the manifest's)")
    inspect.add_argument("-n", "--sequences", type=int, default=5, help="sequences to decode (default 5)")
    inspect.set_defaults(run=run_inspect)

    index = data_commands.add_parser("index", help="build the block index ahead of training (MPI-parallel)")
    _add_order_arguments(index)
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    index.set_defaults(run=run_index)

    batches = data_commands.add_parser("batches", help="the samples training sees from a global sample on")
    _add_order_arguments(batches)
    batches.add_argument("--start-sample", type=int, required=True, metavar="N",
                         help="first global sample (a resumed run starts at its checkpoint's consumed_samples)")
    batches.add_argument("--count", type=int, default=8, metavar="K", help="samples to show (default 8)")
    batches.add_argument("--seed", type=int, default=DataConfig("").seed, help="the run's --seed (sample order)")
    batches.add_argument("--global-batch", type=int, default=XLMR_GLOBAL_BATCH, metavar="B",
                         help=f"sequences per step, for the step column and a recipe's phases without a batch "
                              f"(default XLM-R's {XLMR_GLOBAL_BATCH})")
    batches.add_argument("--steps", type=int, metavar="N", help="the run's --steps without a recipe (default: no end)")
    batches.set_defaults(run=run_batches)


def _add_order_arguments(parser: argparse.ArgumentParser) -> None:
    """The settings that fix the block tables, as `xlmr-ds train` takes them."""
    defaults = DataConfig("")
    parser.add_argument("--data", required=True, metavar="DIR", help="an `xlmr-ds binarize` output directory")
    parser.add_argument("--block-size", type=int, default=defaults.block_size, metavar="N",
                        help=f"tokens per sequence, <s> and </s> included (default {defaults.block_size})")
    parser.add_argument("--recipe", metavar="FILE", help="the run's recipe: its phases' block sizes are built too")
    parser.add_argument("--valid-fraction", type=float, default=defaults.valid_fraction,
                        help=f"the run's --valid-fraction (default {defaults.valid_fraction})")
    parser.add_argument("--split-seed", type=int, default=defaults.split_seed, help=argparse.SUPPRESS)
    add_model_arguments(parser, default="base", architectures=(XLMR, MODERNBERT))


def _data_settings(args: argparse.Namespace):
    """(DataConfig, recipe or None, the model's longest sequence), checked as `xlmr-ds train` checks them."""
    from xlmr_ds.dataset.recipe import load_recipe

    name, model = model_config_from_args(args)
    if args.block_size > model.max_sequence_length:
        raise XLMRDSError(f"--block-size={args.block_size} is longer than model {name}'s max_sequence_length "
                          f"{model.max_sequence_length}")
    languages = sorted(read_manifest(Path(args.data))["languages"])  # a complete binarize output
    config = DataConfig(args.data, block_size=args.block_size, valid_fraction=args.valid_fraction,
                        split_seed=args.split_seed, seed=getattr(args, "seed", 0), recipe=args.recipe)
    recipe = load_recipe(args.recipe) if args.recipe else None
    if recipe is not None:
        recipe.check_against(languages, model.max_sequence_length)
    return config, recipe, model.max_sequence_length


def run_inspect(args: argparse.Namespace) -> int:
    prefix = Path(args.prefix)
    dataset = IndexedDataset(prefix)
    manifest = read_manifest(prefix.parent)
    tokenizer = XLMRTokenizer(tokenizer_file(prefix.parent, manifest, args.spm))  # checked by sha256
    print(f"{prefix}: {dataset.num_documents:,} documents, {len(dataset):,} sequences, "
          f"{dataset.num_tokens:,} tokens, dtype {dataset.dtype.name}, vocab_size {tokenizer.vocab_size:,}")
    for i in range(min(args.sequences, len(dataset))):
        ids = dataset[i]
        print(f"[{i}] {len(ids)} tokens: {tokenizer.decode(ids)!r}")
    return 0


def run_index(args: argparse.Namespace) -> int:
    from xlmr_ds.dataset import block_index
    from xlmr_ds.world import data_world

    world = data_world()
    try:
        config, recipe, _ = _data_settings(args)
        data_dir = Path(config.data_dir)
        languages = sorted(read_manifest(data_dir)["languages"])
        lines = {lang: len(IndexedDataset(data_dir / lang)) for lang in languages}
    except XLMRDSError:
        if world.rank == 0:  # every rank finds an input error before any collective: report it once
            raise
        return 1
    block_sizes = sorted({config.block_size, *(p.block_size for p in (recipe.phases if recipe else ())
                                               if p.block_size is not None)})
    for block_size in block_sizes:
        cache = block_index.cache_directory(data_dir, languages, block_size, config.valid_fraction,
                                            config.split_seed)
        built_before = (cache / block_index.COMPLETE).exists()
        started = time.perf_counter()
        tables = block_index.load_block_tables(data_dir, languages, block_size, config.valid_fraction,
                                               config.split_seed, world, progress=not args.no_progress)
        elapsed = time.perf_counter() - started
        if world.rank:
            continue
        rows = [(lang, f"{lines[lang]:,}", f"{len(train):,}", f"{len(valid):,}")
                for lang, (train, valid) in tables.items()]
        print(format_table(("language", "lines", "train blocks", "validation blocks"), rows))
        total_lines = sum(lines.values())
        table_bytes = sum(train.nbytes + valid.nbytes for train, valid in tables.values())
        if built_before:
            print(f"block size {block_size}: already built in {cache}")
        else:
            processes = "1 process" if world.size == 1 else f"{world.size} processes"
            rate = total_lines / max(elapsed, 1e-9) / 1e6
            print(f"block size {block_size}: {total_lines:,} lines in {elapsed:.1f} s with {processes}: "
                  f"{rate:,.2f}M lines/s; {table_bytes / 2**20:,.1f} MiB of tables in {cache}")
    return 0


def run_batches(args: argparse.Namespace) -> int:
    from xlmr_ds.dataset.loader import PretrainingData
    from xlmr_ds.dataset.recipe import Recipe

    if args.start_sample < 0 or args.count < 1:
        raise XLMRDSError(f"--start-sample must be at least 0 and --count at least 1 "
                          f"(got {args.start_sample} and {args.count})")
    if args.global_batch < 1 or (args.steps is not None and args.steps < 1):
        raise XLMRDSError(f"--global-batch and --steps must be at least 1 (got {args.global_batch} and {args.steps})")
    config, recipe, max_length = _data_settings(args)
    started = time.perf_counter()
    data = PretrainingData(config, recipe or Recipe.single_phase(args.steps or 1 << 40), args.global_batch,
                           max_sequence_length=max_length)
    plan = data.plan
    end = plan.total_samples
    if args.start_sample >= end:
        what = (f"the recipe {args.recipe}" if args.recipe
                else f"--steps {args.steps} x --global-batch {args.global_batch}")
        raise XLMRDSError(f"--start-sample={args.start_sample:,} is past the end of the sample order: {what} gives "
                          f"{end:,} samples (0..{end - 1:,})")
    tokenizer = XLMRTokenizer(data.tokenizer_file)
    last = min(end, args.start_sample + args.count)
    rows = []
    for sample in range(args.start_sample, last):
        phase = plan.phase_of_sample(sample)
        language, block = data.phase_orders[phase.index][sample - phase.first_sample]
        tokens = data.block_tokens(data.languages[language], 0, block, phase.block_size)
        if sample == args.start_sample:
            first_sample_seconds = time.perf_counter() - started
        text = tokenizer.decode(tokens[1:1 + SHOWN_TOKENS].tolist())
        rows.append((f"{sample:,}", f"{plan.step_of_sample(sample):,}", phase.name, data.languages[language],
                     f"{block:,}", f"{len(tokens):,}", repr(text)))
    print(format_table(("sample", "step", "phase", "language", "block", "tokens", "first tokens"), rows))
    print(f"the first sample in {first_sample_seconds:.1f} s (block index, and the order up to sample "
          f"{args.start_sample:,})" + (f"; the order ends at sample {end:,}" if last == end else ""))
    return 0
