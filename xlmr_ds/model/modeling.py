"""The XLM-R masked language model (RoBERTa architecture), readable in one sitting.

Post-LayerNorm blocks, exact (erf) GELU, LayerNorm eps 1e-5, learned positions that start at
pad_token_id + 1 and skip padding, an embedding LayerNorm, and an LM head whose decoder is tied to the
word embeddings. The numbers match Hugging Face's XLMRobertaForMaskedLM (tests/model checks it); the
module names are our own and hf.py maps them (hf.py imports this module, never the other way).

Two choices are made when the model is built, not found on it later: `kernel_backend`, which implementation
runs every fused op of a block (attention, bias+GELU, dropout+residual+LayerNorm; kernels/dispatch.py
resolves "auto"), and `activation_checkpointing`, whether blocks are recomputed in backward.

Dropout comes from torch's RNG, or, when the forward is given `dropout_keys` (the run's seed and each row's
global sample index), from masks keyed by (seed, sample, site) (kernels/keyed_dropout.py): a sample then
sees the same masks whatever process, micro-batch or padding it lands in.

This module imports nothing from training: no DeepSpeed, no data code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.kernels import (
    BatchDropoutSeeds,
    DropoutKeys,
    SiteSeeds,
    attention,
    attention_varlen,
    bias_gelu,
    dropout,
    dropout_add_layer_norm,
    resolve_kernel_backend,
    site_of,
)
from xlmr_ds.kernels.keyed_dropout import (
    ATTENTION_OUTPUT,
    ATTENTION_PROBS,
    EMBEDDINGS_SITE,
    FFN_OUTPUT,
    SITES_PER_LAYER,
)
from xlmr_ds.model.config import XLMRConfig
from xlmr_ds.vocab import IGNORE_INDEX

UNPAD_MIN_PADDING = 0.1
"""Share of padding from which the Triton backend drops the padding tokens before the first layer.

Below it, gathering and scattering the hidden states costs more than the padded tokens' matmuls would."""


def sequence_lengths(attention_mask: torch.Tensor) -> torch.Tensor:
    """Real tokens per sequence, int32 on the host: one device-to-host read."""
    return attention_mask.sum(dim=1, dtype=torch.int32).cpu()


@dataclass(frozen=True)
class UnpaddedTokens:
    """The real tokens of a padded batch, back to back without the padding: what the layers see on the
    unpadded (variable-length) path.

    Sequence b is rows cu_seqlens[b]:cu_seqlens[b+1]; `indices` are their positions in the flattened
    (batch * seq) padded layout. Padding tokens are not computed at all, and no attention mask is needed.
    """

    indices: torch.Tensor
    cu_seqlens: torch.Tensor
    max_seqlen: int

    @classmethod
    def from_mask(cls, attention_mask: torch.Tensor, lengths: torch.Tensor) -> UnpaddedTokens:
        """lengths: the mask's row sums on the host (`sequence_lengths`), read once by the caller."""
        total = int(lengths.sum())
        cu_seqlens = torch.zeros(len(lengths) + 1, dtype=torch.int32)
        torch.cumsum(lengths, 0, out=cu_seqlens[1:])
        # nonzero_static: the size is known from the lengths, so no second synchronization.
        indices = torch.nonzero_static(attention_mask.flatten(), size=total).flatten()
        return cls(indices, cu_seqlens.to(attention_mask.device, non_blocking=True), int(lengths.max()))


@dataclass
class MaskedLMOutput:
    loss: torch.Tensor | None
    """Mean cross-entropy over the labelled positions; None without labels."""

    logits: torch.Tensor
    """(batch, seq, vocab) without labels; (labelled positions, vocab) with labels, in row-major order."""


def position_ids_from_input_ids(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """Real tokens get positions pad_token_id + 1, + 2, ... in order; pads get pad_token_id."""
    is_token = input_ids.ne(pad_token_id).long()
    return torch.cumsum(is_token, dim=1) * is_token + pad_token_id


class Embeddings(nn.Module):
    def __init__(self, config: XLMRConfig):
        super().__init__()
        self.pad_token_id = config.pad_token_id
        self.word = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size,
                                     padding_idx=config.pad_token_id)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout_p = config.hidden_dropout

    def forward(self, input_ids: torch.Tensor, dropout_seeds: SiteSeeds | None = None) -> torch.Tensor:
        positions = position_ids_from_input_ids(input_ids, self.pad_token_id)
        # Every token is type 0. The lookup goes through the module (not .weight[0]) so that ZeRO-3, which
        # gathers a module's parameters when the module runs, has the row in place.
        token_types = torch.zeros_like(input_ids)
        x = self.word(input_ids) + self.token_type(token_types) + self.position(positions)
        return dropout(self.norm(x), self.dropout_p if self.training else 0.0, dropout_seeds)


