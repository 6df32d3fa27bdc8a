"""Our id mapping is the one transformers' XLMRobertaTokenizer applies to a sentencepiece.bpe.model."""

import shutil

from transformers import XLMRobertaTokenizer

from xlmr_ds.prep.tokenizer import XLMRTokenizer


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
