"""Held-out documents and packing of one language's lines into training blocks (pure NumPy, no I/O).

A block is `<s>` followed by whole lines of one split of one language, in corpus order (crossing document
boundaries is fine, as in RoBERTa's FULL-SENTENCES format), at most `block_size` tokens in all. Every line
already ends with </s>, so every block does too. A line longer than a block is cut into pieces of
block_size - 2 tokens, each given its own </s>.

A block is stored as (token_start, token_count, append_eos): a run of the language's flat token stream
in the .bin, read with one slice.
"""

from __future__ import annotations

import numpy as np

from xlmr_ds.dataset.sampling import stable_seed

BLOCK_DTYPE = np.dtype([("token_start", np.int64), ("token_count", np.int32), ("append_eos", np.bool_)])


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


def split_runs(document_indices: np.ndarray, held_out: np.ndarray, want_held_out: bool) -> list[tuple[int, int]]:
    """Maximal runs [first_sequence, end_sequence) of consecutive documents on the wanted side of the split."""
    selected = held_out == want_held_out
    runs = []
    doc = 0
    while doc < len(selected):
        if not selected[doc]:
            doc += 1
            continue
        first = doc
        while doc < len(selected) and selected[doc]:
            doc += 1
        runs.append((int(document_indices[first]), int(document_indices[doc])))
    return runs


def pack_blocks(sequence_lengths: np.ndarray, runs: list[tuple[int, int]], block_size: int) -> np.ndarray:
    """Greedy packing of each run's lines into blocks of at most block_size tokens including <s>."""
    capacity = block_size - 1  # room after <s>
    lengths = sequence_lengths.astype(np.int64)
    token_offsets = np.concatenate([[0], np.cumsum(lengths)])
    blocks: list[tuple[int, int, bool]] = []
    for first, end in runs:
        sequence = first
        while sequence < end:
            length = int(lengths[sequence])
            if length > capacity:
                start, stop = int(token_offsets[sequence]), int(token_offsets[sequence + 1])
                piece = capacity - 1  # room for the </s> we add
                while stop - start > capacity:
                    blocks.append((start, piece, True))
                    start += piece
                blocks.append((start, stop - start, False))
                sequence += 1
                continue
            # The furthest sequence whose cumulative length still fits after this block's start.
            limit = token_offsets[sequence] + capacity
            last = int(np.searchsorted(token_offsets, limit, side="right")) - 1
            stop_sequence = max(sequence + 1, min(last, end))
            blocks.append((int(token_offsets[sequence]), int(token_offsets[stop_sequence] - token_offsets[sequence]),
                           False))
            sequence = stop_sequence
    return np.array(blocks, dtype=BLOCK_DTYPE)