class SelfAttention(nn.Module):
    def __init__(self, config: XLMRConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.dropout_p = config.attention_dropout
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = x.shape
        return x.view(batch, seq, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None, backend: str,
                unpadded: UnpaddedTokens | None = None, dropout_seeds: SiteSeeds | None = None) -> torch.Tensor:
        if unpadded is not None:
            return self._forward_unpadded(x, unpadded, dropout_seeds)
        batch, seq, hidden = x.shape
        context = attention(
            self._split_heads(self.query(x)),
            self._split_heads(self.key(x)),
            self._split_heads(self.value(x)),
            attention_mask,
            dropout_p=self.dropout_p if self.training else 0.0,
            backend=backend,
            dropout_seeds=dropout_seeds,
        )
        return self.out(context.transpose(1, 2).reshape(batch, seq, hidden))

    def _forward_unpadded(self, x: torch.Tensor, unpadded: UnpaddedTokens,
                          dropout_seeds: SiteSeeds | None) -> torch.Tensor:
        """x is (tokens, hidden): the real tokens of the batch, back to back (only the Triton backend)."""
        tokens, hidden = x.shape
        heads = (self.num_heads, self.head_dim)
        context = attention_varlen(
            self.query(x).view(tokens, *heads), self.key(x).view(tokens, *heads), self.value(x).view(tokens, *heads),
            unpadded.cu_seqlens, unpadded.max_seqlen, dropout_p=self.dropout_p if self.training else 0.0,
            dropout_seeds=dropout_seeds,
        )
        return self.out(context.reshape(tokens, hidden))


class LinearGELU(nn.Linear):
    """gelu(x W^T + b). On the Triton backend the matmul runs without its bias and one kernel adds the bias
    and applies GELU. The parameters are the module's own, so ZeRO-3 gathers them when it runs."""

    def forward(self, x: torch.Tensor, backend: str = "auto") -> torch.Tensor:
        return bias_gelu(F.linear(x, self.weight), self.bias, backend)


class ResidualLayerNorm(nn.LayerNorm):
    """LayerNorm(residual + dropout(x)), one fused kernel on the Triton backend."""

    def forward(self, x: torch.Tensor, residual: torch.Tensor, dropout_p: float = 0.0,
                backend: str = "auto", dropout_seeds: SiteSeeds | None = None) -> torch.Tensor:
        return dropout_add_layer_norm(x, residual, self.weight, self.bias, dropout_p, self.eps, backend,
                                      dropout_seeds)


class TransformerBlock(nn.Module):
    """x = LN(x + drop(attn(x))); x = LN(x + drop(ffn(x))): the post-LN block of BERT and RoBERTa."""

    def __init__(self, config: XLMRConfig, kernel_backend: str = "auto"):
        super().__init__()
        self.kernel_backend = kernel_backend
        self.attention = SelfAttention(config)
        self.attention_norm = ResidualLayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn_in = LinearGELU(config.hidden_size, config.ffn_size)
        self.ffn_out = nn.Linear(config.ffn_size, config.hidden_size)
        self.ffn_norm = ResidualLayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.hidden_dropout = config.hidden_dropout

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None,
                unpadded: UnpaddedTokens | None = None,
                dropout_seeds: tuple[SiteSeeds, SiteSeeds, SiteSeeds] | None = None) -> torch.Tensor:
        """dropout_seeds: this layer's keyed-dropout seeds, indexed by ATTENTION_PROBS, ATTENTION_OUTPUT and
        FFN_OUTPUT; None draws dropout from torch's RNG."""
        backend = self.kernel_backend
        dropout_p = self.hidden_dropout if self.training else 0.0
        seeds = dropout_seeds or (None,) * SITES_PER_LAYER
        attended = self.attention(x, attention_mask, backend, unpadded, seeds[ATTENTION_PROBS])
        x = self.attention_norm(attended, x, dropout_p, backend, seeds[ATTENTION_OUTPUT])
        return self.ffn_norm(self.ffn_out(self.ffn_in(x, backend)), x, dropout_p, backend, seeds[FFN_OUTPUT])


