"""Held-out documents and packing of one language's lines into training blocks (pure NumPy, no I/O).

A block is `<s>` followed by whole lines of one split of one language, in corpus order (crossing document
boundaries is fine, as in RoBERTa's FULL-SENTENCES format), at most `block_size` tokens in all. Every line
already ends with </s>, so every block does too. A line longer than a block is cut into pieces of
block_size - 2 tokens, each given its own </s>.

A block is stored as (token_start, token_count, append_eos): a run of the language's flat token stream
in the .bin, read with one slice. BLOCK_DTYPE is packed: 13 bytes per block, little-endian int64, int32, bool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from xlmr_ds.dataset.sampling import stable_seed

BLOCK_DTYPE = np.dtype([("token_start", np.int64), ("token_count", np.int32), ("append_eos", np.bool_)])
PACK_CHUNK_LINES = 1 << 16
"""Lines packed per step: the packing's working memory is a few tens of bytes per line of one chunk, whatever
the language's size."""


def validation_documents(num_documents: int, fraction: float, seed: int, language: str) -> np.ndarray:
    """Boolean mask of the documents held out for validation: a seeded random `fraction`, at least one
    document when there are two or more, and never all of them."""
    if num_documents < 2 or fraction <= 0.0:
        return np.zeros(num_documents, dtype=bool)
    rng = np.random.default_rng(stable_seed(seed, "validation-split", language))
    count = min(num_documents - 1, max(1, round(fraction * num_documents)))
    held_out = np.zeros(num_documents, dtype=bool)
    held_out[rng.choice(num_documents, size=count, replace=False)] = True
    return held_out


def split_runs(document_indices: np.ndarray, held_out: np.ndarray, want_held_out: bool) -> np.ndarray:
    """Maximal runs [first_sequence, end_sequence) of consecutive documents on the wanted side of the split:
    an int64 array of shape (runs, 2), in corpus order."""
    selected = np.concatenate([[False], np.asarray(held_out) == want_held_out, [False]])
    edges = np.flatnonzero(selected[1:] != selected[:-1])  # alternately a run's first document and its end
    return np.asarray(document_indices, dtype=np.int64)[edges].reshape(-1, 2)


def pack_blocks(sequence_lengths: np.ndarray, runs: np.ndarray | Sequence[tuple[int, int]], block_size: int,
                chunk_lines: int = PACK_CHUNK_LINES) -> np.ndarray:
    """Greedy packing of each run's lines into blocks of at most block_size tokens including <s>: every
    block, in corpus order (see `packed_chunks`)."""
    chunks = list(packed_chunks(sequence_lengths, runs, block_size, chunk_lines))
    return np.concatenate(chunks) if chunks else np.empty(0, dtype=BLOCK_DTYPE)


