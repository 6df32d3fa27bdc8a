"""The ModernBERT masked language model (Warner et al. 2024; mmBERT, Marone et al. 2025 uses it unchanged).

Pre-LayerNorm blocks (the first block's attention norm is the identity: the embeddings are normalized
already), rotary positions on queries and keys with a base per layer kind, global attention on every n-th
layer and a sliding window on the others, a GeGLU feed-forward, no biases by default, a final LayerNorm, and
an LM head (dense, GELU, LayerNorm) whose decoder is tied to the token embeddings. The numbers match
transformers' ModernBertForMaskedLM (tests/model/test_modern.py); the module names are our own and
modern_hf.py maps them.

This module imports nothing from training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.kernels import resolve_kernel_backend
from xlmr_ds.model.modeling import MaskedLMOutput, masked_lm_output, unique_parameter_count
from xlmr_ds.model.modern_config import ModernBertConfig


def rotary_tables(positions: int, head_dim: int, theta: float, dtype: torch.dtype,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of RoPE (Su et al. 2021) for positions 0..positions-1: (positions, head_dim), computed in
    fp32 and then given the activations' dtype, with the two halves of the head repeating the frequencies."""
    inverse_frequencies = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device)
                                           / head_dim))
    angles = torch.arange(positions, dtype=torch.float32, device=device)[:, None] * inverse_frequencies
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x rotated by RoPE, in fp32: each dimension i of the first half paired with i + head_dim / 2."""
    x32 = x.float()
    half = x.shape[-1] // 2
    rotated = torch.cat((-x32[..., half:], x32[..., :half]), dim=-1)
    return (x32 * cos + rotated * sin).to(x.dtype)


def attention_bias(attention_mask: torch.Tensor | None, seq: int, window_radius: int | None, dtype: torch.dtype,
                   device: torch.device) -> torch.Tensor | None:
    """The additive attention mask of one kind of layer, (batch or 1, 1, seq, seq), or None where every key is
    seen: padding keys hidden, and for a sliding-window layer the keys further than `window_radius` away.
    Hidden entries hold the dtype's lowest value, not -inf, so that a row with no key left (a padding query
    beyond every window) is finite, as in transformers."""
    allowed = None
    if attention_mask is not None and not bool(attention_mask.all()):
        allowed = attention_mask.bool()[:, None, None, :]
    if window_radius is not None and window_radius + 1 < seq:
        position = torch.arange(seq, device=device)
        band = (position[:, None] - position[None, :]).abs() <= window_radius
        allowed = band[None, None] if allowed is None else allowed & band
    if allowed is None:
        return None
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)


class Embeddings(nn.Module):
    """Token embeddings, LayerNorm, dropout: no position table (positions are rotary, inside attention)."""

    def __init__(self, config: ModernBertConfig):
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self.dropout_p = config.embedding_dropout

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.norm(self.word(input_ids)), self.dropout_p, self.training)


class RotarySelfAttention(nn.Module):
    """Fused qkv projection, RoPE on queries and keys, scaled dot-product attention, output projection. On the
    Triton backend RoPE is one kernel (kernels/fused_rotary.py) and the fused attention kernel runs with the
    layer's window (tiles outside it skipped); on the others PyTorch's attention takes the window as part of an
    additive mask."""

    def __init__(self, config: ModernBertConfig):
        super().__init__()
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        self.dropout_p = config.attention_dropout
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.attention_bias)
        self.out = nn.Linear(config.hidden_size, config.hidden_size, bias=config.attention_bias)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor], bias: torch.Tensor | None,
                fused: FusedAttention | None = None) -> torch.Tensor:
        batch, seq, hidden = x.shape
        query, key, value = self.qkv(x).view(batch, seq, 3, self.num_heads, self.head_dim).transpose(1, 3).unbind(2)
        cos, sin = rotary
        dropout_p = self.dropout_p if self.training else 0.0
        if fused is not None:
            from xlmr_ds.kernels.flash_attention import flash_attention
            from xlmr_ds.kernels.fused_rotary import rotary as fused_rotary

            query, key = fused_rotary(query, cos, sin), fused_rotary(key, cos, sin)
            context = flash_attention(query, key, value, fused.attention_mask, dropout_p=dropout_p,
                                      window=fused.window, seed=int(torch.randint(0, 2**31 - 1, ())))
        else:
            query, key = apply_rotary(query, cos, sin), apply_rotary(key, cos, sin)
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=dropout_p,
                                                     scale=self.head_dim ** -0.5)
        return F.dropout(self.out(context.transpose(1, 2).reshape(batch, seq, hidden)), dropout_p, self.training)


@dataclass(frozen=True)
class FusedAttention:
    """What the Triton attention kernel needs of a layer kind: the key padding mask and the window (None: global)."""

    attention_mask: torch.Tensor | None
    window: int | None


class GeGLU(nn.Module):
    """wo(dropout(gelu(a) * b)) with (a, b) = wi(x) halved: Shazeer 2020's GELU-gated linear unit. `fused`: the
    gated product in one Triton pass (kernels/fused_geglu.py)."""

    def __init__(self, config: ModernBertConfig):
        super().__init__()
        self.wi = nn.Linear(config.hidden_size, 2 * config.ffn_size, bias=config.mlp_bias)
        self.wo = nn.Linear(config.ffn_size, config.hidden_size, bias=config.mlp_bias)
        self.dropout_p = config.mlp_dropout

    def forward(self, x: torch.Tensor, fused: bool = False) -> torch.Tensor:
        if fused:
            from xlmr_ds.kernels.fused_geglu import geglu

            gated = geglu(self.wi(x))
        else:
            value, gate = self.wi(x).chunk(2, dim=-1)
            gated = F.gelu(value) * gate
        return self.wo(F.dropout(gated, self.dropout_p, self.training))


class PreNormBlock(nn.Module):
    """x = x + attention(norm(x)); x = x + geglu(norm(x)). The first block's attention norm is the identity."""

    def __init__(self, config: ModernBertConfig, index: int):
        super().__init__()
        self.is_global = config.is_global(index)
        self.attention_norm = (nn.Identity() if index == 0 else
                               nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias))
        self.attention = RotarySelfAttention(config)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self.mlp = GeGLU(config)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor], bias: torch.Tensor | None,
                fused: FusedAttention | None = None) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), rotary, bias, fused)
        return x + self.mlp(self.mlp_norm(x), fused is not None)


