"""dropout + residual add + LayerNorm in one Triton pass, forward and backward: the end of every post-LN block.

    y = LayerNorm(residual + dropout(x)) * weight + bias

Unfused, PyTorch writes the dropout output and its mask, the sum, and the normalized result, and reads
each back; here one kernel reads x and the residual once per row and writes y and two row statistics. The
dropout mask is not stored: the backward regenerates it from the Philox seed (element (row, col) is kept
when word 0 of counter (col, row, STREAM, offset) under `seed` is at least threshold(p); with per-sequence
keys, counter (col, position of the row in its sequence, STREAM, offset) under that sequence's seed).
The backward writes d(residual) = d(sum), d(x) = the kept part of it scaled by 1/(1-p), and per-program
partial sums of d(weight), d(bias) that torch adds up. The reference is
`reference.dropout_add_layer_norm_reference`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from xlmr_ds.kernels.philox import threshold

STREAM = 0x4C4E
"""Third Philox counter word of this kernel's dropout: apart from attention dropout's (batch * head) words."""

ROWS_PER_PROGRAM = 16


@triton.jit
def _row_key(seed, row, SEEDS, ROW_SAMPLE, ROW_POSITION, PER_SAMPLE_SEEDS: tl.constexpr):
    """(Philox key, second counter word) of a row: the call's seed and the row, or its sequence's seed and its
    position in the sequence."""
    key, word1 = seed, row
    if PER_SAMPLE_SEEDS:
        key, word1 = tl.load(SEEDS + tl.load(ROW_SAMPLE + row)), tl.load(ROW_POSITION + row)
    return key, word1


@triton.jit
def _keep(seed, offset, rows, cols, drop_threshold, STREAM_WORD: tl.constexpr):
    c0 = (cols + rows * 0).to(tl.uint32)
    c1 = (rows + cols * 0).to(tl.uint32)
    c2 = c0 * 0 + STREAM_WORD
    c3 = c0 * 0 + offset.to(tl.uint32)
    word, _, _, _ = tl.philox(seed, c0, c1, c2, c3)
    return word.to(tl.int64) >= drop_threshold


@triton.jit(do_not_specialize=["seed", "offset", "drop_threshold"])
def _forward(X, RESIDUAL, WEIGHT, BIAS, Y, MEAN, RSTD, SEEDS, ROW_SAMPLE, ROW_POSITION, n_rows, n_cols, eps,
             keep_scale, drop_threshold, seed, offset,
             HAS_DROPOUT: tl.constexpr, STREAM_WORD: tl.constexpr, BLOCK: tl.constexpr,
             PER_SAMPLE_SEEDS: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    inside = cols < n_cols
    base = row.to(tl.int64) * n_cols
    x = tl.load(X + base + cols, mask=inside, other=0.0).to(tl.float32)
    if HAS_DROPOUT:
        key, word1 = _row_key(seed, row, SEEDS, ROW_SAMPLE, ROW_POSITION, PER_SAMPLE_SEEDS)
        x = tl.where(_keep(key, offset, word1, cols, drop_threshold, STREAM_WORD), x * keep_scale, 0.0)
    total = x + tl.load(RESIDUAL + base + cols, mask=inside, other=0.0).to(tl.float32)
    mean = tl.sum(total, 0) / n_cols
    centered = tl.where(inside, total - mean, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(centered * centered, 0) / n_cols + eps)
    weight = tl.load(WEIGHT + cols, mask=inside, other=0.0).to(tl.float32)
    bias = tl.load(BIAS + cols, mask=inside, other=0.0).to(tl.float32)
    tl.store(Y + base + cols, (centered * rstd * weight + bias).to(Y.dtype.element_ty), mask=inside)
    tl.store(MEAN + row, mean)
    tl.store(RSTD + row, rstd)


@triton.jit(do_not_specialize=["seed", "offset", "drop_threshold"])
def _backward(X, RESIDUAL, WEIGHT, DY, MEAN, RSTD, DX, DRESIDUAL, DWEIGHT_PARTIAL, DBIAS_PARTIAL,
              SEEDS, ROW_SAMPLE, ROW_POSITION, n_rows, n_cols, keep_scale, drop_threshold, seed, offset,
              HAS_DROPOUT: tl.constexpr, STREAM_WORD: tl.constexpr, BLOCK: tl.constexpr,
              ROWS: tl.constexpr, PER_SAMPLE_SEEDS: tl.constexpr):
    program = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    inside = cols < n_cols
    weight = tl.load(WEIGHT + cols, mask=inside, other=0.0).to(tl.float32)
    dweight = tl.zeros((BLOCK,), dtype=tl.float32)
    dbias = tl.zeros((BLOCK,), dtype=tl.float32)
    for step in range(ROWS):
        row = program * ROWS + step
        if row < n_rows:
            base = row.to(tl.int64) * n_cols
            x = tl.load(X + base + cols, mask=inside, other=0.0).to(tl.float32)
            if HAS_DROPOUT:
                key, word1 = _row_key(seed, row, SEEDS, ROW_SAMPLE, ROW_POSITION, PER_SAMPLE_SEEDS)
                keep = _keep(key, offset, word1, cols, drop_threshold, STREAM_WORD)
                x = tl.where(keep, x * keep_scale, 0.0)
            total = x + tl.load(RESIDUAL + base + cols, mask=inside, other=0.0).to(tl.float32)
            normalized = tl.where(inside, (total - tl.load(MEAN + row)) * tl.load(RSTD + row), 0.0)
            dy = tl.load(DY + base + cols, mask=inside, other=0.0).to(tl.float32)
            dweight += dy * normalized
            dbias += dy
            dnormalized = dy * weight
            dtotal = tl.load(RSTD + row) * (dnormalized - tl.sum(dnormalized, 0) / n_cols
                                            - normalized * (tl.sum(dnormalized * normalized, 0) / n_cols))
            tl.store(DRESIDUAL + base + cols, dtotal.to(DRESIDUAL.dtype.element_ty), mask=inside)
            if HAS_DROPOUT:
                dtotal = tl.where(keep, dtotal * keep_scale, 0.0)
            tl.store(DX + base + cols, dtotal.to(DX.dtype.element_ty), mask=inside)
    tl.store(DWEIGHT_PARTIAL + program * n_cols + cols, dweight, mask=inside)
    tl.store(DBIAS_PARTIAL + program * n_cols + cols, dbias, mask=inside)


def _warps(block: int) -> int:
    return 1 if block <= 256 else 4 if block <= 2048 else 8


class _DropoutAddLayerNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, residual, weight, bias, p, eps, seed, offset, row_keys):
        x, residual = x.contiguous(), residual.contiguous()
        n_cols = x.shape[-1]
        n_rows = x.numel() // n_cols
        y = torch.empty_like(x)
        mean = torch.empty(n_rows, dtype=torch.float32, device=x.device)
        rstd = torch.empty_like(mean)
        block = triton.next_power_of_2(n_cols)
        _forward[(n_rows,)](x, residual, weight, bias, y, mean, rstd, *_row_key_args(row_keys, x), n_rows, n_cols,
                            eps, 1.0 / (1.0 - p), threshold(p), seed, offset, HAS_DROPOUT=p > 0.0,
                            STREAM_WORD=STREAM, BLOCK=block, PER_SAMPLE_SEEDS=row_keys is not None,
                            num_warps=_warps(block))
        ctx.save_for_backward(x, residual, weight, mean, rstd)
        ctx.p, ctx.seed, ctx.offset, ctx.row_keys = p, seed, offset, row_keys
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, residual, weight, mean, rstd = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        n_cols = x.shape[-1]
        n_rows = x.numel() // n_cols
        programs = triton.cdiv(n_rows, ROWS_PER_PROGRAM)
        grad_x, grad_residual = torch.empty_like(x), torch.empty_like(residual)
        dweight = torch.empty((programs, n_cols), dtype=torch.float32, device=x.device)
        dbias = torch.empty_like(dweight)
        block = triton.next_power_of_2(n_cols)
        _backward[(programs,)](x, residual, weight, grad_y, mean, rstd, grad_x, grad_residual, dweight, dbias,
                               *_row_key_args(ctx.row_keys, x), n_rows, n_cols, 1.0 / (1.0 - ctx.p),
                               threshold(ctx.p), ctx.seed, ctx.offset, HAS_DROPOUT=ctx.p > 0.0, STREAM_WORD=STREAM,
                               BLOCK=block, ROWS=ROWS_PER_PROGRAM, PER_SAMPLE_SEEDS=ctx.row_keys is not None,
                               num_warps=_warps(block))
        return (grad_x, grad_residual, dweight.sum(0).to(weight.dtype), dbias.sum(0).to(weight.dtype),
                None, None, None, None, None)


def _row_key_args(row_keys, x: torch.Tensor) -> tuple:
    """The SEEDS, ROW_SAMPLE, ROW_POSITION pointers (x stands in for them without per-sequence keys)."""
    return row_keys if row_keys is not None else (x, x, x)


def dropout_add_layer_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                           p: float = 0.0, eps: float = 1e-5, seed: int = 0, offset: int = 0,
                           row_keys: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """LayerNorm(residual + dropout(x)) * weight + bias over the last dimension.

    row_keys (sample_seeds int64 (batch,), row_sample int32 (rows,), row_position int32 (rows,)): key each row's
    dropout by its sequence's seed and its position in it instead of by `seed` and the row number."""
    if x.shape != residual.shape:
        raise ValueError(f"dropout_add_layer_norm needs x and residual of one shape; got {tuple(x.shape)} and "
                         f"{tuple(residual.shape)}")
    if weight.shape != (x.shape[-1],) or bias.shape != (x.shape[-1],):
        raise ValueError(f"dropout_add_layer_norm needs weight and bias of shape ({x.shape[-1]},)")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability {p} is outside [0, 1)")
    if row_keys is not None:
        rows = x.numel() // x.shape[-1]
        sample_seeds, row_sample, row_position = row_keys
        if (sample_seeds.dtype != torch.int64 or row_sample.dtype != torch.int32 or row_position.dtype != torch.int32
                or row_sample.numel() != rows or row_position.numel() != rows):
            raise ValueError(f"row_keys must be (seeds int64, row_sample int32 ({rows},), row_position int32 "
                             f"({rows},))")
        row_keys = tuple(t.to(x.device).contiguous() for t in row_keys)
    return _DropoutAddLayerNorm.apply(x, residual, weight, bias, p, eps, seed, offset, row_keys)
