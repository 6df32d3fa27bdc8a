"""`[mpiexec -n R] xlmr-ds binarize`: a corpus -> one indexed dataset per language plus manifest.json."""

from __future__ import annotations

import argparse
import socket

from xlmr_ds.cli.arguments import add_text_field_argument, output_directory
from xlmr_ds.cli.table import format_table
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.prep.binarize import binarize_corpus
from xlmr_ds.world import data_world


def register(commands) -> None:
    parser = commands.add_parser("binarize", help="encode a corpus into indexed datasets (MPI-parallel)")
    parser.add_argument("--input", required=True, metavar="DIR",
                        help="corpus directory: per language <lang>.txt[.xz|.gz|.zst] or a <lang>/ folder of shards")
    parser.add_argument("--spm", required=True, metavar="MODEL", help="SentencePiece model (PREFIX.model)")
    parser.add_argument("--out", required=True, type=output_directory, metavar="OUT", help="output directory")
    add_text_field_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    world = data_world()
    hosts = world.gather(socket.gethostname())  # where the ranks run: under mpiexec, often several machines
    try:
        results, elapsed = binarize_corpus(args.input, args.spm, args.out, world, progress=not args.no_progress,
                                           text_field=args.text_field)
    except XLMRDSError:
        # Input errors are found by every rank before any collective: report them once.
        if world.rank == 0:
            raise
        return 1
    if results is None:
        return 0
    rows = [(lang, f"{s.documents:,}", f"{s.sequences:,}", f"{s.tokens:,}", f"{s.bytes_read / 1e6:,.2f}",
             f"{s.replaced_characters:,}") for lang, s in results.items()]
    total_bytes = sum(s.bytes_read for s in results.values())
    print(format_table(("language", "documents", "sequences", "tokens", "MB read", "replaced chars"), rows))
    on = ", ".join(f"{host} ({hosts.count(host)})" if hosts.count(host) > 1 else host for host in dict.fromkeys(hosts))
    print(f"{total_bytes / 1e6:,.2f} MB in {elapsed:.1f} s with {world.size} rank(s) on {on}: "
          f"{total_bytes / 1e6 / max(elapsed, 1e-9):,.2f} MB/s; wrote {args.out}/manifest.json")
    skipped = [lang for lang, s in results.items() if not s.sequences]
    if skipped:
        print(f"note: skipped {', '.join(skipped)}: no text (no dataset written)")
    replaced = sum(s.replaced_characters for s in results.values())
    if replaced:
        print(f"note: {replaced:,} invalid UTF-8 sequence(s) were replaced by U+FFFD (see 'replaced chars')")
    nul = {lang: s.nul_characters for lang, s in results.items() if s.nul_characters}
    if nul:
        print(f"note: NUL bytes (encoded as <unk>) in {', '.join(f'{lang} ({n:,})' for lang, n in nul.items())}: "
              f"such files are often binary or damaged")
    return 0
