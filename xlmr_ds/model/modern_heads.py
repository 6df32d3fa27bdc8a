"""Task heads on the ModernBERT encoder, for fine-tuning. The numbers match transformers'
ModernBertForSequenceClassification, ModernBertForTokenClassification and ModernBertForQuestionAnswering
(tests/model/test_modern_heads.py), whose names modern_hf.py maps:
    sequence:  logits = classifier(dropout(head(pool(h))))     pool: h[<s>] ("cls") or the mean of real tokens
    token:     logits = classifier(dropout(head(h)))           one row per token
    span:      logits = classifier(dropout(head(h)))           (start, end) per token
where head is the prediction head (dense, GELU, LayerNorm) the masked LM has too: a classifier made from a
pretrained masked LM starts from its head, as transformers' does from the same weight names.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model.heads import SPAN_LABELS, ClassifierOutput, classification_loss
from xlmr_ds.model.modern_config import ModernBertConfig
from xlmr_ds.model.modern_modeling import ModernBertModel, PredictionHead, initialize_module

POOLINGS = ("cls", "mean")


class _ModernClassifier(ModernBertModel):
    """The encoder, the prediction head, dropout and a linear classifier over `labels`."""

    outputs_per_token = True

    def __init__(self, config: ModernBertConfig, labels: Sequence[str], classifier_dropout: float | None = None,
                 activation_checkpointing: bool = False, initialize: bool = True):
        """classifier_dropout: the dropout before the classifier (None: 0.0, transformers' default)."""
        super().__init__(config, activation_checkpointing)
        self.labels = tuple(labels)
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise XLMRDSError(f"a classifier needs at least 2 distinct labels, got {list(self.labels)}")
        self.classifier_dropout = classifier_dropout
        self.head = PredictionHead(config)
        self.dropout = nn.Dropout(classifier_dropout or 0.0)
        self.classifier = nn.Linear(config.hidden_size, len(self.labels))
        if initialize:
            self.reset_parameters()

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def reset_parameters(self) -> None:
        for name, module in self.named_modules():
            initialize_module(name, module, self.config)
        # ModernBERT's task classifiers: a truncated normal of std hidden^-0.5.
        std = self.config.hidden_size ** -0.5
        cutoff = self.config.initializer_cutoff_factor * std
        with torch.no_grad():
            nn.init.trunc_normal_(self.classifier.weight, mean=0.0, std=std, a=-cutoff, b=cutoff)
            self.classifier.bias.zero_()

    def load_encoder(self, encoder: nn.Module) -> None:
        """Copy a pretrained model's embeddings, blocks and final norm, and its prediction head (a masked LM's
        lm_head, or another classifier's head)."""
        if encoder.config.to_dict() != self.config.to_dict():
            raise XLMRDSError("the pretrained encoder's config differs from this classifier's")
        for name in ("embeddings", "layers", "final_norm"):
            getattr(self, name).load_state_dict(getattr(encoder, name).state_dict())
        pretrained_head = getattr(encoder, "lm_head", None) or getattr(encoder, "head", None)
        self.head.load_state_dict(pretrained_head.state_dict())

    def _scores(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.head(hidden)))

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        return classification_loss(logits, labels, self.num_labels)


class ModernBertForSequenceClassification(_ModernClassifier):
    """One label per input, from the <s> position ("cls") or the mean over the real tokens ("mean", the
    released checkpoints' setting)."""

    def __init__(self, config: ModernBertConfig, labels: Sequence[str], classifier_dropout: float | None = None,
                 activation_checkpointing: bool = False, initialize: bool = True, pooling: str = "mean"):
        if pooling not in POOLINGS:
            raise XLMRDSError(f"classifier pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
        self.pooling = pooling
        super().__init__(config, labels, classifier_dropout, activation_checkpointing, initialize)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> ClassifierOutput:
        hidden = self.encode(input_ids, attention_mask)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = torch.ones(hidden.shape[:2], device=hidden.device) if attention_mask is None else attention_mask
            mask = mask.to(hidden.dtype).unsqueeze(-1)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)
        logits = self._scores(pooled)
        return ClassifierOutput(self._loss(logits, labels), logits)


class ModernBertForTokenClassification(_ModernClassifier):
    """One label per token; positions labelled IGNORE_INDEX (padding, a word's later pieces) add no loss."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> ClassifierOutput:
        logits = self._scores(self.encode(input_ids, attention_mask))
        return ClassifierOutput(self._loss(logits, labels), logits)


class ModernBertForQuestionAnswering(_ModernClassifier):
    """Extractive question answering: a start and an end score per token; `labels` are the answer's (start,
    end) token positions, shape (batch, 2); a position outside the sequence adds no loss (as transformers')."""

    def __init__(self, config: ModernBertConfig, labels: Sequence[str] = SPAN_LABELS,
                 classifier_dropout: float | None = None, activation_checkpointing: bool = False,
                 initialize: bool = True):
        if len(labels) != 2:
            raise XLMRDSError(f"a span head has 2 outputs (start, end), got labels {list(labels)}")
        super().__init__(config, labels, classifier_dropout, activation_checkpointing, initialize)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> ClassifierOutput:
        logits = self._scores(self.encode(input_ids, attention_mask))
        if labels is None:
            return ClassifierOutput(None, logits)
        length = logits.shape[1]
        positions = labels.clamp(0, length)
        loss = sum(F.cross_entropy(logits[..., i].float(), positions[:, i], ignore_index=length) for i in (0, 1)) / 2
        return ClassifierOutput(loss, logits)
