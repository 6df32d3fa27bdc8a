import numpy as np
import pytest
from blocks_oracle import pack_blocks_loop, split_runs_loop

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
    assert split_runs(document_indices, held_out, False).tolist() == [[0, 2], [3, 8]]
    assert split_runs(document_indices, held_out, True).tolist() == [[2, 3], [8, 10]]


def _random_lengths(kind: str, lines: int, block_size: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "web text":  # a geometric spread, some lines longer than a block
        lengths = rng.geometric(4 / block_size, lines) + 1
        lengths[rng.random(lines) < 0.05] = 3 * block_size + int(rng.integers(0, block_size))
    elif kind == "longer than a block":
        lengths = rng.integers(1, 3 * block_size, lines)
    elif kind == "equal lengths":  # greedy paths from different starts never meet
        lengths = np.full(lines, int(rng.integers(1, block_size + 2)))
    else:  # "lines of no tokens"
        lengths = rng.integers(0, 3, lines)
    return lengths.astype(np.int32)


EQUALS_LOOP_CASES = [
    # (line lengths, block size, share of documents held out, lines per packing chunk)
    ("web text", 16, 0.0, 1 << 16),
    ("web text", 16, 0.3, 5),
    ("web text", 64, 0.05, 1),
    ("longer than a block", 8, 0.2, 7),
    ("equal lengths", 16, 0.0, 13),
    ("equal lengths", 8, 0.5, 2),
    ("lines of no tokens", 4, 0.1, 3),
    ("lines of no tokens", 8, 0.0, 1),
]


@pytest.mark.parametrize("kind,block_size,held_out_share,chunk_lines", EQUALS_LOOP_CASES)
def test_vectorized_packing_equals_the_loop_bit_for_bit(kind, block_size, held_out_share, chunk_lines):
    """The tables a cache holds do not change with the implementation: every split of random indexes, with runs
    cut by held-out documents and chunks cut anywhere (inside a block, at a long line, at a run's end)."""
    for trial in range(6):
        rng = np.random.default_rng([trial, block_size, chunk_lines])
        lines = int(rng.integers(1, 400))
        lengths = _random_lengths(kind, lines, block_size, rng)
        cuts = np.sort(rng.choice(np.arange(1, lines), size=min(lines - 1, lines // 3), replace=False))
        document_indices = np.concatenate([[0], cuts, [lines]]).astype(np.int64)
        held_out = rng.random(len(document_indices) - 1) < held_out_share
        for want_held_out in (False, True):
            runs = split_runs(document_indices, held_out, want_held_out)
            expected_runs = split_runs_loop(document_indices, held_out, want_held_out)
            assert [tuple(run) for run in runs.tolist()] == expected_runs
            expected = pack_blocks_loop(lengths, expected_runs, block_size)
            assert pack_blocks(lengths, runs, block_size, chunk_lines).tobytes() == expected.tobytes()
