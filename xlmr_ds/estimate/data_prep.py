"""How long the data takes to prepare before training starts: `corpus build`, `binarize` and the block index.

Pure arithmetic on measured rates (no I/O, nothing from training): a corpus build and a binarization spread
over every core of every node (both are MPI-parallel, each rank doing its share; the rate per core is taken to
hold at any rank count), and the block index spread by language over the training job's processes
(dataset/block_index.py: largest language first, so the largest language bounds its time; one process where
they share no file system). The rates come from the CPU benchmarks in benchmarks/ (2-core CPU machine) and are
the figures to update when those are rerun; a real cluster's cores and file system will differ.
"""

from __future__ import annotations

from dataclasses import dataclass

BUILD_BYTES_PER_SECOND_PER_CORE = 3.2e6
"""`xlmr-ds corpus build`: bytes of raw input per second on one core (read, paragraph hashes, dedup, fastText
language identification, filters, write), measured by benchmarks/corpus_scale.py at its largest size
(benchmarks/results/corpus_scale_cpu.json)."""

BINARIZE_BYTES_PER_SECOND_PER_CORE = 2.6e7
"""`xlmr-ds binarize`: bytes of corpus per second on one core (SentencePiece encoding, .bin and .idx writing),
measured by benchmarks/corpus_scale.py at its largest size with one rank (with an 8,000-piece tokenizer: XLM-R's
250,000 pieces may encode more slowly)."""

INDEX_LINES_PER_SECOND_PER_PROCESS = 9.5e6
"""The block index (dataset/blocks: every language's table of 512-token blocks): lines of the binarized corpus
per second on one process, measured by benchmarks/data_scale.py (benchmarks/results/data_scale_cpu.json)."""

CC100_BYTES = 2.5e12
"""CC-100's size (Conneau et al. 2019): 2.5 TB of text."""
CC100_TOKENS = 314_918_000_000
"""CC-100's tokens: the sum of the paper's Table 6 (benchmarks/data/cc100_languages.csv)."""
LINE_TOKENS = 32
"""Mean tokens per line, </s> included (benchmarks/data_scale.py's assumption about web text)."""
LARGEST_LANGUAGE_SHARE = 55_608_000_000 / CC100_TOKENS
"""English's share of CC-100's tokens, and so of its lines: the one language a process of the index builds."""


@dataclass(frozen=True)
class PrepRates:
    """The measured rates the times are computed from."""

    build_bytes_per_second_per_core: float = BUILD_BYTES_PER_SECOND_PER_CORE
    binarize_bytes_per_second_per_core: float = BINARIZE_BYTES_PER_SECOND_PER_CORE
    index_lines_per_second_per_process: float = INDEX_LINES_PER_SECOND_PER_PROCESS


@dataclass(frozen=True)
class PrepTimes:
    """Seconds of each step; they run one after the other."""

    build: float
    binarize: float
    index: float

    @property
    def total(self) -> float:
        return self.build + self.binarize + self.index


def corpus_lines(corpus_bytes: float) -> float:
    """Lines of a corpus of CC-100's shape: its tokens per byte, LINE_TOKENS tokens a line."""
    return corpus_bytes * CC100_TOKENS / CC100_BYTES / LINE_TOKENS


def data_prep_times(corpus_bytes: float, lines: float, nodes: int, cores_per_node: int, index_processes: int = 1,
                    largest_language_share: float = LARGEST_LANGUAGE_SHARE,
                    rates: PrepRates = PrepRates()) -> PrepTimes:
    """Seconds to build (taking the raw input to be the corpus's size; a crawl is larger before dedup and
    filtering) and binarize (both over nodes x cores_per_node ranks) a corpus of `corpus_bytes` bytes, and to
    index its `lines` lines over `index_processes` processes: the larger of an even share and the largest
    language (the longest-processing-time rule used there comes within 4/3 of that)."""
    cores = nodes * cores_per_node
    index_lines = max(lines / index_processes, lines * largest_language_share)
    return PrepTimes(build=corpus_bytes / (rates.build_bytes_per_second_per_core * cores),
                     binarize=corpus_bytes / (rates.binarize_bytes_per_second_per_core * cores),
                     index=index_lines / rates.index_lines_per_second_per_process)
