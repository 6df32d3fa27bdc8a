"""The data path at CC-100's scale, by simulation: how the start of a run grows with the corpus.

A binarize output with CC-100's shape is written at a fraction of its size: the 100 languages of
`benchmarks/data/cc100_languages.csv` (Conneau et al. 2019, Table 6), each with the paper's share of tokens,
as real .idx files in the format `xlmr-ds binarize` writes and sparse .bin files (no text: the index side is
what is measured; every token reads as 0). Lines hold LINE_TOKENS tokens on average (a geometric spread, with
a few lines longer than a block) and documents DOCUMENT_LINES lines, both assumptions about web text.

Each fraction is then measured in a fresh process (its peak memory is its own):
- the block index: building the tables of every language on one process, the peak resident memory it adds to
  the process's (the interpreter's and libraries' own is measured first and subtracted), the bytes of the
  tables per block; then built again by `mpiexec -n 2 xlmr-ds data index` (the languages spread over two
  processes, this machine's cores), its time as the command reports it;
- the loader's start-up: the first micro-batch of a fresh run, and of a run resumed at the end of XLM-R's
  recipe (1.5M steps of 8,192 sequences: consumed_samples = 12.3e9), with XLM-R's global batch over 512 ranks
  of 16 sequences, as rank 0 sees it;
- the loader's throughput: masked 512-token samples per second, one process, from either start, over the same
  samples twice: on their first read (the sparse files' pages come from the file system, which depends on it
  more than on the corpus's size) and read again from the page cache (the loader's own cost).

A power law y = c * lines^k is fitted to each measure over the fractions (k near 1: linear) and extrapolated
to all of CC-100 (fraction 1), then compared with the aims of the data-scale work. The index's time on 32
processes is the slowest process's share under the build's own assignment (block_index.assign_languages) of
CC-100's languages at full size, at the per-line rate of the one-process fit: English alone bounds it. Run:

    python benchmarks/data_scale.py --out /tmp/scale --fractions 0.001 0.003333 0.01 \\
        --json benchmarks/results/data_scale_cpu.json
"""

from __future__ import annotations

import argparse
import csv
import hashlib
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

LANGUAGES_CSV = Path(__file__).parent / "data" / "cc100_languages.csv"
LINE_TOKENS = 32
"""Mean tokens per line, </s> included (a line of web text holds a few tens of tokens)."""
DOCUMENT_LINES = 8
"""Mean lines per document."""
LONG_LINE_SHARE = 0.001
"""Lines longer than a 512-token block (cut into pieces by the block packing)."""
VOCAB_SIZE = 250_002
RECIPE_STEPS, GLOBAL_BATCH, RANKS, MICRO_BATCH = 1_500_000, 8192, 512, 16
BLOCK_SIZE = 512
INDEX_PROCESSES = 32
AIMS = {"index_minutes_32_processes": 5.0, "index_bytes_per_line": 16.0, "startup_seconds": 60.0, "loader_gib": 4.0,
        "samples_per_second": 2000.0}


def cc100_languages() -> dict[str, int]:
    """Language name -> tokens in CC-100 (the paper's millions)."""
    with open(LANGUAGES_CSV, encoding="utf-8") as rows:
        return {row["name"]: int(row["tokens_millions"]) * 1_000_000
                for row in csv.DictReader(line for line in rows if not line.startswith("#"))}


