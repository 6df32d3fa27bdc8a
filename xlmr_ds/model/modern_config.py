"""ModernBERT configuration (the architecture of ModernBERT, Warner et al. 2024, and of mmBERT, Marone et al.
2025) and its named presets. This module knows nothing of training or of Hugging Face.

The fields are those of transformers' ModernBertConfig under our names; the values a released model does not
vary (the GELU activations, RoPE's default type) are not fields: modern_hf.py refuses a config.json that sets
them otherwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.jsonfile import read_json_object


@dataclass(frozen=True)
class ModernBertConfig:
    """Shape and regularization of a ModernBERT masked language model: pre-norm blocks with rotary positions,
    GeGLU, no biases by default, and global attention every few layers with a sliding window on the others."""

    architecture: ClassVar[str] = "modernbert"
    """What a config file's "architecture" key names to select this class (XLM-R's configs name "xlmr")."""

    vocab_size: int = 50_368
    """Number of token ids (ModernBERT's tokenizer: 50,368 with padding to a multiple of 64)."""

    hidden_size: int = 768
    """Width of the residual stream."""

    num_layers: int = 22
    """Number of pre-LayerNorm blocks."""

    num_heads: int = 12
    """Attention heads per block; hidden_size must be a multiple of it, and the head size even (RoPE rotates
    pairs)."""

    ffn_size: int = 1_152
    """Width of the GeGLU's gated product: its input projection gives 2 x ffn_size (transformers'
    intermediate_size)."""

    max_position_embeddings: int = 8_192
    """Longest sequence the model is trained for (rotary positions have no table; this bounds the input)."""

    local_attention: int = 128
    """Width of the sliding window of the local layers: a token sees local_attention // 2 tokens on each side,
    and itself. Even."""

    global_attn_every_n_layers: int = 3
    """Layer i attends globally when i % n == 0, else within the sliding window."""

    global_rope_theta: float = 160_000.0
    """RoPE base of the global layers."""

    local_rope_theta: float = 10_000.0
    """RoPE base of the sliding-window layers."""

    norm_eps: float = 1e-5
    """Epsilon of every LayerNorm."""

    norm_bias: bool = False
    """Whether the LayerNorms have a bias."""

    attention_bias: bool = False
    """Whether the attention's Wqkv and Wo have biases."""

    mlp_bias: bool = False
    """Whether the GeGLU's Wi and Wo have biases."""

    decoder_bias: bool = True
    """Whether the LM decoder (tied to the token embeddings) has a bias."""

    classifier_bias: bool = False
    """Whether the prediction head's dense layer has a bias (transformers' classifier_bias names it)."""

    embedding_dropout: float = 0.0
    """Dropout after the embedding LayerNorm."""

    attention_dropout: float = 0.0
    """Dropout on the attention probabilities and on the attention's output."""

    mlp_dropout: float = 0.0
    """Dropout on the GeGLU's gated product."""

    initializer_range: float = 0.02
    """Standard deviation of the input-side weights; output sides use it / sqrt(2 x num_layers)."""

    initializer_cutoff_factor: float = 2.0
    """Initial weights are a normal truncated at this many standard deviations."""

    pad_token_id: int = 50_283
    """Id of the padding token (ModernBERT's [PAD])."""

    bos_token_id: int = 50_281
    """Id that starts every sequence ([CLS])."""

    eos_token_id: int = 50_282
    """Id that ends every sequence ([SEP])."""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "ffn_size", "max_position_embeddings",
                     "local_attention", "global_attn_every_n_layers"):
            if getattr(self, name) <= 0:
                raise XLMRDSError(f"model config: {name}={getattr(self, name)} must be a positive integer")
        if self.hidden_size % self.num_heads:
            raise XLMRDSError(f"model config: hidden_size={self.hidden_size} is not a multiple of "
                              f"num_heads={self.num_heads}")
        if self.head_dim % 2:
            raise XLMRDSError(f"model config: head size hidden_size / num_heads = {self.head_dim} is odd; rotary "
                              f"embeddings rotate pairs of dimensions, so it must be even")
        if self.local_attention % 2:
            raise XLMRDSError(f"model config: local_attention={self.local_attention} must be even (a token sees "
                              f"local_attention / 2 tokens on each side)")
        for name in ("embedding_dropout", "attention_dropout", "mlp_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise XLMRDSError(f"model config: {name}={getattr(self, name)} must be in [0, 1)")
        for name in ("global_rope_theta", "local_rope_theta", "norm_eps", "initializer_range",
                     "initializer_cutoff_factor"):
            if not getattr(self, name) > 0:
                raise XLMRDSError(f"model config: {name}={getattr(self, name)} must be positive")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise XLMRDSError(f"model config: {name}={getattr(self, name)} is outside the vocabulary "
                                  f"[0, {self.vocab_size})")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def max_sequence_length(self) -> int:
        """Longest input: rotary positions need no table, so the trained length."""
        return self.max_position_embeddings

    @property
    def window_radius(self) -> int:
        """Tokens a sliding-window layer sees on each side of a token."""
        return self.local_attention // 2

    def is_global(self, layer: int) -> bool:
        """Whether layer `layer` (0-based) attends to the whole sequence."""
        return layer % self.global_attn_every_n_layers == 0

    def replace(self, **changes) -> ModernBertConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {"architecture": self.architecture, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict, source: str = "model config") -> ModernBertConfig:
        values = {key: value for key, value in values.items() if key != "architecture"}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise XLMRDSError(f"{source}: unknown key {unknown[0]!r}; valid keys are {', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | Path) -> ModernBertConfig:
        return cls.from_dict(read_json_object(path, "model config file"), source=str(path))


GEMMA2_SPECIAL_IDS = {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}
"""The special ids of Gemma 2's tokenizer, which mmBERT uses (256,000 ids)."""

MODERN_PRESETS: dict[str, ModernBertConfig] = {
    # The released shapes (their config.json files): Warner et al. 2024 and Marone et al. 2025.
    "modernbert-base": ModernBertConfig(),
    "modernbert-large": ModernBertConfig(hidden_size=1024, num_layers=28, num_heads=16, ffn_size=2624),
    "mmbert-small": ModernBertConfig(vocab_size=256_000, hidden_size=384, num_layers=22, num_heads=6, ffn_size=1152,
                                     local_rope_theta=160_000.0, **GEMMA2_SPECIAL_IDS),
    "mmbert-base": ModernBertConfig(vocab_size=256_000, hidden_size=768, num_layers=22, num_heads=12, ffn_size=1152,
                                    local_rope_theta=160_000.0, **GEMMA2_SPECIAL_IDS),
    # Tests and the CPU demo: head size 32, a window of 16 (8 on each side) that 64-token blocks exceed.
    "modern-tiny": ModernBertConfig(vocab_size=1_000, hidden_size=128, num_layers=3, num_heads=4, ffn_size=192,
                                    max_position_embeddings=512, local_attention=16, pad_token_id=1,
                                    bos_token_id=0, eos_token_id=2),
}
