"""The corpus side of the data path as the input grows: `xlmr-ds corpus build` and `xlmr-ds binarize` on synthetic text.

The input is synthetic multilingual text written at a few sizes, a function of the seed: raw shards in CC-100
form (one paragraph per line, documents of 1-6 lines separated by blank lines) in the 21 languages of the demo
corpus, at its language shares. Every line is a run of 6-24 words of its language, drawn with Zipf frequencies
from the vocabulary of the demo corpus (`xlmr-ds corpus demo`: real words, so that fastText identifies them);
DUPLICATE_SHARE of the lines repeat an earlier line of their language (the copies a crawl has), the rest are new.

Each size is then measured with the real commands, each in a fresh child process (its peak memory is its own:
the largest resident size of the command's processes, from getrusage(RUSAGE_CHILDREN) of a small process that
only starts it), on one rank unless said:
- `corpus build` (read, paragraph hash, dedup, fastText LID, filters, write) with the default --hash-partitions
  (64): bytes of input per second on one core, the seconds of its passes, the peak resident memory;
- its dedup pass (build.py _find_duplicates) on one partition holding every line (pass 1 written with
  --hash-partitions 1, in one child; the pass measured in another): its seconds and the peak memory it adds,
  which divided by K is what one of K partitions costs (in a whole build's peak the ~100 MiB it always holds
  hides it);
- `binarize` of the built corpus with a small SentencePiece model that the benchmark trains (`xlmr-ds spm
  train`) on the first size's corpus: bytes per second per core with 1 rank and with RANKS ranks under mpiexec,
  the peak resident memory of a rank.
The memory the commands hold whatever the input (the interpreter, libraries, LID and SentencePiece models) is
measured once on a tiny input and subtracted to give the memory each adds.

A power law y = c * bytes^k is fitted to each measure over the sizes (k near 1: linear) and extrapolated to
all of CC-100 (2.5 TB) spread over --nodes x --cores-per-node ranks (perfect spreading assumed: each rank
does its share; the dedup's partitions hold every rank's paragraphs of a piece of the hash space). Run:

    python benchmarks/corpus_scale.py --out /tmp/corpus-scale --megabytes 15 45 150 \\
        --json benchmarks/results/corpus_scale_cpu.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DUPLICATE_SHARE = 0.10
"""Share of lines that are a copy of an earlier line of their language."""
DOCUMENT_LINES = (1, 6)
"""Lines per document, drawn uniformly (as in the demo corpus)."""
LINE_WORDS = (6, 24)
"""Words per new line, drawn uniformly."""
ZIPF_EXPONENT = 1.1
COPY_POOL = 50_000
"""Recent lines of a language that a copy is drawn from."""
SHARDS = 8
"""Raw shards per size: corpus build gives each rank whole shards."""
SPM_VOCAB, SPM_SAMPLE_LINES = 8000, 100_000
RANKS = 2
"""Ranks of the mpiexec binarize measurement."""
BASELINE_MEGABYTES = 0.2
"""The tiny input whose peak memory is the commands' fixed memory."""
CC100_BYTES = 2.5e12
"""CC-100 (Conneau et al. 2019): 2.5 TB of text."""
NO_SPACES = {"zh", "ja", "th"}
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
LANGUAGES_CSV = Path(__file__).parent / "data" / "cc100_languages.csv"
HASH_FLUSH_BYTES = 72
"""Bytes per buffered hash record while build.py's _HashWriter flushes (from its code: the pending records 16, their
concatenation 16, partitions 8, the sort's order 8, the sorted records 16 and partitions 8)."""
SUPERLINEAR = 1.1
"""An exponent above this counts as growing faster than linearly."""


