"""Kernel speed, each figure beside its baselines measured in the same run.

- fused attention forward, backward and both against torch SDPA (with a mask and dropout it runs its
  memory-efficient kernel) and the eager reference, at batch 32 x 16 heads x 512 x 64, bf16, 15% padding,
  dropout 0.1 on a GPU; TFLOP/s as FlashAttention-2 counts them (forward 4*B*H*S^2*Dh, backward 2.5x); the packed path
  against the padded one at the same padding;
- masked softmax against the unfused PyTorch sequence, MLM masking on the device against the data path's
  NumPy masking.
pytest-benchmark times our implementation; the baselines are timed the same way in the same test, and the
ratio (baseline time / ours) is printed and kept in extra_info. On CPU the same tests run at tiny shapes in
Triton's interpreter as a smoke test: their ratios mean nothing (the aim, >= 1.2x SDPA forward+backward and
>= 50% of FlashAttention-2's ~280 TFLOP/s, is for an H100; see benchmarks/GPU.md).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xlmr_ds.kernels.mlm_masking_reference import MaskingConfig, mask_tokens
from xlmr_ds.kernels.reference import eager_attention, key_padding_bias

ON_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if ON_GPU else "cpu")
# (batch, heads, seq, head_dim), dtype: the shape on a GPU, a smoke shape for the interpreter.
SHAPE, DTYPE = ((32, 16, 512, 64), torch.bfloat16) if ON_GPU else ((1, 2, 64, 32), torch.float32)
PADDING, DROPOUT = 0.15, 0.1
REPEATS = 20 if ON_GPU else 1


def _sync():
    if ON_GPU:
        torch.cuda.synchronize()


def _median_seconds(fn, repeats: int = REPEATS) -> float:
    fn()
    _sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _timed(fn):
    """fn with a device synchronization inside, so pytest-benchmark times the kernels, not their launch."""
    def run():
        fn()
        _sync()
    return run


def _inputs():
    batch, heads, seq, dim = SHAPE
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(SHAPE, generator=generator).to(DEVICE, DTYPE).requires_grad_() for _ in range(3))
    # Right padding: sequence lengths spread around (1 - PADDING) * seq, as packed-then-padded batches are.
    lengths = (seq * (1 - PADDING) + torch.randn(batch, generator=generator) * seq * 0.08).round().clamp(16, seq)
    lengths = (lengths * (seq * (1 - PADDING) * batch / lengths.sum())).round().clamp(16, seq).long()
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).long().to(DEVICE)
    return q, k, v, mask


def _implementations(mask):
    from xlmr_ds.kernels.flash_attention import flash_attention

    bias = key_padding_bias(mask, DTYPE)
    return {
        "triton": lambda q, k, v: flash_attention(q, k, v, mask, dropout_p=DROPOUT, seed=1),
        "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=DROPOUT),
        "eager": lambda q, k, v: eager_attention(q, k, v, bias, DROPOUT, SHAPE[-1] ** -0.5),
    }


def _attention_flops(passes: str) -> float:
    batch, heads, seq, dim = SHAPE
    forward = 4 * batch * heads * seq * seq * dim
    return {"forward": forward, "backward": 2.5 * forward, "forward+backward": 3.5 * forward}[passes]


def _step(fn, q, k, v, passes: str, grad):
    """One timed call: forward and backward together, or the backward alone of a graph built once."""
    if passes == "forward+backward":
        return lambda: torch.autograd.grad(fn(q, k, v), (q, k, v), grad)
    out = fn(q, k, v)
    return lambda: torch.autograd.grad(out, (q, k, v), grad, retain_graph=True)


@pytest.mark.slow
@pytest.mark.parametrize("passes", ["forward", "backward", "forward+backward"])
def test_fused_attention_against_sdpa_and_eager(benchmark, passes):
    q, k, v, mask = _inputs()
    grad = torch.randn_like(q)
    impls = _implementations(mask)
    if passes == "forward":
        steps = {}
        for name, fn in impls.items():
            def forward(fn=fn):
                with torch.no_grad():
                    fn(q, k, v)
            steps[name] = forward
    else:
        steps = {name: _step(fn, q, k, v, passes, grad) for name, fn in impls.items()}
    benchmark.pedantic(_timed(steps["triton"]), rounds=REPEATS, iterations=1, warmup_rounds=1)
    ours = benchmark.stats.stats.median
    baselines = {name: _median_seconds(step) for name, step in steps.items() if name != "triton"}
    tflops = _attention_flops(passes) / ours / 1e12
    ratios = {f"ratio_vs_{name}": seconds / ours for name, seconds in baselines.items()}
    benchmark.extra_info.update(shape=list(SHAPE), dtype=str(DTYPE), padding=PADDING, dropout=DROPOUT,
                                device=torch.cuda.get_device_name() if ON_GPU else "cpu (interpreter)",
                                tflops=tflops, seconds=ours, **{f"{n}_seconds": s for n, s in baselines.items()},
                                **ratios)
    print(f"\nattention {passes} {SHAPE} {DTYPE}: triton {ours * 1e3:.3f} ms = {tflops:.1f} TFLOP/s; "
          + ", ".join(f"{name} {seconds * 1e3:.3f} ms" for name, seconds in baselines.items())
          + f"; ratio: {ratios['ratio_vs_sdpa']:.2f} (sdpa / triton), {ratios['ratio_vs_eager']:.2f} (eager / triton)")


@pytest.mark.slow
def test_packed_attention_against_padded_at_15_percent_padding(benchmark):
    from xlmr_ds.kernels.flash_attention import flash_attention, flash_attention_varlen

    q, k, v, mask = _inputs()
    lengths = mask.sum(1)
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32, device=DEVICE)
    cu[1:] = lengths.cumsum(0)
    flat = mask.flatten().nonzero().flatten()
    packed = [t.detach().transpose(1, 2).reshape(-1, SHAPE[1], SHAPE[3])[flat].requires_grad_() for t in (q, k, v)]
    grad_padded, grad_packed = torch.randn_like(q), torch.randn_like(packed[0])

    def padded_step():
        torch.autograd.grad(flash_attention(q, k, v, mask, dropout_p=DROPOUT, seed=1), (q, k, v), grad_padded)

    def packed_step():
        torch.autograd.grad(flash_attention_varlen(*packed, cu, SHAPE[2], dropout_p=DROPOUT, seed=1), packed,
                            grad_packed)

    benchmark.pedantic(_timed(packed_step), rounds=REPEATS, iterations=1, warmup_rounds=1)
    ours, padded = benchmark.stats.stats.median, _median_seconds(padded_step)
    benchmark.extra_info.update(shape=list(SHAPE), padding=PADDING, packed_seconds=ours, padded_seconds=padded,
                                ratio_padded_over_packed=padded / ours)
    print(f"\nattention forward+backward at {PADDING:.0%} padding: packed {ours * 1e3:.3f} ms, padded "
          f"{padded * 1e3:.3f} ms; ratio: {padded / ours:.2f} (padded / packed)")


@pytest.mark.slow
def test_masked_softmax_against_the_unfused_pytorch_sequence(benchmark):
    from xlmr_ds.kernels.masked_softmax import masked_softmax

    batch, heads, seq, _ = SHAPE
    scores = torch.randn(batch, heads, seq, seq, device=DEVICE, dtype=DTYPE, requires_grad=True)
    _, _, _, mask = _inputs()
    keep = mask.bool()[:, None, None, :]
    grad = torch.randn_like(scores)

    def fused():
        torch.autograd.grad(masked_softmax(scores, keep, 0.125), scores, grad)

    def unfused():
        probs = torch.softmax((scores * 0.125).masked_fill(~keep, float("-inf")), dim=-1)
        torch.autograd.grad(probs, scores, grad)

    benchmark.pedantic(_timed(fused), rounds=REPEATS, iterations=1, warmup_rounds=1)
    ours, baseline = benchmark.stats.stats.median, _median_seconds(unfused)
    benchmark.extra_info.update(shape=[batch, heads, seq, seq], dtype=str(DTYPE), fused_seconds=ours,
                                unfused_seconds=baseline, ratio=baseline / ours)
    print(f"\nmasked softmax forward+backward {tuple(scores.shape)}: fused {ours * 1e3:.3f} ms, unfused "
          f"{baseline * 1e3:.3f} ms; ratio: {baseline / ours:.2f} (unfused / fused)")


@pytest.mark.slow
def test_mlm_masking_on_the_device_against_the_loaders_numpy_masking(benchmark):
    from xlmr_ds.kernels.mlm_masking import mlm_mask, special_token_table

    config = MaskingConfig(vocab_size=250002, special_ids=(0, 1, 2, 3, 250001))
    batch, seq = (SHAPE[0], SHAPE[2])
    tokens = torch.randint(4, 250001, (batch, seq))
    index = torch.arange(batch, dtype=torch.int64)
    on_device, index_on_device = tokens.to(DEVICE), index.to(DEVICE)
    table = special_token_table(config, DEVICE)
    benchmark.pedantic(_timed(lambda: mlm_mask(on_device, index_on_device, config, 7, table)), rounds=REPEATS,
                       iterations=1, warmup_rounds=1)
    rows = tokens.numpy()
    ours = benchmark.stats.stats.median
    baseline = _median_seconds(lambda: [mask_tokens(rows[r], config, 7, r) for r in range(batch)], repeats=3)
    benchmark.extra_info.update(batch=batch, seq=seq, kernel_seconds=ours, numpy_seconds=baseline,
                                ratio=baseline / ours)
    print(f"\nMLM masking {batch} x {seq}: kernel {ours * 1e3:.3f} ms, NumPy {baseline * 1e3:.3f} ms; "
          f"ratio: {baseline / ours:.2f} (numpy / kernel)")
    assert np.array_equal(mlm_mask(on_device, index_on_device, config, 7, table)[0][0].cpu().numpy(),
                          mask_tokens(rows[0], config, 7, 0)[0])


@pytest.mark.slow
@pytest.mark.parametrize("op", ["bias_gelu", "dropout_add_layer_norm"])
def test_fused_pointwise_against_pytorch(benchmark, op):
    from xlmr_ds.kernels.fused_bias_gelu import bias_gelu
    from xlmr_ds.kernels.fused_residual_layernorm import dropout_add_layer_norm

    # One Large layer's activations at micro-batch 8 x 512 on a GPU: (4096 tokens, 4096 FFN / 1024 hidden).
    tokens, hidden, ffn = (8 * 512, 1024, 4096) if ON_GPU else (64, 128, 512)
    generator = torch.Generator().manual_seed(0)
    make = lambda *shape: torch.randn(*shape, generator=generator).to(DEVICE, DTYPE).requires_grad_()  # noqa: E731
    if op == "bias_gelu":
        x, bias = make(tokens, ffn), make(ffn)
        grad = torch.randn_like(x)
        fused = lambda: torch.autograd.grad(bias_gelu(x, bias), (x, bias), grad)  # noqa: E731
        unfused = lambda: torch.autograd.grad(F.gelu(x + bias), (x, bias), grad)  # noqa: E731
    else:
        x, residual, weight, bias = make(tokens, hidden), make(tokens, hidden), make(hidden), make(hidden)
        grad = torch.randn_like(x)
        inputs = (x, residual, weight, bias)
        fused = lambda: torch.autograd.grad(  # noqa: E731
            dropout_add_layer_norm(x, residual, weight, bias, DROPOUT, 1e-5, seed=1), inputs, grad)
        unfused = lambda: torch.autograd.grad(  # noqa: E731
            F.layer_norm(residual + F.dropout(x, DROPOUT), (hidden,), weight, bias, 1e-5), inputs, grad)
    benchmark.pedantic(_timed(fused), rounds=REPEATS, iterations=1, warmup_rounds=1)
    ours, baseline = benchmark.stats.stats.median, _median_seconds(unfused)
    benchmark.extra_info.update(op=op, tokens=tokens, dtype=str(DTYPE), fused_seconds=ours, unfused_seconds=baseline,
                                ratio=baseline / ours)
    print(f"\n{op} forward+backward ({tokens} tokens): fused {ours * 1e3:.3f} ms, PyTorch {baseline * 1e3:.3f} ms; "
          f"ratio: {baseline / ours:.2f} (pytorch / fused)")


@pytest.mark.slow
@pytest.mark.parametrize("op", ["attention", "attention_packed", "dropout_add_layer_norm"])
def test_dropout_keyed_by_sample_against_one_seed_per_call(benchmark, op):
    """What keying dropout by sample costs the fused kernels (kernels/keyed_dropout.py): one Philox key per
    sequence, loaded in the kernel, against one seed per call; forward+backward, same shapes as above."""
    from xlmr_ds.kernels.flash_attention import flash_attention, flash_attention_varlen
    from xlmr_ds.kernels.fused_residual_layernorm import dropout_add_layer_norm

    q, k, v, mask = _inputs()
    batch, heads, seq, dim = SHAPE
    seeds = torch.arange(1, batch + 1, dtype=torch.int64, device=DEVICE) * 0x9E3779B9
    if op == "attention":
        grad = torch.randn_like(q)
        call = lambda **key: torch.autograd.grad(  # noqa: E731
            flash_attention(q, k, v, mask, dropout_p=DROPOUT, **key), (q, k, v), grad)
    elif op == "attention_packed":
        lengths = mask.sum(1)
        cu = torch.zeros(batch + 1, dtype=torch.int32, device=DEVICE)
        cu[1:] = lengths.cumsum(0)
        flat = mask.flatten().nonzero().flatten()
        packed = [t.detach().transpose(1, 2).reshape(-1, heads, dim)[flat].requires_grad_() for t in (q, k, v)]
        grad = torch.randn_like(packed[0])
        call = lambda **key: torch.autograd.grad(  # noqa: E731
            flash_attention_varlen(*packed, cu, seq, dropout_p=DROPOUT, **key), packed, grad)
    else:
        tokens, hidden = (8 * 512, 1024) if ON_GPU else (64, 128)
        generator = torch.Generator().manual_seed(0)
        x, residual = (torch.randn(tokens, hidden, generator=generator).to(DEVICE, DTYPE).requires_grad_()
                       for _ in range(2))
        weight, bias = torch.ones(hidden, device=DEVICE, dtype=DTYPE), torch.zeros(hidden, device=DEVICE, dtype=DTYPE)
        grad = torch.randn_like(x)
        rows_per_sample = tokens // 8
        keys = (seeds[:8].contiguous(), torch.arange(tokens, device=DEVICE, dtype=torch.int32) // rows_per_sample,
                torch.arange(tokens, device=DEVICE, dtype=torch.int32) % rows_per_sample)
        call = lambda **key: torch.autograd.grad(  # noqa: E731
            dropout_add_layer_norm(x, residual, weight, bias, DROPOUT, 1e-5,
                                   **({"row_keys": keys} if "sample_seeds" in key else key)), (x, residual), grad)
    keyed = lambda: call(sample_seeds=seeds)  # noqa: E731
    one_seed = lambda: call(seed=1)  # noqa: E731
    benchmark.pedantic(_timed(keyed), rounds=REPEATS, iterations=1, warmup_rounds=1)
    ours, baseline = benchmark.stats.stats.median, _median_seconds(one_seed)
    benchmark.extra_info.update(op=op, dtype=str(DTYPE), keyed_seconds=ours, one_seed_seconds=baseline,
                                ratio=baseline / ours)
    print(f"\n{op} forward+backward, dropout keyed by sample: {ours * 1e3:.3f} ms, one seed per call "
          f"{baseline * 1e3:.3f} ms; ratio: {baseline / ours:.2f} (one seed / keyed)")
