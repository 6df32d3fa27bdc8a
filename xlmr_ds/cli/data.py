"""`xlmr-ds data inspect OUT/<lang>`: counts of one binarized language and its first sequences as text."""

from __future__ import annotations

import argparse
from pathlib import Path

from xlmr_ds.cli.arguments import add_command_group
from xlmr_ds.dataset.indexed import IndexedDataset
from xlmr_ds.dataset.manifest import read_manifest, tokenizer_file
from xlmr_ds.tokenizer import XLMRTokenizer


def register(commands) -> None:
    data_commands = add_command_group(commands, "data", "inspect binarized datasets")
    inspect = data_commands.add_parser("inspect", help="counts and the first sequences decoded")
    inspect.add_argument("prefix", metavar="OUT/LANG", help="dataset prefix, e.g. data/bin/en")
    inspect.add_argument("--spm", metavar="MODEL", help="SentencePiece model (default: the manifest's)")
    inspect.add_argument("-n", "--sequences", type=int, default=5, help="sequences to decode (default 5)")
    inspect.set_defaults(run=run_inspect)


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
