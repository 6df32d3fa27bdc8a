"""MLM masking on the device in one pass: token ids -> (input_ids, labels) with the 15% / 80-10-10 rule.

Its reference is `mask_tokens` in mlm_masking_reference.py beside it (NumPy, what the loader masks with on
the host): both draw three Philox words per position from counter (position, sample index low, sample index
high, MLM_STREAM) under key `seed` and compare them with the same integer thresholds, so the results are
bit-identical
(`tests/kernels/test_mlm_masking.py`). Special tokens (a lookup table over the vocabulary) are never chosen;
padding is special, so padded batches need no extra mask.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from xlmr_ds.kernels.mlm_masking_reference import MLM_STREAM, MaskingConfig
from xlmr_ds.vocab import IGNORE_INDEX

_WORD = (1 << 64) - 1


@triton.jit(do_not_specialize=["seed"])
def _mlm_masking(
    TOKENS, SAMPLE_INDEX, SPECIAL, INPUT_IDS, LABELS,
    seq_len, stride_tokens, stride_out, vocab_size, seed,
    choose_below, mask_below, mask_or_random_below, mask_id, random_low, random_span,
    STREAM: tl.constexpr, IGNORE: tl.constexpr, BLOCK: tl.constexpr,
):
    row = tl.program_id(0)
    positions = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = positions < seq_len
    tokens = tl.load(TOKENS + row * stride_tokens + positions, mask=inside, other=0).to(tl.int64)
    in_vocab = inside & (tokens >= 0) & (tokens < vocab_size)
    special = tl.load(SPECIAL + tokens, mask=in_vocab, other=1) != 0
    sample = tl.load(SAMPLE_INDEX + row).to(tl.uint64, bitcast=True)
    c0 = positions.to(tl.uint32)
    c1 = c0 * 0 + (sample & 0xFFFFFFFF).to(tl.uint32)
    c2 = c0 * 0 + (sample >> 32).to(tl.uint32)
    c3 = c0 * 0 + STREAM
    choose, replace, pick, _ = tl.philox(seed, c0, c1, c2, c3)
    replace = replace.to(tl.int64)
    chosen = in_vocab & ~special & (choose.to(tl.int64) < choose_below)
    to_mask = chosen & (replace < mask_below)
    to_random = chosen & ~to_mask & (replace < mask_or_random_below)
    random_tokens = random_low + ((pick.to(tl.int64) * random_span) >> 32)
    input_ids = tl.where(to_mask, mask_id, tl.where(to_random, random_tokens, tokens))
    labels = tl.where(chosen, tokens, IGNORE)
    tl.store(INPUT_IDS + row * stride_out + positions, input_ids, mask=inside)
    tl.store(LABELS + row * stride_out + positions, labels, mask=inside)


def special_token_table(config: MaskingConfig, device: torch.device) -> torch.Tensor:
    """int8 (vocab_size,) lookup table, 1 for the ids never chosen."""
    table = torch.zeros(config.vocab_size, dtype=torch.int8)
    table[list(config.special_ids)] = 1
    return table.to(device)


def mlm_mask(tokens: torch.Tensor, sample_index: torch.Tensor, config: MaskingConfig, seed: int,
             special_table: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels), int64 (batch, seq), for token ids (batch, seq) and global sample indices (batch,).

    Row r is masked exactly as `mask_tokens(tokens[r], config, seed, sample_index[r])` would mask it.
    Pass `special_table` (from special_token_table) to avoid rebuilding it every call.
    """
    if tokens.dim() != 2:
        raise ValueError(f"mlm_mask needs (batch, seq) token ids; got shape {tuple(tokens.shape)}")
    if sample_index.shape != tokens.shape[:1]:
        raise ValueError(f"mlm_mask needs one sample index per row: {tokens.shape[0]}; got {tuple(sample_index.shape)}")
    if tokens.dtype not in (torch.int32, torch.int64) or sample_index.dtype != torch.int64:
        raise ValueError("mlm_mask needs int32/int64 token ids and int64 sample indices")
    if special_table is None:
        special_table = special_token_table(config, tokens.device)
    tokens = tokens if tokens.stride(-1) == 1 else tokens.contiguous()
    sample_index = sample_index.contiguous()
    batch, seq_len = tokens.shape
    input_ids = torch.empty((batch, seq_len), dtype=torch.int64, device=tokens.device)
    labels = torch.empty_like(input_ids)
    thresholds = config.thresholds
    block = min(1024, triton.next_power_of_2(max(seq_len, 16)))
    grid = (batch, triton.cdiv(seq_len, block))
    _mlm_masking[grid](
        tokens, sample_index, special_table, input_ids, labels,
        seq_len, tokens.stride(0), input_ids.stride(0), config.vocab_size, seed & _WORD,
        thresholds.choose, thresholds.mask, thresholds.mask_or_random, config.mask_id,
        config.first_regular_id, config.mask_id - config.first_regular_id,
        STREAM=MLM_STREAM, IGNORE=IGNORE_INDEX, BLOCK=block,
    )
    return input_ids, labels
