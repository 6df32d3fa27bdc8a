"""Model FLOP accounting (facts.md), shared by training metrics, bench and plan.

Forward FLOPs of one sequence of S tokens with m labelled positions, L layers, hidden d, vocab V:
    L * (24 S d^2 + 4 S^2 d) + m * (2 d^2 + 2 d V)
Training is 3x forward. The FFN width is taken as 4d, as in every XLM-R preset.
"""

from __future__ import annotations

PEAK_TFLOPS = {"h100": 989.0, "h200": 989.0, "a100": 312.0}
"""Dense bf16 peak per GPU, TFLOP/s."""


def forward_flops(num_layers: int, hidden: int, vocab: int, seq: int, labelled: int) -> float:
    return num_layers * (24 * seq * hidden**2 + 4 * seq**2 * hidden) + labelled * (2 * hidden**2 + 2 * hidden * vocab)


def training_flops(num_layers: int, hidden: int, vocab: int, seq: int, labelled: int) -> float:
    return 3 * forward_flops(num_layers, hidden, vocab, seq, labelled)


def device_peak_tflops(device_name: str | None) -> float | None:
    """The table's peak for a CUDA device name such as 'NVIDIA H100 80GB HBM3', or None."""
    if not device_name:
        return None
    lowered = device_name.lower()
    for key, value in PEAK_TFLOPS.items():
        if key in lowered:
            return value
    return None