def packed_chunks(sequence_lengths: np.ndarray, runs: np.ndarray | Sequence[tuple[int, int]], block_size: int,
                  chunk_lines: int = PACK_CHUNK_LINES,
                  progress: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
    """The blocks of `pack_blocks`, one array per chunk of `chunk_lines` lines (the blocks that start in it).

    Greedy: a block starts at a line and takes every following line of its run that still fits. A line longer
    than a block (block_size - 1 tokens after <s>) is cut into pieces of its own. Computed over whole arrays,
    with no Python loop per line, block or document:

    1. A short line's successor is where a block starting at it ends: the furthest line whose cumulative
       length still fits (one search over the token offsets), never past its run's end. A block never reaches
       past a long line (it does not fit), so a successor that is a long line, or the run's end, ends the path.
    2. The block starts are the lines reached by following successors from each path's first line: a short
       line at a run's start or after a long line, and the line the previous chunk's last block ends at. They
       are found by doubling: after round j the starts hold every line 0 .. 2^j - 1 steps from a first line,
       and the successor table is composed with itself; B blocks take log2(B) rounds.
    3. A long line gives ceil((length - capacity) / piece) pieces of `piece` tokens with </s> added, then the
       rest.
    `progress(lines)` is called after each chunk with the lines it covered.
    """
    capacity = block_size - 1  # room after <s>
    piece = capacity - 1  # a long line's pieces leave room for the </s> added to each
    count = len(sequence_lengths)
    runs = np.asarray(runs, dtype=np.int64).reshape(-1, 2)
    runs = runs[runs[:, 0] < runs[:, 1]]
    run_starts, run_ends = runs[:, 0], runs[:, 1]
    if not len(runs):
        return
    chunk_lines = max(int(chunk_lines), 1)
    token_base = 0  # token offset of the chunk's first line
    entry = -1  # the line the previous chunk's last block ends at, when that line starts the next block
    for first_line in range(0, count, chunk_lines):
        end_line = min(count, first_line + chunk_lines)
        size = end_line - first_line
        # The lines a block starting in the chunk can reach: every line holds at least one token, so at most
        # `capacity` past the chunk (more only if some hold none: then the window grows).
        window_end = min(count, end_line + capacity + 1)
        while True:
            lengths = np.asarray(sequence_lengths[first_line:window_end], dtype=np.int64)
            offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            furthest = np.searchsorted(offsets, offsets[:size] + capacity, side="right") - 1
            if window_end == count or furthest[-1] < len(lengths):
                break
            window_end = min(count, window_end + 2 * (window_end - end_line))
        lines = np.arange(first_line, window_end, dtype=np.int64)
        run = np.searchsorted(run_starts, lines, side="right") - 1
        run_end = np.where(run >= 0, run_ends[np.maximum(run, 0)], -1)
        in_run = lines < run_end
        long = in_run & (lengths > capacity)
        short = in_run & ~long
        after_long = np.concatenate([[first_line > 0 and sequence_lengths[first_line - 1] > capacity], long[:-1]])
        run_first = np.isin(lines[:size], run_starts[(run_starts >= first_line) & (run_starts < end_line)])
        starts = short[:size] & (run_first | after_long[:size])
        if first_line <= entry < end_line:
            starts[entry - first_line] = True
        # 1. Successors, local to the window; `size`: none in this chunk (a path's end, or a line past the chunk).
        block_end = np.minimum(furthest, run_end[:size] - first_line)  # local index of the line after the block
        reach = np.clip(block_end, 0, len(lengths) - 1)
        continues = (block_end < run_end[:size] - first_line) & short[reach] & short[:size]
        successor = np.where(continues & (block_end < size), block_end, size)
        # 2. Every line reached from the starts, by doubling.
        jump = np.append(successor, size)
        reached = np.append(starts, False)
        frontier = np.flatnonzero(reached)
        while True:
            landed = jump[frontier]
            landed = landed[landed < size]
            if not len(landed):
                break
            reached[landed] = True
            frontier = np.flatnonzero(reached)
            jump = jump[jump]
        block_lines = np.flatnonzero(reached[:size])
        if entry < end_line:  # else the previous chunk's last block spans this whole chunk
            entry = -1
        if len(block_lines):
            last = block_lines[-1]
            if continues[last] and block_end[last] >= size:
                entry = first_line + int(block_end[last])
        short_blocks = np.empty(len(block_lines), dtype=BLOCK_DTYPE)
        short_blocks["token_start"] = token_base + offsets[block_lines]
        short_blocks["token_count"] = offsets[block_end[block_lines]] - offsets[block_lines]
        short_blocks["append_eos"] = False
        # 3. The pieces of long lines.
        long_lines = np.flatnonzero(long[:size])
        long_lengths = lengths[long_lines]
        pieces = -(-(long_lengths - capacity) // piece)  # pieces with </s>, before the rest
        per_line = pieces + 1
        line_of_block = np.repeat(np.arange(len(long_lines)), per_line)
        index_in_line = np.arange(len(line_of_block)) - np.repeat(np.cumsum(per_line) - per_line, per_line)
        is_rest = index_in_line == pieces[line_of_block]
        long_blocks = np.empty(len(line_of_block), dtype=BLOCK_DTYPE)
        long_blocks["token_start"] = token_base + offsets[long_lines][line_of_block] + index_in_line * piece
        long_blocks["token_count"] = np.where(is_rest, long_lengths[line_of_block] - pieces[line_of_block] * piece,
                                              piece)
        long_blocks["append_eos"] = ~is_rest
        # In corpus order: by line, then piece (a block at a line of no tokens sorts before a long line after it).
        block_line = np.concatenate([block_lines, long_lines[line_of_block]])
        order = np.argsort(block_line, kind="stable")
        token_base += int(offsets[size])
        if progress is not None:
            progress(size)
        yield np.concatenate([short_blocks, long_blocks])[order]
