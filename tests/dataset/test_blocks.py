import numpy as np
import pytest

from xlmr_ds.dataset.blocks import pack_blocks, split_runs, validation_documents


def _blocks_as_token_lists(tokens, blocks):
    out = []
    for start, count, append_eos in blocks.tolist():
        out.append([0] + tokens[start:start + count] + ([2] if append_eos else []))
    return out


def _stream(lengths):
    """A token stream whose lines end with </s> (2) and whose other tokens are their own offsets + 10."""
    tokens = []
    for length in lengths:
        tokens.extend(range(len(tokens) + 10, len(tokens) + 10 + length - 1))
        tokens.append(2)
    return tokens


PACKING_CASES = [
    # (line lengths incl. </s>, runs, block size)
    ([3, 4, 5, 2, 7, 1], [(0, 6)], 8),
    ([3, 4, 5, 2, 7, 1], [(0, 2), (4, 6)], 8),
    ([20, 3, 3], [(0, 3)], 8),            # a line longer than a block is cut into pieces
    ([7, 7, 7], [(0, 3)], 8),             # exactly full blocks
    ([1, 1, 1, 1], [(0, 4)], 512),
]


@pytest.mark.parametrize("lengths,runs,block_size", PACKING_CASES)
def test_blocks_hold_whole_lines_of_their_runs_and_cover_every_token_once(lengths, runs, block_size):
    tokens = _stream(lengths)
    blocks = pack_blocks(np.array(lengths, dtype=np.int32), runs, block_size)
    as_lists = _blocks_as_token_lists(tokens, blocks)
    assert all(len(b) <= block_size and b[0] == 0 and b[-1] == 2 for b in as_lists)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    expected = [t for first, end in runs for t in tokens[offsets[first]:offsets[end]]]
    covered = [t for start, count, _ in blocks.tolist() for t in tokens[start:start + count]]
    assert covered == expected
    previous_was_a_piece = False
    for start, count, append_eos in blocks.tolist():
        # Blocks are cut at line boundaries, except around the pieces of a line longer than a block.
        assert start in offsets or previous_was_a_piece
        assert (start + count in offsets) or append_eos
        previous_was_a_piece = append_eos


def test_long_line_pieces_end_with_an_added_eos():
    blocks = pack_blocks(np.array([20], dtype=np.int32), [(0, 1)], 8)
    assert blocks["token_count"].tolist() == [6, 6, 6, 2]
    assert blocks["append_eos"].tolist() == [True, True, True, False]


def test_greedy_packing_fills_blocks():
    blocks = pack_blocks(np.array([3, 4, 5, 2, 7, 1], dtype=np.int32), [(0, 6)], 8)
    assert blocks["token_count"].tolist() == [7, 7, 7, 1]


@pytest.mark.parametrize("documents,fraction,expected_count", [(1, 0.5, 0), (2, 0.001, 1), (1000, 0.01, 10),
                                                               (10, 0.99, 9), (10, 0.0, 0)])
def test_validation_documents_are_a_seeded_share(documents, fraction, expected_count):
    held_out = validation_documents(documents, fraction, seed=0, language="en")
    assert held_out.sum() == expected_count
    assert np.array_equal(held_out, validation_documents(documents, fraction, seed=0, language="en"))
    if expected_count and documents > 10:
        assert not np.array_equal(held_out, validation_documents(documents, fraction, seed=1, language="en"))


def test_split_runs_are_maximal_runs_of_documents():
    document_indices = np.array([0, 2, 3, 7, 8, 10])
    held_out = np.array([False, True, False, False, True])
    assert split_runs(document_indices, held_out, False) == [(0, 2), (3, 8)]
    assert split_runs(document_indices, held_out, True) == [(2, 3), (8, 10)]
