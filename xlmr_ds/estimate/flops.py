"""Model FLOP accounting (as in Kaplan et al. 2020 and Narayanan et al. 2021), shared by training metrics,
`xlmr-ds bench` and `xlmr-ds plan`.

Forward FLOPs of one sequence of S tokens with m labelled positions, L layers, hidden d, FFN width f,
vocabulary V (a multiply-add is 2 FLOPs):

    encoder   L * (8 S d^2 + 4 S d f + 4 S^2 d)     Q, K, V and output projections; the FFN; QK^T and PV
    LM head   m * (2 d^2 + 2 d V)                   dense, then the tied decoder, on the labelled positions

With f = 4d (every XLM-R preset) the encoder term is the familiar L * (24 S d^2 + 4 S^2 d). Training is 3x
forward. The FFN width is the config's own, so a custom config reports its true MFU.

A ModernBERT layer (GeGLU of width f: its input projection gives 2f, so 6 S d f) attends to every key on a
global layer and to the keys within its window on the others (2r + 1 of them at most, r = local_attention / 2;
the window's keys are what a kernel that skips the tiles outside it computes):

    encoder   sum over layers of (8 S d^2 + 6 S d f + 4 S K d),   K = S (global) or min(S, 2r + 1) (local)
"""

from __future__ import annotations

from xlmr_ds.model.architectures import ModelConfig
from xlmr_ds.model.modern_config import ModernBertConfig

PEAK_TFLOPS = {"h100": 989.0, "h200": 989.0, "a100": 312.0}
"""Dense bf16 peak per GPU, TFLOP/s."""


def encoder_forward_flops(config: ModelConfig, seq: int) -> float:
    """Forward FLOPs of the transformer blocks for one sequence of `seq` tokens."""
    d, f = config.hidden_size, config.ffn_size
    if isinstance(config, ModernBertConfig):
        window = min(seq, 2 * config.window_radius + 1)
        keys = sum(seq if config.is_global(layer) else window for layer in range(config.num_layers))
        return config.num_layers * (8 * seq * d**2 + 6 * seq * d * f) + 4 * seq * keys * d
    return config.num_layers * (8 * seq * d**2 + 4 * seq * d * f + 4 * seq**2 * d)


def lm_head_forward_flops(config: ModelConfig, labelled: int) -> float:
    """Forward FLOPs of the LM head on `labelled` positions (it runs on those only)."""
    d = config.hidden_size
    return labelled * (2 * d**2 + 2 * d * config.vocab_size)


def training_flops(config: ModelConfig, seq: int, labelled: int) -> float:
    """Forward and backward FLOPs of one sequence of `seq` tokens with `labelled` masked positions."""
    return 3 * (encoder_forward_flops(config, seq) + lm_head_forward_flops(config, labelled))


def device_peak_tflops(device_name: str | None) -> float | None:
    """The table's peak for a CUDA device name such as 'NVIDIA H100 80GB HBM3', or None."""
    if not device_name:
        return None
    lowered = device_name.lower()
    for key, value in PEAK_TFLOPS.items():
        if key in lowered:
            return value
    return None
