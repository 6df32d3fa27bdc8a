"""Our task heads are transformers' XLMRobertaFor{Sequence,Token}Classification and
XLMRobertaForQuestionAnswering: the same logits and loss for the same weights, loaded both ways, and exported
directories that AutoModel* and pipeline() load."""

import pytest
import torch
from test_hf_parity import padded_batch
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    XLMRobertaConfig,
    XLMRobertaForQuestionAnswering,
    XLMRobertaForSequenceClassification,
    XLMRobertaForTokenClassification,
)

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model import preset
from xlmr_ds.model.heads import (
    SPAN_LABELS,
    XLMRForQuestionAnswering,
    XLMRForSequenceClassification,
    XLMRForTokenClassification,
)
from xlmr_ds.model.hf import config_to_hf, load_hf, save_hf
from xlmr_ds.vocab import IGNORE_INDEX

TOLERANCE = 1e-5
CONFIG = preset("tiny", vocab_size=301)
LABELS = {"sequence": ("entailment", "neutral", "contradiction"), "token": ("O", "B-PER", "I-PER", "B-LOC", "I-LOC"),
          "span": SPAN_LABELS}
# kind -> (ours, transformers', its Auto class, architecture)
KINDS = {
    "sequence": (XLMRForSequenceClassification, XLMRobertaForSequenceClassification,
                 AutoModelForSequenceClassification, "XLMRobertaForSequenceClassification"),
    "token": (XLMRForTokenClassification, XLMRobertaForTokenClassification, AutoModelForTokenClassification,
              "XLMRobertaForTokenClassification"),
    "span": (XLMRForQuestionAnswering, XLMRobertaForQuestionAnswering, AutoModelForQuestionAnswering,
             "XLMRobertaForQuestionAnswering"),
}
PER_TOKEN = ("token", "span")  # logits with a row per token: padding rows are never read


def hf_logits(output) -> torch.Tensor:
    """transformers' logits in our layout: the span head's (start, end) pair stacked last, as qa_outputs gives it."""
    if hasattr(output, "start_logits"):
        return torch.stack([output.start_logits, output.end_logits], dim=-1)
    return output.logits


def hf_label_arguments(kind: str, labels: torch.Tensor) -> dict:
    if kind == "span":
        return {"start_positions": labels[:, 0], "end_positions": labels[:, 1]}
    return {"labels": labels}


def random_hf_classifier(kind: str, seed: int = 0):
    _, hf_class, _, architecture = KINDS[kind]
    hf_config = XLMRobertaConfig(**config_to_hf(CONFIG, architecture, LABELS[kind]))
    hf_config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = hf_class(hf_config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.eval()


def labels_for(kind: str, input_ids: torch.Tensor) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    if kind == "sequence":
        return torch.randint(0, 3, (input_ids.shape[0],), generator=generator)
    if kind == "span":  # (start, end) token positions; one past the sequence, which both losses ignore
        spans = torch.randint(0, input_ids.shape[1], (input_ids.shape[0], 2), generator=generator)
        spans[-1, 1] = input_ids.shape[1] + 7
        return spans
    labels = torch.randint(0, 5, input_ids.shape, generator=generator)
    return labels.masked_fill(input_ids.eq(1), IGNORE_INDEX)  # padding is not labelled


@pytest.mark.parametrize("lengths,seq", [([20, 20], 20), ([20, 5, 13], 20)], ids=["no-padding", "padded"])
@pytest.mark.parametrize("kind", KINDS)
def test_logits_and_loss_equal_transformers(kind, lengths, seq):
    hf = random_hf_classifier(kind)
    ours = load_hf(hf).eval()
    assert isinstance(ours, KINDS[kind][0]) and ours.labels == LABELS[kind]
    input_ids, attention_mask = padded_batch(CONFIG.vocab_size, lengths, seq)
    labels = labels_for(kind, input_ids)
    with torch.no_grad():
        expected = hf(input_ids=input_ids, attention_mask=attention_mask, **hf_label_arguments(kind, labels))
        got = ours(input_ids, attention_mask, labels=labels)
    real = attention_mask.bool() if kind in PER_TOKEN else slice(None)  # padding rows are never read
    torch.testing.assert_close(got.logits[real], hf_logits(expected)[real], rtol=0, atol=TOLERANCE)
    torch.testing.assert_close(got.loss, expected.loss, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("kind", KINDS)
def test_exported_head_loads_in_transformers_with_its_labels(kind, tmp_path):
    ours_class, _, auto_class, _ = KINDS[kind]
    torch.manual_seed(0)
    ours = ours_class(CONFIG, LABELS[kind]).eval()
    save_hf(ours, tmp_path / "hf")
    theirs = auto_class.from_pretrained(tmp_path / "hf", use_safetensors=True, attn_implementation="eager").eval()
    assert [theirs.config.id2label[i] for i in range(len(LABELS[kind]))] == list(LABELS[kind])
    input_ids, attention_mask = padded_batch(CONFIG.vocab_size, [16, 9], 16)
    with torch.no_grad():
        expected = hf_logits(theirs(input_ids=input_ids, attention_mask=attention_mask))
        got = ours(input_ids, attention_mask).logits
    real = attention_mask.bool() if kind in PER_TOKEN else slice(None)
    torch.testing.assert_close(got[real], expected[real], rtol=0, atol=TOLERANCE)
    again = load_hf(tmp_path / "hf")
    assert type(again) is ours_class and again.labels == LABELS[kind]
    for (name, a), (_, b) in zip(ours.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_encoder_moves_from_a_masked_lm_by_name():
    from xlmr_ds.model import XLMRForMaskedLM

    torch.manual_seed(0)
    mlm = XLMRForMaskedLM(CONFIG).eval()
    classifier = XLMRForSequenceClassification(CONFIG, LABELS["sequence"]).eval()
    classifier.load_encoder(mlm)
    input_ids, attention_mask = padded_batch(CONFIG.vocab_size, [12, 7], 12)
    with torch.no_grad():
        torch.testing.assert_close(classifier.encode(input_ids, attention_mask), mlm.encode(input_ids, attention_mask))


@pytest.mark.parametrize("labels", [("only",), ("a", "b", "a")], ids=["one-label", "duplicate-label"])
def test_classifier_refuses_bad_label_sets(labels):
    with pytest.raises(XLMRDSError, match="at least 2 distinct labels"):
        XLMRForSequenceClassification(CONFIG, labels)


def test_span_head_refuses_other_than_two_outputs():
    with pytest.raises(XLMRDSError, match="2 outputs"):
        XLMRForQuestionAnswering(CONFIG, ("start", "middle", "end"))


def test_intermediate_layer_is_transformers_hidden_state():
    hf = random_hf_classifier("sequence")
    ours = load_hf(hf).eval()
    input_ids, attention_mask = padded_batch(CONFIG.vocab_size, [20, 11], 20)
    with torch.no_grad():
        states = hf(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
        for layer in range(CONFIG.num_layers + 1):
            got = ours.encode(input_ids, attention_mask, num_layers=layer)
            torch.testing.assert_close(got[attention_mask.bool()], states[layer][attention_mask.bool()],
                                       rtol=0, atol=TOLERANCE)