def vocabularies(seed: int, scratch: Path) -> dict[str, tuple[list[str], float]]:
    """language -> (words, share of the demo corpus's bytes), from the demo corpus written with `seed`. Languages
    written without spaces are cut into runs of 1-4 characters."""
    from xlmr_ds.prep.demo.corpus import write_demo_corpus

    sizes = write_demo_corpus(scratch, seed=seed)
    total = sum(sizes.values())
    rng = np.random.default_rng(seed)
    words = {}
    for language, size in sizes.items():
        text = (scratch / f"{language}.txt").read_text(encoding="utf-8")
        if language in NO_SPACES:
            text = "".join(text.split())
            cuts = np.cumsum(rng.integers(1, 5, len(text)))
            cuts = cuts[cuts < len(text)]
            tokens = [text[a:b] for a, b in zip(np.concatenate([[0], cuts]), np.append(cuts, len(text)))]
        else:
            tokens = text.split()
        words[language] = (sorted(set(tokens)), size / total)
    shutil.rmtree(scratch)
    return words


def write_corpus(out: Path, megabytes: float, seed: int = 0) -> dict:
    """SHARDS raw shards of synthetic text, about `megabytes` MB in all; returns what was written."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    words = vocabularies(seed, out / ".vocabulary")
    languages = sorted(words)
    shares = np.array([words[language][1] for language in languages])
    pools, weights = [], []
    rng = np.random.default_rng([seed, 1])
    for language in languages:
        pool = np.array(words[language][0], dtype=object)
        rng.shuffle(pool)  # which words are frequent is part of the seeded draw
        ranks = np.arange(1, len(pool) + 1, dtype=np.float64)
        pools.append(pool)
        weights.append(np.cumsum(ranks ** -ZIPF_EXPONENT) / np.sum(ranks ** -ZIPF_EXPONENT))
    copies: list[list[str]] = [[] for _ in languages]
    target = int(megabytes * 1e6)
    shard_bytes = math.ceil(target / SHARDS)
    written = {"bytes": 0, "lines": 0, "documents": 0, "copied_lines": 0}
    shard, shard_size, handle = 0, 0, open(out / "raw-0.txt", "wb")
    while written["bytes"] < target:
        # A batch of documents, drawn in bulk; then each line joined.
        count = 256
        language_of = rng.choice(len(languages), count, p=shares / shares.sum())
        lines_of = rng.integers(DOCUMENT_LINES[0], DOCUMENT_LINES[1] + 1, count)
        lines = int(lines_of.sum())
        copy = rng.random(lines) < DUPLICATE_SHARE
        word_counts = rng.integers(LINE_WORDS[0], LINE_WORDS[1] + 1, lines)
        uniform = rng.random(int(word_counts.sum()))
        picks = rng.random(lines)
        line, word = 0, 0
        for document in range(count):
            if written["bytes"] >= target:
                break
            index = language_of[document]
            separator = "" if languages[index] in NO_SPACES else " "
            recent = copies[index]
            document_lines = []
            for _ in range(lines_of[document]):
                if copy[line] and recent:
                    document_lines.append(recent[int(picks[line] * len(recent))])
                    written["copied_lines"] += 1
                else:
                    chosen = np.searchsorted(weights[index], uniform[word:word + word_counts[line]])
                    new = separator.join(pools[index][np.minimum(chosen, len(pools[index]) - 1)])
                    new = new[0].upper() + new[1:] + ("。" if languages[index] in {"zh", "ja"} else ".")
                    document_lines.append(new)
                    if len(recent) < COPY_POOL:
                        recent.append(new)
                    else:
                        recent[int(picks[line] * COPY_POOL)] = new
                word += word_counts[line]
                line += 1
            if shard_size >= shard_bytes and shard + 1 < SHARDS:
                handle.close()
                shard, shard_size = shard + 1, 0
                handle = open(out / f"raw-{shard}.txt", "wb")
            text = ("\n".join(document_lines) + "\n\n").encode("utf-8")
            handle.write(text)
            written["bytes"] += len(text)
            written["lines"] += len(document_lines)
            written["documents"] += 1
            shard_size += len(text)
    handle.close()
    written["shards"] = shard + 1
    return written


def run_measured(command: list[str]) -> dict:
    """Run `command` (in a child of this small process); its wall time, peak resident memory (the largest of its
    processes) and output."""
    started = time.perf_counter()
    child = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "XLMR_DS_VERBOSE": "0"})
    seconds = time.perf_counter() - started
    if child.returncode:
        sys.exit(f"corpus_scale: {' '.join(command)} failed:\n{child.stderr[-3000:]}")
    return {"wall_seconds": seconds, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
            "stdout": child.stdout}


def xlmr_ds(*arguments: str, ranks: int = 1) -> list[str]:
    command = [sys.executable, "-m", "xlmr_ds", *arguments]
    return [MPIEXEC, "-n", str(ranks), *command] if ranks > 1 else command


def build(raw: Path, out: Path, partitions: int = 64) -> dict:
    """`corpus build` on one rank: its own seconds (stats.json, without the interpreter's start) and passes."""
    shutil.rmtree(out, ignore_errors=True)
    measured = _child("--run", *xlmr_ds("corpus", "build", "--input", str(raw), "--out", str(out), "--no-progress",
                                        "--hash-partitions", str(partitions)))
    stats = json.loads((out / "stats.json").read_text())
    return {"seconds": stats["seconds"], "wall_seconds": measured["wall_seconds"],
            "peak_rss_bytes": measured["peak_rss_bytes"], "read_bytes": stats["read"]["bytes"],
            "paragraphs": stats["read"]["paragraphs"], "documents": stats["read"]["documents"],
            "duplicate_paragraphs": stats["duplicate_paragraphs"]["paragraphs"],
            "kept_bytes": stats["kept"]["bytes"], "languages": len(stats["languages"]),
            "pass_seconds": stats["seconds_by_rank"][0]}


BINARIZE_REPORT = re.compile(r"([\d,.]+) MB in ([\d.]+) s with (\d+) rank\(s\)(?: on [^:]+)?: ([\d,.]+) MB/s")


def binarize(corpus: Path, spm: Path, out: Path, ranks: int = 1) -> dict:
    """`binarize` on `ranks` ranks: its own seconds (from the MB/s it prints, whose 4 digits are finer than its
    seconds'), bytes read, the peak of a rank."""
    shutil.rmtree(out, ignore_errors=True)
    measured = _child("--run", *xlmr_ds("binarize", "--input", str(corpus), "--spm", str(spm), "--out", str(out),
                                        "--no-progress", ranks=ranks))
    report = BINARIZE_REPORT.search(measured["stdout"])
    manifest = json.loads((out / "manifest.json").read_text())
    read = sum(entry["bytes_read"] for entry in manifest["languages"].values())
    largest = max(manifest["languages"].values(), key=lambda entry: entry["bytes_read"])
    return {"seconds": read / 1e6 / float(report.group(4).replace(",", "")), "wall_seconds": measured["wall_seconds"],
            "peak_rss_bytes": measured["peak_rss_bytes"], "bytes": read,
            "largest_language_bytes": largest["bytes_read"], "largest_language_documents": largest["documents"],
            "tokens": sum(entry["tokens"] for entry in manifest["languages"].values()),
            "sequences": sum(entry["sequences"] for entry in manifest["languages"].values())}


def largest_language_share() -> float:
    """English's share of CC-100's bytes (Conneau et al. 2019, Table 6)."""
    with open(LANGUAGES_CSV, encoding="utf-8") as rows:
        sizes = [float(row["size_gib"]) for row in csv.DictReader(line for line in rows if not line.startswith("#"))]
    return max(sizes) / sum(sizes)


def _flush_records() -> int:
    from xlmr_ds.prep.corpus.build import _FLUSH_RECORDS

    return _FLUSH_RECORDS


def write_hashes(raw: Path, tmp: Path) -> dict:
    """corpus build's pass 1 (build.py _read_and_hash) on one rank with one hash partition: every paragraph's
    16-byte record in tmp/hashes.r0.p0, as a build with --hash-partitions 1 writes it."""
    from xlmr_ds.prep.corpus.build import BuildSettings, RankStats, _read_and_hash
    from xlmr_ds.prep.corpus.shards import LanguageSource, discover_raw_shards, split_work

    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    segments = split_work(LanguageSource("raw", tuple(discover_raw_shards([str(raw)]))), 1, whole_shards=True)[0]
    stats = RankStats()
    _read_and_hash(segments, BuildSettings(hash_partitions=1), tmp, 0, stats, None)
    return {"paragraphs": stats.read.paragraphs}


def measure_dedup(tmp: Path) -> dict:
    """One fresh process: corpus build's pass 2 (build.py _find_duplicates) on a partition that holds every
    paragraph; its seconds and the peak resident memory it adds to the process's."""
    from xlmr_ds.prep.corpus.build import _find_duplicates

    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    _find_duplicates(tmp, 0, [0])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "added_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            - baseline_rss, "duplicates": (tmp / "dup.p0").stat().st_size // 8}


def power_law(x: list[float], values: list[float]) -> tuple[float, float]:
    """(c, k) of values = c * x^k, least squares in log space (a value of 0, such as no memory added at a small
    size, counts as 1e-9)."""
    k, log_c = np.polyfit(np.log(x), np.log(np.maximum(values, 1e-9)), 1)
    return math.exp(log_c), float(k)


def _child(*arguments: str) -> dict:
    """Run this script with `arguments` in a new process; its last line of output, as JSON."""
    child = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True)
    if child.returncode:
        sys.exit(f"corpus_scale: {' '.join(arguments[:4])} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.splitlines()[-1])


FITTED = {
    # measure: (the size it is fitted against, its value in a row)
    "build_seconds": ("raw_bytes", lambda row: row["build"]["seconds"]),
    "build_added_rss_bytes": ("raw_bytes", lambda row: row["build"]["added_rss_bytes"]),
    "dedup_seconds": ("raw_bytes", lambda row: row["dedup_one_partition"]["seconds"]),
    "dedup_added_rss_bytes": ("raw_bytes", lambda row: row["dedup_one_partition"]["added_rss_bytes"]),
    "binarize_seconds": ("corpus_bytes", lambda row: row["binarize"]["seconds"]),
    "binarize_ranks_seconds": ("corpus_bytes", lambda row: row["binarize_ranks"]["seconds"]),
    # Rank 0 gathers the document ends of a language from every rank: its memory follows the largest language.
    "binarize_added_rss_bytes": ("largest_language_bytes", lambda row: row["binarize"]["added_rss_bytes"]),
}


def fit_rows(rows: list[dict]) -> dict:
    """A power law for each measure of FITTED, over the rows."""
    fits = {}
    for name, (x_name, value) in FITTED.items():
        sizes = [row[x_name] if x_name in row else row["binarize"][x_name] for row in rows]
        c, k = power_law(sizes, [value(row) for row in rows])
        fits[name] = {"x": x_name, "c": c, "exponent": k}
    return fits


def extrapolate(rows: list[dict], fits: dict, nodes: int, cores_per_node: int, total_bytes: float = CC100_BYTES,
                hash_partitions: int = 64) -> dict:
    """`total_bytes` of raw input over nodes x cores_per_node ranks, each doing its share (binarize's input taken
    as the same size: CC-100's 2.5 TB is the built corpus; its raw crawl was larger). Rates per core are the
    largest size's; times at the cluster are the fits at one rank's share."""
    ranks = nodes * cores_per_node
    share = total_bytes / ranks
    last = rows[-1]

    def at(name: str, x: float) -> float:
        try:
            return fits[name]["c"] * x ** fits[name]["exponent"]
        except OverflowError:  # a wild exponent from noise at tiny sizes (memory that barely moved)
            return math.inf

    build_rate = last["raw_bytes"] / last["build"]["seconds"]
    binarize_rate = last["corpus_bytes"] / last["binarize"]["seconds"]
    ranks_rate = last["corpus_bytes"] / last["binarize_ranks"]["seconds"] / RANKS
    bytes_per_paragraph = last["raw_bytes"] / last["build"]["paragraphs"]
    paragraphs = total_bytes / bytes_per_paragraph
    dedup_per_paragraph = last["dedup_one_partition"]["added_rss_bytes"] / last["build"]["paragraphs"]
    # A partition holds every rank's paragraphs whose hash falls in it: 1/K of all of them, whatever R.
    partition_bytes = total_bytes / hash_partitions
    return {
        "total_bytes": total_bytes, "nodes": nodes, "cores_per_node": cores_per_node, "ranks": ranks,
        "hash_partitions": hash_partitions,
        "build_bytes_per_second_per_core": build_rate,
        "binarize_bytes_per_second_per_core": binarize_rate,
        f"binarize_bytes_per_second_per_core_{RANKS}_ranks": ranks_rate,
        "build_hours_one_core": at("build_seconds", total_bytes) / 3600,
        "build_hours": at("build_seconds", share) / 3600,
        "build_hours_linear": total_bytes / build_rate / ranks / 3600,
        "binarize_hours_one_core": at("binarize_seconds", total_bytes) / 3600,
        "binarize_hours": at("binarize_seconds", share) / 3600,
        "binarize_hours_linear": total_bytes / binarize_rate / ranks / 3600,
        "build_rank_peak_rss_bytes": last["baseline"]["build_peak_rss_bytes"] + at("build_added_rss_bytes", share),
        # The hash writer's flush (build.py _HashWriter) holds about HASH_FLUSH_BYTES per buffered record, at most
        # _FLUSH_RECORDS of them: the build's growth, bounded.
        "build_rank_peak_rss_bound_bytes": last["baseline"]["build_peak_rss_bytes"]
        + HASH_FLUSH_BYTES * _flush_records(),
        "binarize_rank0_peak_rss_bytes": last["baseline"]["binarize_peak_rss_bytes"]
        + at("binarize_added_rss_bytes", total_bytes * largest_language_share()),
        "bytes_per_paragraph": bytes_per_paragraph,
        "paragraphs": paragraphs,
        "dedup_bytes_per_paragraph": dedup_per_paragraph,
        "dedup_partition_rss_bytes": at("dedup_added_rss_bytes", partition_bytes),
        "dedup_partition_rss_bytes_linear": dedup_per_paragraph * paragraphs / hash_partitions,
        "dedup_partition_rss_bytes_k_equals_ranks": dedup_per_paragraph * paragraphs / max(ranks, hash_partitions),
        "dedup_partition_minutes": at("dedup_seconds", partition_bytes) / 60,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="where the synthetic corpora and outputs go (required)")
    parser.add_argument("--megabytes", type=float, nargs="+", default=[15, 45, 150], help="input sizes, MB")
    parser.add_argument("--nodes", type=int, default=32, help="nodes of the extrapolation (default 32)")
    parser.add_argument("--cores-per-node", type=int, default=16,
                        help="ranks per node of the extrapolation (default 16: a modest CPU node, or a share of a "
                             "GPU node's 100+ cores)")
    parser.add_argument("--spm-vocab", type=int, default=SPM_VOCAB,
                        help=f"pieces of the tokenizer the benchmark trains (default {SPM_VOCAB:,})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the measures, fits and extrapolations here")
    parser.add_argument("--write", type=float, help=argparse.SUPPRESS)  # the child that writes a corpus
    parser.add_argument("--hash", type=Path, help=argparse.SUPPRESS)  # the child that writes a build's hashes
    parser.add_argument("--dedup", type=Path, help=argparse.SUPPRESS)  # the child that measures the dedup
    parser.add_argument("--run", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)  # the child that runs a command
    args = parser.parse_args(argv)
    if args.run:
        print(json.dumps(run_measured(args.run)))
        return 0
    if args.dedup:
        print(json.dumps(measure_dedup(args.dedup)))
        return 0
    if args.out is None:
        parser.error("the following arguments are required: --out")
    if args.hash:
        print(json.dumps(write_hashes(args.hash, args.out)))
        return 0
    if args.write is not None:
        print(json.dumps(write_corpus(args.out, args.write, args.seed)))
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    # The fixed memory of each command: a tiny input, built, and binarized with the tokenizer trained below.
    tiny = args.out / "tiny"
    _child("--out", str(tiny / "raw"), "--write", repr(BASELINE_MEGABYTES), "--seed", str(args.seed))
    tiny_build = build(tiny / "raw", tiny / "corpus")
    rows, spm, baseline = [], args.out / "spm" / "synthetic", {}
    for megabytes in args.megabytes:
        root = args.out / f"mb-{megabytes:g}"
        started = time.perf_counter()
        # Each step in a child of this small process: Linux keeps a process's peak resident size across exec,
        # so a child of a process that held a large heap would start with its peak as its own.
        written = _child("--out", str(root / "raw"), "--write", repr(megabytes), "--seed", str(args.seed))
        write_seconds = time.perf_counter() - started
        os.sync()  # the written files' writeback would otherwise run under the measures
        built = build(root / "raw", root / "corpus")
        if not baseline:  # the tokenizer: trained once, on the first size's corpus
            shutil.rmtree(spm.parent, ignore_errors=True)
            spm.parent.mkdir(parents=True)
            _child("--run", *xlmr_ds("spm", "train", "--input", str(root / "corpus"), "--out", str(spm),
                                     "--vocab-size", str(args.spm_vocab), "--sample-lines", str(SPM_SAMPLE_LINES)))
            tiny_binarize = binarize(tiny / "corpus", spm.with_suffix(".model"), tiny / "data")
            baseline = {"build_peak_rss_bytes": tiny_build["peak_rss_bytes"],
                        "binarize_peak_rss_bytes": tiny_binarize["peak_rss_bytes"]}
        _child("--out", str(root / "hashes"), "--hash", str(root / "raw"))
        dedup = _child("--dedup", str(root / "hashes"))
        binarized = binarize(root / "corpus", spm.with_suffix(".model"), root / "data")
        binarized_ranks = binarize(root / "corpus", spm.with_suffix(".model"), root / "data-ranks", ranks=RANKS)
        for measured, command in ((built, "build"), (binarized, "binarize"), (binarized_ranks, "binarize")):
            measured["added_rss_bytes"] = max(measured["peak_rss_bytes"] - baseline[f"{command}_peak_rss_bytes"], 0)
        row = {"megabytes": megabytes, "raw_bytes": written["bytes"], "corpus_bytes": binarized["bytes"],
               "written": written, "write_seconds": write_seconds, "baseline": baseline, "build": built,
               "dedup_one_partition": dedup, "binarize": binarized, "binarize_ranks": binarized_ranks}
        rows.append(row)
        for removed in ("raw", "corpus", "hashes", "data", "data-ranks"):
            shutil.rmtree(root / removed, ignore_errors=True)
        print(f"{written['bytes'] / 1e6:,.0f} MB, {built['paragraphs']:,} lines ({built['duplicate_paragraphs']:,} "
              f"copies): build {built['seconds']:.1f} s = {written['bytes'] / built['seconds'] / 1e6:.2f} MB/s, "
              f"peak {built['peak_rss_bytes'] / 2**20:,.0f} MiB; dedup of one partition holding every line "
              f"{dedup['seconds']:.2f} s, +{dedup['added_rss_bytes'] / 2**20:,.1f} MiB; binarize "
              f"{binarized['seconds']:.1f} s = {binarized['bytes'] / binarized['seconds'] / 1e6:.2f} MB/s, peak "
              f"{binarized['peak_rss_bytes'] / 2**20:,.0f} MiB; {RANKS} ranks "
              f"{binarized_ranks['bytes'] / binarized_ranks['seconds'] / 1e6:.2f} MB/s, peak "
              f"{binarized_ranks['peak_rss_bytes'] / 2**20:,.0f} MiB per rank", flush=True)
    shutil.rmtree(tiny, ignore_errors=True)
    fits = fit_rows(rows)
    e = extrapolate(rows, fits, args.nodes, args.cores_per_node)
    faster = {name: fit["exponent"] for name, fit in fits.items() if fit["exponent"] > SUPERLINEAR}
    print(f"fixed peak memory (a {BASELINE_MEGABYTES:g} MB input): build "
          f"{baseline['build_peak_rss_bytes'] / 2**20:,.0f} MiB, binarize "
          f"{baseline['binarize_peak_rss_bytes'] / 2**20:,.0f} MiB")
    for name, fit in fits.items():
        print(f"  {name}: grows as {fit['x']}^{fit['exponent']:.2f}")
    print(f"all of CC-100 ({CC100_BYTES / 1e12:g} TB; {e['paragraphs']:,.0f} lines at the synthetic text's "
          f"{e['bytes_per_paragraph']:.0f} bytes per line) on {args.nodes} nodes x {args.cores_per_node} cores = "
          f"{e['ranks']} ranks, each doing its share:")
    print(f"  corpus build: {e['build_bytes_per_second_per_core'] / 1e6:.2f} MB/s per core; {e['build_hours']:.2f} h "
          f"by the fit, {e['build_hours_linear']:.2f} h at the measured rate; peak per rank "
          f"{e['build_rank_peak_rss_bytes'] / 2**30:.2f} GiB by the fit, at most "
          f"{e['build_rank_peak_rss_bound_bytes'] / 2**30:.2f} GiB by the code (its growth is the hash writer's "
          f"buffer, flushed at {_flush_records():,} records)")
    print(f"  dedup: {e['dedup_bytes_per_paragraph']:.0f} bytes per line of its partition; K={e['hash_partitions']} "
          f"partitions of {e['paragraphs'] / e['hash_partitions']:,.0f} lines: "
          f"{e['dedup_partition_rss_bytes'] / 2**30:.1f} GiB and {e['dedup_partition_minutes']:.1f} min each by the "
          f"fits ({e['dedup_partition_rss_bytes_linear'] / 2**30:.1f} GiB linear); with K = ranks "
          f"{e['dedup_partition_rss_bytes_k_equals_ranks'] / 2**30:.2f} GiB")
    print(f"  binarize: {e['binarize_bytes_per_second_per_core'] / 1e6:.2f} MB/s per core (1 rank), "
          f"{e[f'binarize_bytes_per_second_per_core_{RANKS}_ranks'] / 1e6:.2f} with {RANKS}; "
          f"{e['binarize_hours']:.2f} h by the fit, {e['binarize_hours_linear']:.2f} h at the measured rate; "
          f"rank 0's peak {e['binarize_rank0_peak_rss_bytes'] / 2**30:.2f} GiB by the fit at English's "
          f"{largest_language_share():.0%} of the bytes")
    print(f"  faster than linear (exponent > {SUPERLINEAR}): "
          + (", ".join(f"{name} ({k:.2f})" for name, k in faster.items()) or "none"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "rows": rows, "fits": fits, "extrapolated": e, "faster_than_linear": faster,
            "assumptions": {"duplicate_share": DUPLICATE_SHARE, "document_lines": DOCUMENT_LINES,
                            "line_words": LINE_WORDS, "shards": SHARDS, "spm_vocab": args.spm_vocab,
                            "spm_sample_lines": SPM_SAMPLE_LINES, "ranks": RANKS, "seed": args.seed}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
