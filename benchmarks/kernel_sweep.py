"""The attention kernel sweep, in the manner of Liger-Kernel's benchmarks: our fused attention beside torch
SDPA and the eager reference, measured in the same run, over sequence length x head dim x padding share,
for the forward pass, the backward pass and both; time and peak memory of each; JSON with the device named.

    python benchmarks/kernel_sweep.py --out sweep.json           # the full sweep, on a GPU (benchmarks/GPU.md)
    python benchmarks/kernel_sweep.py --smoke --out sweep.json   # tiny shapes in Triton's interpreter (CPU)
    python benchmarks/kernel_sweep.py --window 64 --out window.json   # ModernBERT's local layers (GPU)

Each configuration keeps the tokens per batch fixed (batch = tokens // seq) and the model width fixed
(heads = width // head dim), as a training step of one model at several lengths would. Providers:

    xlmr-ds          kernels/flash_attention.py on the padded batch (key padding mask)
    xlmr-ds varlen   the same kernel on the real tokens only (the model's unpadded path), with padding > 0
    sdpa             torch.nn.functional.scaled_dot_product_attention with the padding as an additive mask
    eager            kernels/reference.py: scores, softmax, dropout and the product, materialized

With --window R every provider attends within R positions on each side (ModernBERT's sliding window,
R = local_attention / 2 = 64): ours skips the blocks outside it, SDPA and eager take it as part of their
additive mask and compute every score, as transformers' SDPA path does. Its sweep runs ModernBERT's lengths,
1,024 to 8,192 tokens, at head dim 64 (mmBERT's).

All run with dropout 0.1, as in training. Times are medians over rounds that interleave the providers
(ours, sdpa, eager, ours, ...), so that a slow moment of a shared machine hits all of them; CUDA events on a
GPU. Peak memory is torch.cuda.max_memory_allocated above what the inputs hold (none on a CPU). TFLOP/s use
FlashAttention-2's count over the padded shape, forward 4*B*H*S^2*Dh and backward 2.5x that, so that providers
compare on one scale; the varlen path does less work for the same result and shows as faster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

ON_GPU = torch.cuda.is_available()
if not ON_GPU:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernels are imported

from xlmr_ds.kernels.flash_attention import flash_attention, flash_attention_varlen  # noqa: E402
from xlmr_ds.kernels.reference import eager_attention, key_padding_bias  # noqa: E402

PASSES = ("forward", "backward", "forward+backward")
DROPOUT = 0.1


@dataclass(frozen=True)
class Sweep:
    seqs: tuple[int, ...]
    head_dims: tuple[int, ...]
    paddings: tuple[float, ...]
    tokens: int
    """Tokens per batch (batch x seq), the same for every length."""
    width: int
    """Model width (heads x head dim), the same for every head dim."""
    dtype: str
    repeats: int


FULL = Sweep(seqs=(128, 256, 512, 1024, 2048, 4096), head_dims=(64, 128), paddings=(0.0, 0.15, 0.5),
             tokens=16384, width=1024, dtype="bfloat16", repeats=10)
SMOKE = Sweep(seqs=(64,), head_dims=(64,), paddings=(0.0, 0.25), tokens=64, width=128, dtype="float32", repeats=1)
WINDOWED = Sweep(seqs=(1024, 2048, 4096, 8192), head_dims=(64,), paddings=(0.0, 0.15), tokens=16384, width=768,
                 dtype="bfloat16", repeats=10)


def window_bias(mask: torch.Tensor | None, seq: int, window: int | None, dtype: torch.dtype,
                device) -> torch.Tensor | None:
    """The additive mask of padding and, given a window, of the keys beyond it (what SDPA and eager are given)."""
    bias = key_padding_bias(mask, dtype)
    if window is None:
        return bias
    position = torch.arange(seq, device=device)
    band = torch.zeros(seq, seq, dtype=dtype, device=device).masked_fill(
        (position[:, None] - position[None, :]).abs() > window, torch.finfo(dtype).min)[None, None]
    return band if bias is None else bias + band


def _sync() -> None:
    if ON_GPU:
        torch.cuda.synchronize()


def _inputs(batch: int, heads: int, seq: int, head_dim: int, padding: float, dtype: torch.dtype, seed: int):
    generator = torch.Generator().manual_seed(seed)
    device = "cuda" if ON_GPU else "cpu"
    q, k, v = (torch.randn(batch, heads, seq, head_dim, generator=generator).to(device, dtype).requires_grad_()
               for _ in range(3))
    # Right padding, lengths spread around (1 - padding) * seq, at least one real token per row.
    lengths = (seq * (1 - padding) * (1 + 0.3 * (torch.rand(batch, generator=generator) - 0.5))).round()
    lengths = lengths.clamp(1, seq).long() if padding else torch.full((batch,), seq)
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).long().to(device)
    return q, k, v, mask


def _providers(q, k, v, mask, padding: float, window: int | None = None) -> dict:
    """name -> (inputs that need gradients, function of them), for one configuration."""
    scale = q.shape[-1] ** -0.5
    padded_mask = mask if padding else None
    bias = window_bias(padded_mask, q.shape[2], window, q.dtype, q.device)
    providers = {
        "xlmr-ds": ((q, k, v), lambda q, k, v: flash_attention(q, k, v, padded_mask, dropout_p=DROPOUT, seed=1,
                                                              window=window)),
        "sdpa": ((q, k, v), lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=DROPOUT)),
        "eager": ((q, k, v), lambda q, k, v: eager_attention(q, k, v, bias, DROPOUT, scale)),
    }
    if padding:
        lengths = mask.sum(1)
        cu_seqlens = torch.zeros(len(lengths) + 1, dtype=torch.int32, device=mask.device)
        cu_seqlens[1:] = lengths.cumsum(0)
        real = mask.flatten().nonzero().flatten()
        heads, dim = q.shape[1], q.shape[3]
        packed = tuple(t.detach().transpose(1, 2).reshape(-1, heads, dim)[real].requires_grad_() for t in (q, k, v))
        seq = q.shape[2]
        providers["xlmr-ds varlen"] = (packed, lambda q, k, v: flash_attention_varlen(
            q, k, v, cu_seqlens, seq, dropout_p=DROPOUT, seed=1, window=window))
    return providers


def _step(inputs, fn, passes: str):
    """One timed call of `passes`: the forward alone (no graph), the backward of a graph built once, or both."""
    if passes == "forward":
        def forward():
            with torch.no_grad():
                fn(*inputs)
        return forward
    grad = torch.randn_like(fn(*inputs))
    if passes == "forward+backward":
        return lambda: torch.autograd.grad(fn(*inputs), inputs, grad)
    out = fn(*inputs)
    return lambda: torch.autograd.grad(out, inputs, grad, retain_graph=True)


def _seconds(step) -> float:
    if ON_GPU:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def _peak_memory_mib(step) -> float | None:
    if not ON_GPU:
        return None
    _sync()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    _sync()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def _too_big(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) if ON_GPU else isinstance(error, MemoryError)


def measure(sweep: Sweep, window: int | None = None) -> list[dict]:
    dtype = getattr(torch, sweep.dtype)
    rows = []
    for seq in sweep.seqs:
        batch = max(1, sweep.tokens // seq)
        for head_dim in sweep.head_dims:
            heads = max(1, sweep.width // head_dim)
            for padding in sweep.paddings:
                q, k, v, mask = _inputs(batch, heads, seq, head_dim, padding, dtype, seed=seq + head_dim)
                forward_flops = 4 * batch * heads * seq * seq * head_dim
                flops = {"forward": forward_flops, "backward": 2.5 * forward_flops,
                         "forward+backward": 3.5 * forward_flops}
                for passes in PASSES:
                    steps, failed = {}, {}
                    for name, (inputs, fn) in _providers(q, k, v, mask, padding, window).items():
                        try:
                            steps[name] = _step(inputs, fn, passes)
                            steps[name]()  # warm-up: compilation and autotuning stay out of the times
                            _sync()
                        except Exception as error:  # noqa: BLE001 - a provider that cannot run is reported
                            if not _too_big(error):
                                raise
                            failed[name] = "out of memory"
                            steps.pop(name, None)
                    times = {name: [] for name in steps}
                    for _ in range(sweep.repeats):
                        for name, step in steps.items():
                            times[name].append(_seconds(step))
                    for name in list(steps) + list(failed):
                        median = statistics.median(times[name]) if name in times else None
                        rows.append({
                            "seq": seq, "head_dim": head_dim, "heads": heads, "batch": batch, "padding": padding,
                            "window": window,
                            "pass": passes, "provider": name, "median_ms": median * 1e3 if median else None,
                            "tflops": flops[passes] / median / 1e12 if median else None,
                            "peak_memory_mib": _peak_memory_mib(steps[name]) if name in steps else None,
                            "error": failed.get(name),
                        })
                    sdpa = next((r["median_ms"] for r in rows[-len(steps) - len(failed):]
                                 if r["provider"] == "sdpa"), None)
                    for row in rows[-len(steps) - len(failed):]:
                        row["speedup_vs_sdpa"] = sdpa / row["median_ms"] if sdpa and row["median_ms"] else None
                del q, k, v, mask
                if ON_GPU:
                    torch.cuda.empty_cache()
    return rows


def device_name() -> str:
    if ON_GPU:
        return torch.cuda.get_device_name()
    return f"cpu ({platform.processor() or platform.machine()}), Triton interpreter"


def table(rows: list[dict]) -> str:
    lines = [f"{'seq':>5} {'dh':>4} {'pad':>5} {'pass':<17} {'provider':<15} {'ms':>9} {'TFLOP/s':>8} "
             f"{'MiB':>8} {'vs sdpa':>8}"]
    for r in rows:
        ms = f"{r['median_ms']:.3f}" if r["median_ms"] else r["error"]
        tflops = f"{r['tflops']:.1f}" if r["tflops"] else "-"
        memory = f"{r['peak_memory_mib']:.0f}" if r["peak_memory_mib"] is not None else "-"
        speedup = f"{r['speedup_vs_sdpa']:.2f}x" if r["speedup_vs_sdpa"] else "-"
        lines.append(f"{r['seq']:>5} {r['head_dim']:>4} {r['padding']:>5.2f} {r['pass']:<17} {r['provider']:<15} "
                     f"{ms:>9} {tflops:>8} {memory:>8} {speedup:>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the JSON results")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes (the interpreter on a CPU)")
    parser.add_argument("--window", type=int, metavar="R",
                        help="attend within R positions on each side (ModernBERT: 64); its own sweep of lengths")
    args = parser.parse_args(argv)
    if args.window is not None and args.window < 0:
        parser.error(f"--window {args.window}: must be at least 0")
    sweep = SMOKE if args.smoke or not ON_GPU else WINDOWED if args.window is not None else FULL
    import triton

    started = time.perf_counter()
    rows = measure(sweep, args.window)
    report = {"device": device_name(), "torch": torch.__version__, "triton": triton.__version__,
              "python": platform.python_version(), "commit": os.environ.get("COMMIT", "unknown"),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "dropout": DROPOUT,
              "sweep": asdict(sweep), "window": args.window, "seconds": time.perf_counter() - started, "rows": rows}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"device: {report['device']}; {len(rows)} measurements in {report['seconds']:.0f} s -> {args.out}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