class TiedDecoder(nn.Linear):
    """The LM decoder: a bias-free linear layer whose weight is the word-embedding matrix (set by the owner)."""


class MaskedLMHead(nn.Module):
    """dense -> GELU -> LayerNorm -> decoder (its weight is the word embeddings) + bias."""

    def __init__(self, config: XLMRConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        # The decoder is a module of its own (rather than F.linear on the embedding weight) so that ZeRO-3
        # gathers the shared weight when the decoder runs; XLMRForMaskedLM ties the weight.
        self.decoder = TiedDecoder(config.hidden_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(F.gelu(self.dense(hidden)))) + self.bias


class XLMRModel(nn.Module):
    """The encoder every XLM-R model shares: embeddings and blocks, up to the final hidden states. The masked
    LM (below) and the task heads (heads.py) add their head to it; their state_dict keys for the encoder are
    the same (embeddings.*, layers.*), so an encoder moves between them by name."""

    def __init__(self, config: XLMRConfig, kernel_backend: str = "auto", activation_checkpointing: bool = False):
        """kernel_backend: "auto", "torch", "eager" or "triton" for every block's fused ops (see
        set_kernel_backend). activation_checkpointing: recompute each block in backward (training only).
        The subclass initializes the parameters once its head exists (reset_parameters)."""
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(TransformerBlock(config, kernel_backend) for _ in range(config.num_layers))
        self.activation_checkpointing = activation_checkpointing

    def reset_parameters(self) -> None:
        """BERT initialization of every module (see initialize_module)."""
        for module in self.modules():
            initialize_module(module, self.config.initializer_range)

    def set_kernel_backend(self, backend: str) -> None:
        """Run every block's fused ops on `backend` ("auto", "torch", "eager" or "triton"); for comparing
        backends on the same weights."""
        for layer in self.layers:
            layer.kernel_backend = backend

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               num_layers: int | None = None, dropout_keys: DropoutKeys | None = None) -> torch.Tensor:
        """The final hidden states, (batch, seq, hidden); or, given num_layers=L, those after the first L
        blocks (L=0: the embeddings), Hugging Face's hidden_states[L], without running the blocks above.
        dropout_keys (training only): key every dropout mask by sample instead of drawing it from the RNG."""
        seq = input_ids.shape[-1]
        if seq > self.config.max_sequence_length:
            raise XLMRDSError(
                f"input has {seq} tokens per sequence but the model's position table "
                f"(max_position_embeddings={self.config.max_position_embeddings}) allows at most "
                f"{self.config.max_sequence_length}; split or truncate the input"
            )
        lengths = None
        if attention_mask is not None:
            lengths = sequence_lengths(attention_mask)  # the forward's one host read of the mask
        seeds = self._dropout_seeds(dropout_keys, input_ids, lengths)
        x = self.embeddings(input_ids, seeds.site(EMBEDDINGS_SITE) if seeds is not None else None)
        if attention_mask is not None:
            if int(lengths.sum()) == attention_mask.numel():
                # No padding: attention without a mask lets SDPA take its fused kernels (with a mask and dropout
                # it falls back to the unfused path, 2-3x slower on CPU) and the Triton kernel skip the mask loads.
                attention_mask = None
        unpadded = self._unpadding(attention_mask, lengths)
        if unpadded is not None:
            batch, seq, hidden = x.shape
            x = x.reshape(batch * seq, hidden).index_select(0, unpadded.indices)
        for index, layer in enumerate(self.layers[:num_layers]):
            layer_seeds = None if seeds is None else tuple(
                seeds.site(site_of(index, kind)) for kind in (ATTENTION_PROBS, ATTENTION_OUTPUT, FFN_OUTPUT))
            if self.activation_checkpointing and self.training:
                # Recompute the block in backward instead of keeping its activations (same dropout masks).
                x = torch.utils.checkpoint.checkpoint(layer, x, attention_mask, unpadded, layer_seeds,
                                                      use_reentrant=False)
            else:
                x = layer(x, attention_mask, unpadded, layer_seeds)
        if unpadded is not None:
            # Back to (batch, seq, hidden); padding positions hold zeros (nothing reads them).
            x = x.new_zeros(batch * seq, hidden).index_copy(0, unpadded.indices, x).view(batch, seq, hidden)
        return x

    def _dropout_seeds(self, keys: DropoutKeys | None, input_ids: torch.Tensor,
                       lengths: torch.Tensor | None) -> BatchDropoutSeeds | None:
        """Every dropout site's per-sample seeds for this batch, when dropout is keyed and applies."""
        if keys is None or not self.training:
            return None
        if not (self.config.hidden_dropout or self.config.attention_dropout):
            return None
        batch, seq = input_ids.shape
        if lengths is None:
            lengths = [seq] * batch
        return BatchDropoutSeeds(keys, lengths, site_of(len(self.layers), 0), input_ids.device)

    def _unpadding(self, attention_mask: torch.Tensor | None,
                   lengths: torch.Tensor | None = None) -> UnpaddedTokens | None:
        """The unpadded tokens when the layers run the Triton kernels and the batch has padding enough to pay."""
        if attention_mask is None or not self.layers:
            return None
        if resolve_kernel_backend(self.layers[0].kernel_backend, attention_mask.device) != "triton":
            return None
        if lengths is None:
            lengths = sequence_lengths(attention_mask)
        if int(lengths.sum()) > (1.0 - UNPAD_MIN_PADDING) * attention_mask.numel():
            return None
        return UnpaddedTokens.from_mask(attention_mask, lengths)



