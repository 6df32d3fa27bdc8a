"""Task heads on the XLM-R encoder, for fine-tuning: one label per sequence (or sentence pair), one label per
token, and an answer span. The numbers match Hugging Face's XLMRobertaForSequenceClassification,
XLMRobertaForTokenClassification and XLMRobertaForQuestionAnswering (tests/model/test_heads.py), whose heads
hf.py maps by name:

    sequence:  logits = out(dropout(tanh(dense(dropout(h[<s>])))))     h = the final hidden states
    token:     logits = classifier(dropout(h))                          one row per token
    span:      logits = qa_outputs(h)                                   (start, end) per token; no dropout

Both take their label names (id order) so that an exported model says which id is which label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model.config import XLMRConfig
from xlmr_ds.model.modeling import XLMRModel
from xlmr_ds.vocab import IGNORE_INDEX


@dataclass
class ClassifierOutput:
    loss: torch.Tensor | None
    """Mean cross-entropy over the labelled sequences or tokens (IGNORE_INDEX excluded); None without labels."""

    logits: torch.Tensor
    """(batch, labels) for sequences; (batch, seq, labels) for tokens."""


def classification_loss(logits: torch.Tensor, labels: torch.Tensor | None, num_labels: int) -> torch.Tensor | None:
    """Mean cross-entropy over the labelled sequences or tokens (IGNORE_INDEX excluded); None without labels."""
    if labels is None:
        return None
    flat = labels.reshape(-1)
    if not flat.ne(IGNORE_INDEX).any():
        return logits.sum() * 0.0  # nothing labelled: a zero that still reaches every parameter
    return F.cross_entropy(logits.float().reshape(-1, num_labels), flat, ignore_index=IGNORE_INDEX)


class SequenceClassificationHead(nn.Module):
    """dense -> tanh -> out on the <s> position, with dropout before each linear layer (as RoBERTa's)."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.dropout(hidden[:, 0])
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out(x)


class _Classifier(XLMRModel):
    """The encoder plus a head that predicts one of `labels`."""

    def __init__(self, config: XLMRConfig, labels: Sequence[str], classifier_dropout: float | None = None,
                 kernel_backend: str = "auto", activation_checkpointing: bool = False):
        """classifier_dropout: the head's dropout; None takes the encoder's hidden_dropout (as transformers)."""
        super().__init__(config, kernel_backend, activation_checkpointing)
        self.labels = tuple(labels)
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise XLMRDSError(f"a classifier needs at least 2 distinct labels, got {list(self.labels)}")
        self.classifier_dropout = classifier_dropout
        self.head_dropout = config.hidden_dropout if classifier_dropout is None else classifier_dropout

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def load_encoder(self, encoder: XLMRModel) -> None:
        """Copy the embeddings and blocks of a pretrained model (a masked LM, or another classifier)."""
        if encoder.config.to_dict() != self.config.to_dict():
            raise XLMRDSError("the pretrained encoder's config differs from this classifier's")
        self.embeddings.load_state_dict(encoder.embeddings.state_dict())
        self.layers.load_state_dict(encoder.layers.state_dict())

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        return classification_loss(logits, labels, self.num_labels)


class XLMRForSequenceClassification(_Classifier):
    """One label per input (a sentence or a sentence pair), predicted from the <s> position."""

    def __init__(self, config: XLMRConfig, labels: Sequence[str], classifier_dropout: float | None = None,
                 kernel_backend: str = "auto", activation_checkpointing: bool = False, initialize: bool = True):
        super().__init__(config, labels, classifier_dropout, kernel_backend, activation_checkpointing)
        self.classifier = SequenceClassificationHead(config.hidden_size, self.num_labels, self.head_dropout)
        if initialize:
            self.reset_parameters()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> ClassifierOutput:
        logits = self.classifier(self.encode(input_ids, attention_mask))
        return ClassifierOutput(self._loss(logits, labels), logits)


class XLMRForTokenClassification(_Classifier):
    """One label per token; positions labelled IGNORE_INDEX (padding, a word's later pieces) add no loss."""

    def __init__(self, config: XLMRConfig, labels: Sequence[str], classifier_dropout: float | None = None,
                 kernel_backend: str = "auto", activation_checkpointing: bool = False, initialize: bool = True):
        super().__init__(config, labels, classifier_dropout, kernel_backend, activation_checkpointing)
        self.dropout = nn.Dropout(self.head_dropout)
        self.classifier = nn.Linear(config.hidden_size, self.num_labels)
        if initialize:
            self.reset_parameters()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> ClassifierOutput:
        logits = self.classifier(self.dropout(self.encode(input_ids, attention_mask)))
        return ClassifierOutput(self._loss(logits, labels), logits)


SPAN_LABELS = ("start", "end")
"""The two outputs of the span head, in id order: a token's score as the answer's first and as its last."""


class XLMRForQuestionAnswering(_Classifier):
    """Extractive question answering (SQuAD, MLQA, XQuAD): a start and an end score per token. `labels` are the
    answer's (start, end) token positions, shape (batch, 2); the loss is the mean of the two cross-entropies,
    a position outside the sequence adding none (as transformers')."""

    def __init__(self, config: XLMRConfig, labels: Sequence[str] = SPAN_LABELS, classifier_dropout: float | None = None,
                 kernel_backend: str = "auto", activation_checkpointing: bool = False, initialize: bool = True):
        """labels: the two output names; transformers writes LABEL_0 and LABEL_1, we write SPAN_LABELS."""
        super().__init__(config, labels, classifier_dropout, kernel_backend, activation_checkpointing)
        if self.num_labels != 2:
            raise XLMRDSError(f"a span head has 2 outputs (start, end), got labels {list(self.labels)}")
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        if initialize:
            self.reset_parameters()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> ClassifierOutput:
        logits = self.qa_outputs(self.encode(input_ids, attention_mask))
        if labels is None:
            return ClassifierOutput(None, logits)
        length = logits.shape[1]
        positions = labels.clamp(0, length)  # past the end: ignored, as transformers does
        loss = sum(F.cross_entropy(logits[..., i].float(), positions[:, i], ignore_index=length) for i in (0, 1)) / 2
        return ClassifierOutput(loss, logits)
