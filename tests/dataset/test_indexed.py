import struct

import numpy as np
import pytest
from megatron.core.datasets.indexed_dataset import IndexedDataset as MegatronIndexedDataset

from xlmr_ds.dataset.indexed import HEADER, IndexedDataset, bin_path, idx_path, token_dtype, write_index
from xlmr_ds.errors import XLMRDSError

DOCUMENTS = [[[5, 6, 2], [7, 2]], [[8, 9, 10, 2]], [[2]]]


def _write(prefix, dtype=np.int32):
    """DOCUMENTS as a dataset, written as binarize writes one: the ids back to back, then write_index."""
    sequences = [sequence for document in DOCUMENTS for sequence in document]
    np.concatenate(sequences).astype(dtype).tofile(bin_path(prefix))
    document_indices = np.cumsum([0] + [len(document) for document in DOCUMENTS])
    write_index(idx_path(prefix), dtype, len(sequences), [np.array([len(s) for s in sequences])], document_indices)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_round_trip_and_megatron_core_reads_the_same(tmp_path, dtype):
    _write(tmp_path / "d", dtype)
    ours = IndexedDataset(tmp_path / "d")
    theirs = MegatronIndexedDataset(str(tmp_path / "d"))
    sequences = [s for document in DOCUMENTS for s in document]
    assert len(ours) == len(theirs) == len(sequences)
    assert ours.document_indices.tolist() == theirs.document_indices.tolist() == [0, 2, 3, 4]
    assert ours.sequence_lengths.tolist() == theirs.sequence_lengths.tolist() == [3, 2, 4, 1]
    for i, sequence in enumerate(sequences):
        assert ours[i].tolist() == theirs[i].tolist() == sequence
        assert ours[i].dtype == np.dtype(dtype)
    assert ours.tokens(3, 4).tolist() == [7, 2, 8, 9]


def test_header_layout_is_as_documented(tmp_path):
    _write(tmp_path / "d", np.int32)
    raw = (tmp_path / "d.idx").read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00"
    assert struct.unpack("<QBQQ", raw[9:34]) == (1, 4, 4, 4)
    assert len(raw) == 34 + 12 * 4 + 8 * 4
    assert np.frombuffer(raw[34 + 16:34 + 48], dtype=np.int64).tolist() == [0, 12, 20, 36]


def test_streamed_index_chunks_give_the_same_file(tmp_path):
    lengths = np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.int32)
    docs = np.array([0, 3, 8], dtype=np.int64)
    write_index(tmp_path / "one.idx", np.int32, 8, [lengths], docs)
    write_index(tmp_path / "many.idx", np.int32, 8, [lengths[:2], lengths[2:2], lengths[2:7], lengths[7:]], docs)
    assert (tmp_path / "one.idx").read_bytes() == (tmp_path / "many.idx").read_bytes()


def test_token_dtype_fits_the_vocabulary():
    assert token_dtype(1002) == np.uint16 and token_dtype(250_002) == np.int32


def _corrupt(tmp_path, how):
    _write(tmp_path / "d", np.int32)
    idx, bin_ = tmp_path / "d.idx", tmp_path / "d.bin"
    raw = bytearray(idx.read_bytes())
    if how == "truncated-bin":
        bin_.write_bytes(bin_.read_bytes()[:-4])
    elif how == "extra-bin":
        bin_.write_bytes(bin_.read_bytes() + b"\0\0\0\0")
    elif how == "missing-bin":
        bin_.unlink()
    elif how == "wrong-magic":
        idx.write_bytes(b"NOTANIDX\x00" + raw[9:])
    elif how == "wrong-version":
        idx.write_bytes(raw[:9] + struct.pack("<Q", 2) + raw[17:])
    elif how == "float-dtype":
        idx.write_bytes(raw[:17] + bytes([7]) + raw[18:])
    elif how == "unknown-dtype":
        idx.write_bytes(raw[:17] + bytes([42]) + raw[18:])
    elif how == "truncated-idx":
        idx.write_bytes(raw[:-8])
    elif how == "header-only":
        idx.write_bytes(raw[:20])
    elif how == "bad-document-index":
        raw[-8:] = struct.pack("<q", 99)
        idx.write_bytes(bytes(raw))


CORRUPTIONS = [
    ("truncated-bin", r"d.bin: \d+ bytes, but its index describes"),
    ("extra-bin", r"d.bin: \d+ bytes, but its index describes"),
    ("missing-bin", r"d.bin: not found"),
    ("wrong-magic", r"d.idx: bad magic"),
    ("wrong-version", r"d.idx: index version 2 is not supported"),
    ("float-dtype", r"d.idx: dtype code 7 is not a token dtype"),
    ("unknown-dtype", r"d.idx: dtype code 42 is not a token dtype"),
    ("truncated-idx", r"d.idx: \d+ bytes, but 4 sequences and 4 document indices need"),
    ("header-only", r"d.idx: 20 bytes is shorter than the 34-byte header"),
    ("bad-document-index", r"d.idx: document indices must run from 0 to 4"),
]


@pytest.mark.parametrize("how,message", CORRUPTIONS)
def test_damaged_datasets_get_a_one_line_error_naming_the_file(tmp_path, how, message):
    _corrupt(tmp_path, how)
    with pytest.raises(XLMRDSError, match=message) as error:
        IndexedDataset(tmp_path / "d")
    assert "\n" not in str(error.value)
    assert HEADER.size == 34
