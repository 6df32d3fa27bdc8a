"""Our ModernBERT task heads are transformers': the same logits and loss, and Hugging Face directories both ways."""

import pytest
import torch
from test_modern import CONFIGS, TINY, _randomized, padded_batch
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from xlmr_ds.model.modern_heads import (
    ModernBertForQuestionAnswering,
    ModernBertForSequenceClassification,
    ModernBertForTokenClassification,
)
from xlmr_ds.model.modern_hf import load_modern_hf, save_modern_hf
from xlmr_ds.model.modern_modeling import ModernBertForMaskedLM
from xlmr_ds.vocab import IGNORE_INDEX

TOLERANCE = 1e-5
LABELS = ("negative", "neutral", "positive")

# (id, our class, its options, transformers' auto class, labels)
HEADS = [
    ("sequence-cls", ModernBertForSequenceClassification, {"pooling": "cls"}, AutoModelForSequenceClassification,
     LABELS),
    ("sequence-mean", ModernBertForSequenceClassification, {"pooling": "mean"}, AutoModelForSequenceClassification,
     LABELS),
    ("token", ModernBertForTokenClassification, {}, AutoModelForTokenClassification, ("O", "B-PER", "I-PER")),
    ("span", ModernBertForQuestionAnswering, {}, AutoModelForQuestionAnswering, ("start", "end")),
]


def _labels_for(model, input_ids, mask):
    if isinstance(model, ModernBertForSequenceClassification):
        return torch.arange(len(input_ids)) % model.num_labels
    if isinstance(model, ModernBertForQuestionAnswering):
        return torch.tensor([[1, 3]] * len(input_ids))
    return torch.where(mask.bool(), input_ids % model.num_labels, IGNORE_INDEX)


def _their_logits(theirs, input_ids, mask):
    output = theirs(input_ids=input_ids, attention_mask=mask)
    if "QuestionAnswering" in type(theirs).__name__:
        return torch.stack([output.start_logits, output.end_logits], dim=-1)
    return output.logits


def _their_loss(theirs, input_ids, mask, labels):
    if "QuestionAnswering" in type(theirs).__name__:
        return theirs(input_ids=input_ids, attention_mask=mask, start_positions=labels[:, 0],
                      end_positions=labels[:, 1]).loss
    return theirs(input_ids=input_ids, attention_mask=mask, labels=labels).loss


@pytest.mark.parametrize("config_name", ["tiny", "odd-shapes", "all-biases"])
@pytest.mark.parametrize("head_id,cls,options,auto,labels", HEADS, ids=[h[0] for h in HEADS])
def test_a_head_saved_for_transformers_gives_its_logits_and_loss_and_reads_back_bit_identical(
        head_id, cls, options, auto, labels, config_name, tmp_path):
    config = CONFIGS[config_name]
    ours = _randomized(cls(config, labels, **options)).eval()
    save_modern_hf(ours, tmp_path / "hf")
    theirs = auto.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    assert type(theirs).__name__ == f"ModernBertFor{type(ours).__name__.removeprefix('ModernBertFor')}"
    input_ids, mask = padded_batch(config, [40, 9, 23], 40)
    real = mask.bool()
    with torch.no_grad():
        expected, got = _their_logits(theirs, input_ids, mask), ours(input_ids, mask).logits
        if isinstance(ours, ModernBertForSequenceClassification):
            torch.testing.assert_close(got, expected, atol=TOLERANCE, rtol=0)
        else:
            torch.testing.assert_close(got[real], expected[real], atol=TOLERANCE, rtol=0)
        labels_tensor = _labels_for(ours, input_ids, mask)
        torch.testing.assert_close(ours(input_ids, mask, labels_tensor).loss,
                                   _their_loss(theirs, input_ids, mask, labels_tensor), atol=TOLERANCE, rtol=0)
    again = load_modern_hf(tmp_path / "hf")
    assert type(again) is cls and again.labels == tuple(labels) and again.config == config
    assert getattr(again, "pooling", None) == options.get("pooling")
    for name, tensor in ours.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name


def test_a_classifier_starts_from_the_masked_lms_encoder_and_head():
    pretrained = _randomized(ModernBertForMaskedLM(TINY))
    classifier = ModernBertForTokenClassification(TINY, ("O", "B-LOC"))
    classifier.load_encoder(pretrained)
    theirs = pretrained.state_dict()
    for name, tensor in classifier.state_dict().items():
        if name.startswith("classifier."):
            continue
        source = name.replace("head.", "lm_head.", 1) if name.startswith("head.") else name
        assert torch.equal(tensor, theirs[source]), name


def test_the_classifiers_initialization_is_modernberts():
    config = TINY.replace(hidden_size=256, ffn_size=384)
    model = ModernBertForSequenceClassification(config, tuple(f"label{i}" for i in range(200)))
    std = 256 ** -0.5
    assert model.classifier.weight.abs().max() <= 2 * std + 1e-9
    assert abs(model.classifier.weight.std().item() / std - 0.880) < 0.05 and not model.classifier.bias.any()