class PredictionHead(nn.Module):
    """dense -> GELU -> LayerNorm: the head every ModernBERT task puts before its own output layer."""

    def __init__(self, config: ModernBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size, bias=config.classifier_bias)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(F.gelu(self.dense(hidden)))


class ModernBertModel(nn.Module):
    """The encoder: embeddings, blocks and the final LayerNorm, up to the final hidden states."""

    def __init__(self, config: ModernBertConfig, activation_checkpointing: bool = False,
                 kernel_backend: str = "auto"):
        """activation_checkpointing: recompute each block in backward (training only). kernel_backend: "auto"
        (Triton's fused attention on a GPU, PyTorch's elsewhere), "torch", "eager" or "triton"."""
        super().__init__()
        self.config = config
        self.kernel_backend = kernel_backend
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(PreNormBlock(config, index) for index in range(config.num_layers))
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self.activation_checkpointing = activation_checkpointing

    def set_kernel_backend(self, backend: str) -> None:
        """Run the attention on `backend` ("auto", "torch", "eager" or "triton"); for comparing backends."""
        self.kernel_backend = backend

    @property
    def has_dropout(self) -> bool:
        config = self.config
        return bool(config.embedding_dropout or config.attention_dropout or config.mlp_dropout)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               num_layers: int | None = None) -> torch.Tensor:
        """The final hidden states, (batch, seq, hidden); or, given num_layers=L, those after the first L blocks
        (L=0: the embeddings), before the final norm, without running the blocks above. Padding positions are
        computed but attend only to real tokens within their window; nothing should read them."""
        batch, seq = input_ids.shape
        if seq > self.config.max_sequence_length:
            raise XLMRDSError(f"input has {seq} tokens per sequence but the model takes at most "
                              f"{self.config.max_sequence_length} (max_position_embeddings); split or truncate it")
        x = self.embeddings(input_ids)
        kinds = {True: (self.config.global_rope_theta, None),
                 False: (self.config.local_rope_theta, self.config.window_radius)}
        triton = resolve_kernel_backend(self.kernel_backend, x.device) == "triton"
        rotary, biases, fused = {}, {}, {}
        for is_global, (theta, radius) in kinds.items():
            if any(layer.is_global == is_global for layer in self.layers):
                rotary[is_global] = rotary_tables(seq, self.config.head_dim, theta, x.dtype, x.device)
                if triton:
                    mask = None if attention_mask is None or bool(attention_mask.all()) else attention_mask
                    biases[is_global], fused[is_global] = None, FusedAttention(mask, radius)
                else:
                    biases[is_global], fused[is_global] = attention_bias(attention_mask, seq, radius, x.dtype,
                                                                         x.device), None
        for layer in self.layers[:num_layers]:
            kind = layer.is_global
            if self.activation_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(layer, x, rotary[kind], biases[kind], fused[kind],
                                                      use_reentrant=False)
            else:
                x = layer(x, rotary[kind], biases[kind], fused[kind])
        return x if num_layers is not None and num_layers < len(self.layers) else self.final_norm(x)


