"""Growing a masked LM's vocabulary for continued pretraining, without changing what it computes for old ids.

An XLM-R vocabulary is <s> <pad> </s> <unk>, the SentencePiece pieces, then <mask> last (xlmr_ds/vocab.py).
A tokenizer extended by k pieces (prep/spm/extend.py) keeps every old piece's id and puts the new pieces after
them, so <mask> moves from old_size - 1 to new_size - 1. The word embeddings and the LM head's bias (the
decoder is tied to the embeddings) grow accordingly:

    rows 0 .. old_size - 2          copied unchanged (every old id but <mask>)
    rows old_size - 1 .. new_size - 2   the new pieces: initialized (below)
    row new_size - 1                <mask>: the old <mask> row

Initialization of a new piece: "mean", the mean of the old embedding rows (and LM-head biases) of the
pieces the old tokenizer splits its text into (the simple form of FOCUS / OFA), given by the caller as
`sources`; a piece whose split has nothing but <unk> falls back to "random"; "random", as at pretraining
(N(0, initializer_range) embedding, zero bias). With every other weight unchanged, the extended model's
logits over the old ids equal the old model's for inputs that use only old ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model.modeling import XLMRForMaskedLM
from xlmr_ds.vocab import NEW_ROW_INITS, UNK_ID, mask_id

INITS = NEW_ROW_INITS


def new_row_ids(old_size: int, new_size: int) -> range:
    """The ids of the added pieces in the grown vocabulary."""
    return range(mask_id(old_size), mask_id(new_size))


@torch.no_grad()
def extend_vocabulary(model: XLMRForMaskedLM, new_size: int, init: str = "mean",
                      sources: Sequence[Sequence[int]] | None = None, seed: int = 0) -> tuple[XLMRForMaskedLM, int]:
    """A copy of `model` with `new_size` ids, and how many new rows fell back to random initialization.

    sources[i] (for init "mean"): the old ids the old tokenizer splits the i-th new piece into.
    """
    old_size = model.config.vocab_size
    added = new_size - old_size
    if added < 1:
        raise XLMRDSError(f"the new vocabulary has {new_size:,} ids, not more than the model's {old_size:,}")
    if init not in INITS:
        raise XLMRDSError(f"--init {init!r}: use one of {', '.join(INITS)}")
    if init == "mean" and (sources is None or len(sources) != added):
        raise ValueError(f"mean initialization needs the old ids of each of the {added} new pieces")
    config = model.config
    grown = XLMRForMaskedLM(replace(config, vocab_size=new_size), initialize=False,
                            kernel_backend=model.layers[0].kernel_backend if model.layers else "auto",
                            activation_checkpointing=model.activation_checkpointing)
    state = model.state_dict()
    old_embeddings, old_bias = state["embeddings.word.weight"], state["lm_head.bias"]
    generator = torch.Generator().manual_seed(seed)
    random_rows = torch.randn(added, config.hidden_size, generator=generator, dtype=torch.float32)
    random_rows = (random_rows * config.initializer_range).to(old_embeddings.dtype)
    new_embeddings = torch.empty(added, config.hidden_size, dtype=old_embeddings.dtype)
    new_bias = torch.zeros(added, dtype=old_bias.dtype)
    fell_back = 0
    for row in range(added):
        ids = [i for i in (sources[row] if init == "mean" else ()) if i != UNK_ID and i < mask_id(old_size)]
        if ids:
            index = torch.tensor(ids)
            new_embeddings[row] = old_embeddings[index].float().mean(0).to(old_embeddings.dtype)
            new_bias[row] = old_bias[index].float().mean().to(old_bias.dtype)
        else:
            new_embeddings[row] = random_rows[row]
            fell_back += init == "mean"
    old_mask = mask_id(old_size)
    state["embeddings.word.weight"] = torch.cat([old_embeddings[:old_mask], new_embeddings,
                                                 old_embeddings[old_mask:]])
    state["lm_head.bias"] = torch.cat([old_bias[:old_mask], new_bias, old_bias[old_mask:]])
    state["lm_head.decoder.weight"] = state["embeddings.word.weight"]
    grown.load_state_dict(state, strict=True)
    return grown, fell_back
