"""Our id mapping is the one transformers' XLMRobertaTokenizer applies to a sentencepiece.bpe.model."""

import shutil

from transformers import XLMRobertaTokenizer

from xlmr_ds.tokenizer import XLMRTokenizer


def test_ids_equal_transformers_xlmr_tokenizer_on_every_language(spm_model, corpus_dir, tmp_path):
    # Users continue pretraining from the released vocabulary: the same file layout, the same ids.
    shutil.copy(spm_model, tmp_path / "sentencepiece.bpe.model")
    theirs = XLMRobertaTokenizer.from_pretrained(tmp_path)
    ours = XLMRTokenizer(tmp_path / "sentencepiece.bpe.model")
    assert len(theirs) == ours.vocab_size and theirs.mask_token_id == ours.mask_id
    assert theirs.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>"]) == [0, 1, 2, 3]
    for source in sorted(corpus_dir.glob("*.txt")):
        lines = [line for line in source.read_text().splitlines() if line.strip()][:30]
        for line in lines:
            assert theirs(line)["input_ids"] == [0] + ours.encode(line).tolist() + [2], (source.name, line)


def test_offsets_equal_the_fast_tokenizers_but_for_a_bare_word_boundary(spm_model, corpus_dir, tmp_path):
    """encode_with_offsets (question answering's map from pieces to context characters) against the offsets of
    transformers' fast tokenizer. One designed difference: a bare `▁` piece (a word whose first character has no
    `▁`-piece of its own) covers nothing here, where transformers gives it the next character, which the next
    piece covers too."""
    from transformers import AutoTokenizer

    shutil.copy(spm_model, tmp_path / "sentencepiece.bpe.model")
    XLMRobertaTokenizer.from_pretrained(tmp_path).save_pretrained(tmp_path)
    theirs = AutoTokenizer.from_pretrained(tmp_path)
    ours = XLMRTokenizer(tmp_path / "sentencepiece.bpe.model")
    lines = [line for source in sorted(corpus_dir.glob("*.txt")) for line in source.read_text().splitlines()[:20]]
    lines += ["Straße  in Köln", "  leading spaces", "長城 😀 ok."]  # 2-, 3- and 4-byte characters, runs of spaces
    bare = 0
    for line in lines:
        encoding = theirs(line, add_special_tokens=False, return_offsets_mapping=True)
        ids, spans = ours.encode_with_offsets(line)
        assert ids == encoding["input_ids"], line
        for piece, mine, their in zip(theirs.convert_ids_to_tokens(ids), spans, encoding["offset_mapping"],
                                      strict=True):
            if piece == "▁":
                bare += 1
                assert mine == (their[0], their[0]), (line, piece)
            else:
                assert mine == tuple(their), (line, piece)
    assert bare > 0
