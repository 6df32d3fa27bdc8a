"""The token ids every part of xlmr-ds agrees on: XLM-R's special ids and the label of unlabelled positions.

XLM-R ids follow fairseq's dictionary of the released XLM-R: <s>=0, <pad>=1, </s>=2, <unk>=3, then the SentencePiece
pieces, and <mask> as the last id of the vocabulary. The tokenizer (xlmr_ds/tokenizer.py), the loader's masking,
the model's defaults and the kernels all take the ids from here, so that there is one definition.
"""

from __future__ import annotations

BOS_ID, PAD_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIAL_TOKENS = {"<s>": BOS_ID, "<pad>": PAD_ID, "</s>": EOS_ID, "<unk>": UNK_ID}

IGNORE_INDEX = -100
"""Label value of positions that carry no loss (the PyTorch / Hugging Face convention)."""


def mask_id(vocab_size: int) -> int:
    """<mask> is the last id of an XLM-R vocabulary."""
    return vocab_size - 1


def special_ids(vocab_size: int) -> tuple[int, ...]:
    """The ids MLM masking never chooses: <s>, <pad>, </s>, <unk> and <mask>."""
    return (BOS_ID, PAD_ID, EOS_ID, UNK_ID, mask_id(vocab_size))

NEW_ROW_INITS = ("mean", "random")
"""How `model extend-vocab` initializes the embedding of an added piece (model/resize.py)."""
