import numpy as np
import pytest
import sentencepiece as spm

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.tokenizer import XLMRTokenizer


def test_ids_follow_the_fairseq_dictionary(spm_model):
    tokenizer = XLMRTokenizer(spm_model)
    assert [tokenizer.id_to_piece(i) for i in range(4)] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert tokenizer.vocab_size == tokenizer.pieces + 2
    assert tokenizer.id_to_piece(tokenizer.mask_id) == "<mask>"
    assert tokenizer.mask_id == tokenizer.vocab_size - 1
    # SentencePiece piece p >= 3 is XLM-R id p + 1.
    assert tokenizer.id_to_piece(4) == tokenizer.sp.IdToPiece(3)
    assert tokenizer.id_to_piece(tokenizer.mask_id - 1) == tokenizer.sp.IdToPiece(tokenizer.pieces - 1)


SPM_TO_XLMR = [([0], [3]), ([1], [0]), ([2], [2]), ([3, 4, 10], [4, 5, 11]), ([], [])]


@pytest.mark.parametrize("spm_ids,xlmr_ids", SPM_TO_XLMR)
def test_id_mapping_table(spm_model, spm_ids, xlmr_ids):
    tokenizer = XLMRTokenizer(spm_model)
    assert tokenizer.to_xlmr_ids(np.array(spm_ids, dtype=np.int64)).tolist() == xlmr_ids
    assert tokenizer.to_spm_ids(xlmr_ids) == spm_ids


def test_encode_decode_round_trip_and_batch_encoding_with_eos(spm_model, corpus_dir):
    tokenizer = XLMRTokenizer(spm_model)
    lines = [line for line in (corpus_dir / "ru.txt").read_text().splitlines() if line][:20]
    for line in lines:
        ids = tokenizer.encode(line)
        assert ids.min() >= 3 and ids.max() < tokenizer.mask_id
        assert tokenizer.decode(ids) == line
    flat, lengths = tokenizer.encode_lines_with_eos(lines)
    expected = np.concatenate([np.append(tokenizer.encode(line), 2) for line in lines])
    assert flat.tolist() == expected.tolist()
    assert lengths.tolist() == [len(tokenizer.encode(line)) + 1 for line in lines]


ENCODE_PATHS = ["sentencepiece's raw buffers", "the public numpy call", "a model that emits </s> inside a line"]


@pytest.mark.parametrize("path", ENCODE_PATHS)
def test_batch_encoding_with_eos_is_the_same_on_every_path(spm_model, corpus_dir, path):
    tokenizer = XLMRTokenizer(spm_model)
    lines = list((corpus_dir / "el.txt").read_text().splitlines())[:30] + ["", "  ", "x"]
    expected = [np.append(tokenizer.encode(line), 2) for line in lines]
    if path == ENCODE_PATHS[0]:
        assert tokenizer._encode_buffers is not None  # the fast path is in use with the installed sentencepiece
    elif path == ENCODE_PATHS[1]:
        tokenizer.__dict__["_encode_buffers"] = None
    else:  # lengths can no longer come from the </s> positions: they must come from each line's buffer
        real = tokenizer._encode_buffers

        def with_eos_first(batch, num_threads):
            buffers = real(batch, num_threads)
            first = np.concatenate([[2], np.frombuffer(buffers[0], dtype=np.int32)]).astype(np.int32)
            return [first.tobytes(), *buffers[1:]]

        tokenizer.__dict__["_encode_buffers"] = with_eos_first
        expected[0] = np.concatenate([[2], expected[0]])
    flat, lengths = tokenizer.encode_lines_with_eos(lines)
    assert lengths.tolist() == [len(ids) for ids in expected]
    assert flat.tolist() == np.concatenate(expected).tolist()


def test_a_model_with_other_special_ids_is_refused(tmp_path, corpus_dir):
    spm.SentencePieceTrainer.Train(input=str(corpus_dir / "en.txt"), model_prefix=str(tmp_path / "odd"),
                                   vocab_size=100, pad_id=3, unk_id=0, bos_id=1, eos_id=2, minloglevel=2)
    with pytest.raises(XLMRDSError, match="odd.model: SentencePiece specials .* XLM-R needs unk=0 bos=1 eos=2 and no pad"):
        XLMRTokenizer(tmp_path / "odd.model")


def test_missing_or_garbage_model_files_are_named(tmp_path):
    with pytest.raises(XLMRDSError, match="nope.model: SentencePiece model not found"):
        XLMRTokenizer(tmp_path / "nope.model")
    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(XLMRDSError, match="bad.model: not a SentencePiece model"):
        XLMRTokenizer(tmp_path / "bad.model")
