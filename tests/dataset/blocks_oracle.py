"""The block packing of earlier releases, one Python step per document and per block: the reference the
vectorized `xlmr_ds.dataset.blocks` must equal bit for bit (a cache built by either is the same)."""

import numpy as np

from xlmr_ds.dataset.blocks import BLOCK_DTYPE


def split_runs_loop(document_indices, held_out, want_held_out):
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


def pack_blocks_loop(sequence_lengths, runs, block_size):
    capacity = block_size - 1
    lengths = sequence_lengths.astype(np.int64)
    token_offsets = np.concatenate([[0], np.cumsum(lengths)])
    blocks = []
    for first, end in runs:
        sequence = first
        while sequence < end:
            length = int(lengths[sequence])
            if length > capacity:
                start, stop = int(token_offsets[sequence]), int(token_offsets[sequence + 1])
                piece = capacity - 1
                while stop - start > capacity:
                    blocks.append((start, piece, True))
                    start += piece
                blocks.append((start, stop - start, False))
                sequence += 1
                continue
            limit = token_offsets[sequence] + capacity
            last = int(np.searchsorted(token_offsets, limit, side="right")) - 1
            stop_sequence = max(sequence + 1, min(last, end))
            blocks.append((int(token_offsets[sequence]), int(token_offsets[stop_sequence] - token_offsets[sequence]), False))
            sequence = stop_sequence
    return np.array(blocks, dtype=BLOCK_DTYPE)
