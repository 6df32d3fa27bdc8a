"""XLM-R model configuration and the named presets.

The presets `base` and `large` are the published XLM-R shapes (Conneau et al. 2019, and the released
checkpoints' config.json); `tiny` is a few-layer model for tests and the CPU demo. This module knows nothing
of training or of Hugging Face.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.jsonfile import read_json_object
from xlmr_ds.vocab import BOS_ID, EOS_ID, PAD_ID

XLMR_VOCAB_SIZE = 250_002
"""250,000 SentencePiece pieces + <s>, <pad>, </s>, <unk> - 3 pieces shared + <mask> (the released XLM-R's
fairseq dictionary)."""


@dataclass(frozen=True)
class XLMRConfig:
    """Shape and regularization of an XLM-R (RoBERTa architecture) masked language model."""

    vocab_size: int = XLMR_VOCAB_SIZE
    """Number of token ids, including the specials <s>=0, <pad>=1, </s>=2, <unk>=3 and <mask> (the last id)."""

    hidden_size: int = 768
    """Width of the residual stream (d)."""

    num_layers: int = 12
    """Number of post-LayerNorm transformer blocks."""

    num_heads: int = 12
    """Attention heads per block; hidden_size must be a multiple of it."""

    ffn_size: int = 3072
    """Inner width of each block's feed-forward network."""

    max_position_embeddings: int = 514
    """Rows of the learned position table. Positions start at pad_token_id + 1 = 2, so a sequence holds at
    most max_position_embeddings - 2 tokens (512 for the published models)."""

    type_vocab_size: int = 1
    """Rows of the token-type table. XLM-R uses one row (every token is type 0); kept for checkpoint parity."""

    pad_token_id: int = PAD_ID
    """Id of <pad>; also the padding row of the word and position tables."""

    bos_token_id: int = BOS_ID
    """Id of <s>, which starts every sequence."""

    eos_token_id: int = EOS_ID
    """Id of </s>, which ends every sequence."""

    layer_norm_eps: float = 1e-5
    """Epsilon of every LayerNorm."""

    hidden_dropout: float = 0.1
    """Dropout on embeddings and on each sublayer's output before the residual add."""

    attention_dropout: float = 0.1
    """Dropout on the attention probabilities."""

    initializer_range: float = 0.02
    """Standard deviation of the normal initialization of linear and embedding weights."""

    def __post_init__(self) -> None:
        positive = ("vocab_size", "hidden_size", "num_layers", "num_heads", "ffn_size", "type_vocab_size")
        for name in positive:
            if getattr(self, name) <= 0:
                raise XLMRDSError(f"model config: {name}={getattr(self, name)} must be a positive integer")
        if self.hidden_size % self.num_heads:
            raise XLMRDSError(
                f"model config: hidden_size={self.hidden_size} is not a multiple of num_heads={self.num_heads}"
            )
        if self.max_position_embeddings <= self.pad_token_id + 1:
            raise XLMRDSError(
                f"model config: max_position_embeddings={self.max_position_embeddings} leaves no room for a "
                f"token (positions start at pad_token_id + 1 = {self.pad_token_id + 1})"
            )
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise XLMRDSError(f"model config: {name}={getattr(self, name)} must be in [0, 1)")
        specials = {"pad_token_id": self.pad_token_id, "bos_token_id": self.bos_token_id,
                    "eos_token_id": self.eos_token_id}
        for name, value in specials.items():
            if not 0 <= value < self.vocab_size:
                raise XLMRDSError(f"model config: {name}={value} is outside the vocabulary [0, {self.vocab_size})")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def max_sequence_length(self) -> int:
        """Longest input the position table can embed (512 for the published models)."""
        return self.max_position_embeddings - self.pad_token_id - 1

    def replace(self, **changes) -> XLMRConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "model config") -> XLMRConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise XLMRDSError(f"{source}: unknown key {unknown[0]!r}; valid keys are {', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | Path) -> XLMRConfig:
        return cls.from_dict(read_json_object(path, "model config file"), source=str(path))


PRESETS: dict[str, XLMRConfig] = {
    # A few layers and a small vocabulary: fast on CPU, head_dim 32 (a size the Triton kernels support).
    "tiny": XLMRConfig(vocab_size=1_000, hidden_size=128, num_layers=2, num_heads=4, ffn_size=512),
    # A try-out size for one CPU box: 4 layers of width 256 (head_dim 64) and a 32k vocabulary, the size of
    # a monolingual tokenizer; datasets replace the vocabulary with their tokenizer's, as for every preset.
    "small": XLMRConfig(vocab_size=32_000, hidden_size=256, num_layers=4, num_heads=4, ffn_size=1024),
    "base": XLMRConfig(hidden_size=768, num_layers=12, num_heads=12, ffn_size=3072),
    "large": XLMRConfig(hidden_size=1024, num_layers=24, num_heads=16, ffn_size=4096),
}


def preset(name: str, **overrides) -> XLMRConfig:
    """The named preset, with fields overridden (for example vocab_size from a trained tokenizer)."""
    if name not in PRESETS:
        raise XLMRDSError(f"unknown model {name!r}; choose one of {', '.join(PRESETS)} or pass a config file")
    return PRESETS[name].replace(**overrides)