class TiedDecoder(nn.Linear):
    """The LM decoder: its weight is the token-embedding matrix (set by the owner), its bias its own."""


class ModernBertForMaskedLM(ModernBertModel):
    def __init__(self, config: ModernBertConfig, initialize: bool = True, activation_checkpointing: bool = False,
                 kernel_backend: str = "auto"):
        """initialize=False leaves the initialization to the caller (under ZeRO-3's zero.Init, one module at a
        time: initialize_module)."""
        super().__init__(config, activation_checkpointing, kernel_backend)
        self.lm_head = PredictionHead(config)
        self.decoder = TiedDecoder(config.hidden_size, config.vocab_size, bias=config.decoder_bias)
        self.decoder.weight = self.embeddings.word.weight
        if initialize:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        for name, module in self.named_modules():
            initialize_module(name, module, self.config)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.lm_head(hidden))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, dropout_keys=None) -> MaskedLMOutput:
        """dropout_keys (the trainer's keyed dropout) changes nothing without dropout, ModernBERT's and mmBERT's
        setting; dropout keyed by sample is not built for this architecture yet, and is refused."""
        if dropout_keys is not None and self.training and self.has_dropout:
            raise XLMRDSError("a ModernBERT model with dropout cannot key its dropout by sample yet; train it with "
                              "--dropout-keys rng, or with the presets' dropout of 0")
        return masked_lm_output(self.encode(input_ids, attention_mask), labels, self.logits)


# Which weights take the output-side standard deviation, by the last parts of their module's name.
_OUTPUT_SIDE = ("attention.out", "mlp.wo", "lm_head.dense")
_INPUT_SIDE = ("embeddings.word", "attention.qkv", "mlp.wi")


@torch.no_grad()
def initialize_module(name: str, module: nn.Module, config: ModernBertConfig) -> None:
    """ModernBERT's initialization of one module's own parameters, by the module's name in the model: normals
    truncated at initializer_cutoff_factor standard deviations, with std initializer_range on the input side
    (token embeddings, qkv, wi) and initializer_range / sqrt(2 x num_layers) on the output side (attention and
    GeGLU outputs, the head's dense layer); zero biases, unit LayerNorms. The decoder's weight is the
    embeddings' (only its bias is its own). Per module, so that a caller holding partitioned parameters
    (ZeRO-3) can gather one module at a time around it."""
    std = None
    if name.endswith(_INPUT_SIDE):
        std = config.initializer_range
    elif name.endswith(_OUTPUT_SIDE):
        std = config.initializer_range / math.sqrt(2.0 * config.num_layers)
    if std is not None:
        cutoff = config.initializer_cutoff_factor * std
        nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-cutoff, b=cutoff)
    if isinstance(module, nn.LayerNorm):
        module.weight.fill_(1.0)
    if isinstance(module, (nn.Linear, nn.LayerNorm)) and module.bias is not None:
        module.bias.zero_()


def modern_parameter_count(config: ModernBertConfig) -> int:
    """Exact parameter count of ModernBertForMaskedLM(config), built on the meta device (nothing allocated)."""
    with torch.device("meta"):
        return unique_parameter_count(ModernBertForMaskedLM(config, initialize=False))