def synthetic_lengths(tokens: int, rng: np.random.Generator) -> np.ndarray:
    """Line lengths (int32, each >= 2, </s> included) whose sum is exactly `tokens` (>= 2)."""
    lines = max(1, tokens // LINE_TOKENS)
    raw = rng.geometric(1 / LINE_TOKENS, lines).astype(np.float64) + 1
    raw[rng.random(lines) < LONG_LINE_SHARE] = 3 * BLOCK_SIZE
    lengths = np.maximum(np.floor(raw * tokens / raw.sum()).astype(np.int64), 2)
    difference = tokens - int(lengths.sum())
    if difference > 0:  # floor lost less than one token per line
        lengths[:difference] += 1
    elif difference < 0:  # the minimum of 2 added some: take them back from longer lines
        longer = np.flatnonzero(lengths > 2)[:-difference]
        lengths[longer] -= 1
    assert lengths.sum() == tokens and lengths.min() >= 2
    return lengths.astype(np.int32)


def write_dataset(out: Path, fraction: float, seed: int = 0) -> dict:
    """A binarize output of CC-100's shape at `fraction`; returns lines and tokens written."""
    from xlmr_ds.dataset.indexed import bin_path, idx_path, token_dtype, write_index
    from xlmr_ds.dataset.manifest import write_manifest

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    dtype = token_dtype(VOCAB_SIZE)
    languages, total_lines = {}, 0
    for index, (language, tokens) in enumerate(cc100_languages().items()):
        rng = np.random.default_rng([seed, index])
        lengths = synthetic_lengths(max(2, round(tokens * fraction)), rng)
        document_sizes = np.maximum(rng.geometric(1 / DOCUMENT_LINES, len(lengths)), 1)
        document_starts = np.concatenate([[0], np.cumsum(document_sizes)])
        document_indices = np.append(document_starts[document_starts < len(lengths)], len(lengths))
        write_index(idx_path(out / language), dtype, len(lengths), [lengths], document_indices)
        with open(bin_path(out / language), "wb") as data:  # sparse: the size, no text
            data.truncate(int(lengths.sum(dtype=np.int64)) * dtype.itemsize)
        languages[language] = {"documents": len(document_indices) - 1, "sequences": len(lengths),
                               "tokens": int(lengths.sum(dtype=np.int64)), "bytes_read": 0,
                               "replaced_characters": 0, "nul_characters": 0}
        total_lines += len(lengths)
    tokenizer = out / "synthetic.model"
    tokenizer.write_bytes(b"no tokenizer: a synthetic dataset of CC-100's shape\n")
    write_manifest(out, tokenizer, {"source": "synthetic", "sha256": hashlib.sha256(tokenizer.read_bytes()).hexdigest(),
                                    "pieces": VOCAB_SIZE - 2, "vocab_size": VOCAB_SIZE}, dtype, languages, [])
    tokenizer.unlink()
    return {"lines": total_lines, "tokens": sum(entry["tokens"] for entry in languages.values()),
            "largest_language_lines": max(entry["sequences"] for entry in languages.values())}


def measure(data_dir: Path, samples: int) -> dict:
    """One fresh process: the block index built alone, then the loader started fresh and resumed, and its
    throughput over the same samples twice: first read (the pages come from the file system) and again (from
    the page cache: the loader's own cost)."""
    from xlmr_ds.dataset import block_index
    from xlmr_ds.dataset.config import DataConfig
    from xlmr_ds.dataset.loader import PretrainingData, TrainLoader
    from xlmr_ds.dataset.manifest import read_manifest
    from xlmr_ds.world import SingleProcess

    config = DataConfig(str(data_dir), block_size=BLOCK_SIZE, valid_fraction=0.005)
    languages = sorted(read_manifest(data_dir)["languages"])
    shutil.rmtree(data_dir / ".index", ignore_errors=True)  # the block index's cache: built afresh
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the interpreter and libraries
    started = time.perf_counter()
    cache = block_index.cache_directory(data_dir, languages, BLOCK_SIZE, config.valid_fraction, config.split_seed)
    block_index.build_cache(data_dir, cache, languages, BLOCK_SIZE, config.valid_fraction, config.split_seed,
                            SingleProcess(), progress=False)
    index_seconds = time.perf_counter() - started
    index_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    data = PretrainingData(config, batch_size=GLOBAL_BATCH)
    open_seconds = time.perf_counter() - started
    blocks = sum(len(train) + len(held_out) for train, held_out in data.blocks.values())
    table_bytes = sum(train.nbytes + held_out.nbytes for train, held_out in data.blocks.values())
    result = {"index_seconds": index_seconds, "index_peak_rss_bytes": index_rss - baseline_rss,
              "baseline_rss_bytes": baseline_rss, "blocks": blocks,
              "table_bytes_per_block": table_bytes / max(blocks, 1), "open_seconds": open_seconds}
    for name, consumed in (("fresh", 0), ("resume", RECIPE_STEPS * GLOBAL_BATCH)):
        for reading in ("first_read", "cached"):
            loader = TrainLoader(data, GLOBAL_BATCH, MICRO_BATCH, 0, RANKS)
            loader.consumed_samples = consumed
            started = time.perf_counter()
            batches = iter(loader)
            next(batches)
            if reading == "first_read":
                result[f"startup_{name}_seconds"] = open_seconds + time.perf_counter() - started
            started, seen = time.perf_counter(), 0
            while seen < samples:
                seen += len(next(batches)["input_ids"])
            result[f"samples_per_second_{name}_{reading}"] = seen / (time.perf_counter() - started)
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["anonymous_rss_bytes"] = anonymous_rss()
    result["train_blocks"] = {lang: len(train) for lang, (train, _) in data.blocks.items()}
    return result


def anonymous_rss() -> int:
    """This process's resident memory that no file backs (the memory-mapped tables and datasets left out)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("RssAnon:"))


def permutation_bytes(train_blocks: dict[str, float]) -> float:
    """What a process holds for the languages' epoch orders: a stored permutation (int64) of each language of at
    most PERMUTATION_LIMIT blocks, two epochs each (the order's cache); the larger ones use a keyed bijection."""
    from xlmr_ds.dataset.blending import PERMUTATION_LIMIT

    return 2 * 8 * sum(blocks for blocks in train_blocks.values() if blocks <= PERMUTATION_LIMIT)


def index_with_two_processes(data_dir: Path) -> float:
    """Seconds `mpiexec -n 2 xlmr-ds data index` reports for building the index afresh."""
    shutil.rmtree(data_dir / ".index", ignore_errors=True)
    command = [str(Path(sys.executable).parent / "mpiexec"), "-n", "2", sys.executable, "-m", "xlmr_ds", "data",
               "index", "--data", str(data_dir), "--block-size", str(BLOCK_SIZE), "--no-progress"]
    child = subprocess.run(command, capture_output=True, text=True)
    if child.returncode:
        sys.exit(f"data_scale: {' '.join(command)} failed:\n{child.stderr[-3000:]}")
    return float(re.search(r"lines in ([\d.]+) s with 2 processes", child.stdout).group(1))


def slowest_share(line_counts: dict[str, float], processes: int) -> float:
    """Lines of the process with the most, when the index build assigns `line_counts` to `processes`."""
    from xlmr_ds.dataset.block_index import assign_languages

    return max(sum(line_counts[lang] for lang in share) for share in assign_languages(line_counts, processes))


def power_law(lines: list[float], values: list[float]) -> tuple[float, float]:
    """(c, k) of values = c * lines^k, least squares in log space (a value of 0, such as no memory added at a
    tiny fraction, counts as 1e-9)."""
    k, log_c = np.polyfit(np.log(lines), np.log(np.maximum(values, 1e-9)), 1)
    return math.exp(log_c), k


def _child(*arguments: str) -> dict:
    """Run this script with `arguments` in a new process; its last line of output, as JSON."""
    child = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True,
                           env={**os.environ, "XLMR_DS_VERBOSE": "0"})
    if child.returncode:
        sys.exit(f"data_scale: {' '.join(arguments)} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where the synthetic datasets are written")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.001, 0.003333, 0.01])
    parser.add_argument("--samples", type=int, default=2000, help="samples read to time the loader")
    parser.add_argument("--json", type=Path, help="write the measures, fits and extrapolations here")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process that measures
    parser.add_argument("--write", type=float, help=argparse.SUPPRESS)  # the child process that writes
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.samples)))
        return 0
    if args.write is not None:
        print(json.dumps(write_dataset(args.out, args.write)))
        return 0
    rows = []
    for fraction in args.fractions:
        data_dir = args.out / f"cc100-{fraction:g}"
        # Each step in a child of this small process: Linux keeps a process's peak resident size across exec,
        # so a child of a process that held the written arrays would start with their peak as its own.
        started = time.perf_counter()
        shape = _child("--out", str(data_dir), "--write", repr(fraction))
        written = time.perf_counter() - started
        os.sync()  # the written files' writeback would otherwise run under the measures (seen: 25x slower reads)
        measured = _child("--out", str(args.out), "--measure", str(data_dir), "--samples", str(args.samples))
        row = {"fraction": fraction, **shape, "write_seconds": written, **measured,
               "index_seconds_2_processes": index_with_two_processes(data_dir)}
        rows.append(row)
        print(f"fraction {fraction:g}: {row['lines']:,} lines ({row['largest_language_lines']:,} in English), "
              f"{row['blocks']:,} blocks; index {row['index_seconds']:.1f} s "
              f"({row['index_seconds_2_processes']:.1f} s with 2 processes), "
              f"+{row['index_peak_rss_bytes'] / 2**30:.2f} GiB peak; start-up fresh "
              f"{row['startup_fresh_seconds']:.2f} s, resumed {row['startup_resume_seconds']:.2f} s; "
              f"samples/s fresh {row['samples_per_second_fresh_first_read']:,.0f} first read, "
              f"{row['samples_per_second_fresh_cached']:,.0f} cached; resumed "
              f"{row['samples_per_second_resume_first_read']:,.0f} / {row['samples_per_second_resume_cached']:,.0f}",
              flush=True)
    full = rows[-1]["lines"] / rows[-1]["fraction"]
    full_largest = rows[-1]["largest_language_lines"] / rows[-1]["fraction"]
    fits = {}
    for measure_name in ("index_seconds", "index_peak_rss_bytes", "startup_fresh_seconds", "startup_resume_seconds"):
        c, k = power_law([r["lines"] for r in rows], [r[measure_name] for r in rows])
        fits[measure_name] = {"c": c, "exponent": k, "at_full_scale": c * full ** k}
    index_minutes = fits["index_seconds"]["at_full_scale"] / 60
    full_lines = {lang: tokens / LINE_TOKENS for lang, tokens in cc100_languages().items()}
    seconds_per_line = fits["index_seconds"]["at_full_scale"] / full
    index_minutes_32 = slowest_share(full_lines, INDEX_PROCESSES) * seconds_per_line / 60
    # Memory per line of the language being built: the peak over the largest language's lines, at the largest
    # fraction measured (the peak is reached while building it).
    bytes_per_line = rows[-1]["index_peak_rss_bytes"] / rows[-1]["largest_language_lines"]
    # A loader's own memory at full scale: what it holds at the largest fraction, less its epoch orders, plus
    # those at full size (the block counts scaled up; the largest languages cross to the keyed bijection).
    last = rows[-1]
    full_blocks = {lang: blocks / last["fraction"] for lang, blocks in last["train_blocks"].items()}
    loader_bytes = (last["anonymous_rss_bytes"] - permutation_bytes(last["train_blocks"])
                    + permutation_bytes(full_blocks))
    aims = {
        "index_minutes_one_process": index_minutes,
        "index_minutes_32_processes": index_minutes_32,
        "index_speedup_2_processes_measured": rows[-1]["index_seconds"] / rows[-1]["index_seconds_2_processes"],
        "index_bytes_per_line_of_the_largest_language": bytes_per_line,
        "loader_anonymous_bytes": loader_bytes,
        "startup_fresh_seconds": fits["startup_fresh_seconds"]["at_full_scale"],
        "startup_resume_seconds": fits["startup_resume_seconds"]["at_full_scale"],
        "samples_per_second_cached": min(min(r["samples_per_second_fresh_cached"],
                                             r["samples_per_second_resume_cached"]) for r in rows),
        "samples_per_second_first_read": min(min(r["samples_per_second_fresh_first_read"],
                                                 r["samples_per_second_resume_first_read"]) for r in rows),
    }
    print(f"all of CC-100: {full:,.0f} lines ({full_largest:,.0f} in English)")
    for name, fit in fits.items():
        print(f"  {name}: grows as lines^{fit['exponent']:.2f}; at full scale {fit['at_full_scale']:,.1f}")
    print(f"  index: {index_minutes:.1f} min on one process, {index_minutes_32:.1f} min on {INDEX_PROCESSES} (English "
          f"alone; aim {AIMS['index_minutes_32_processes']:g}); 2 processes measured "
          f"{aims['index_speedup_2_processes_measured']:.2f}x faster than one; {bytes_per_line:.1f} bytes of peak "
          f"memory per line of English (aim {AIMS['index_bytes_per_line']:g})")
    print(f"  start-up: fresh {aims['startup_fresh_seconds']:.1f} s, resumed at step 1.5M "
          f"{aims['startup_resume_seconds']:.1f} s (aim {AIMS['startup_seconds']:g} s); loader at least "
          f"{aims['samples_per_second_cached']:,.0f} samples/s from the page cache (aim "
          f"{AIMS['samples_per_second']:,.0f}), {aims['samples_per_second_first_read']:,.0f} on first reads of the "
          f"sparse files; {loader_bytes / 2**30:.2f} GiB of a loader's own memory (aim "
          f"{AIMS['loader_gib']:g}), the memory-mapped tables and datasets left out")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "fits": fits, "extrapolated": aims, "aims": AIMS,
                                         "assumptions": {"line_tokens": LINE_TOKENS, "document_lines": DOCUMENT_LINES,
                                                         "long_line_share": LONG_LINE_SHARE}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