class XLMRForMaskedLM(XLMRModel):
    def __init__(self, config: XLMRConfig, initialize: bool = True, kernel_backend: str = "auto",
                 activation_checkpointing: bool = False):
        """initialize=False leaves the initialization to the caller (one whose parameters are partitioned
        as they are created, as under ZeRO-3's zero.Init, applies initialize_module module by module)."""
        super().__init__(config, kernel_backend, activation_checkpointing)
        self.lm_head = MaskedLMHead(config)
        self.lm_head.decoder.weight = self.embeddings.word.weight
        if initialize:
            self.reset_parameters()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        dropout_keys: DropoutKeys | None = None,
    ) -> MaskedLMOutput:
        return masked_lm_output(self.encode(input_ids, attention_mask, dropout_keys=dropout_keys), labels,
                                self.lm_head)


def masked_lm_output(hidden: torch.Tensor, labels: torch.Tensor | None, head) -> MaskedLMOutput:
    """The LM head's logits and loss. With labels, the head and its (positions x vocab) matmul run only where
    there is a label: about 15% of the tokens, which saves ~38% of Large's training FLOPs
    (xlmr_ds/estimate/flops.py)."""
    if labels is None:
        return MaskedLMOutput(loss=None, logits=head(hidden))
    labelled = labels.ne(IGNORE_INDEX)
    logits = head(hidden[labelled])
    targets = labels[labelled]
    if targets.numel() == 0:
        # No labelled token in the batch: a zero loss that still reaches every parameter's graph.
        return MaskedLMOutput(loss=logits.sum() * 0.0, logits=logits)
    return MaskedLMOutput(loss=F.cross_entropy(logits.float(), targets), logits=logits)


@torch.no_grad()
def initialize_module(module: nn.Module, std: float) -> None:
    """BERT initialization of one module's own parameters: N(0, std) weights, zero biases and padding
    rows, unit LayerNorms, zero LM-head bias. Per module, so that a caller holding partitioned parameters
    (ZeRO-3) can gather one module at a time around it."""
    if isinstance(module, TiedDecoder):
        return  # its weight is the word embeddings, initialized (with their padding row) by the Embedding
    if isinstance(module, nn.Linear):
        module.weight.normal_(0.0, std)
        if module.bias is not None:
            module.bias.zero_()
    elif isinstance(module, nn.Embedding):
        module.weight.normal_(0.0, std)
        if module.padding_idx is not None:
            module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        module.weight.fill_(1.0)
        module.bias.zero_()
    elif isinstance(module, MaskedLMHead):
        module.bias.zero_()


def unique_parameter_count(model: nn.Module) -> int:
    """Parameters counted once each, however often they are tied."""
    return sum(p.numel() for p in model.parameters())


def parameter_count(config: XLMRConfig) -> int:
    """Exact parameter count of XLMRForMaskedLM(config), built on the meta device (nothing allocated)."""
    with torch.device("meta"):
        return unique_parameter_count(XLMRForMaskedLM(config))


def largest_parameter_count(config: XLMRConfig) -> int:
    """Elements of the largest single parameter tensor (the word embeddings for XLM-R); ZeRO-3 gathers it whole."""
    with torch.device("meta"):
        return max(p.numel() for p in XLMRForMaskedLM(config).parameters())
