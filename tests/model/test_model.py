import pytest
import torch

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model import XLMRForMaskedLM, preset
from xlmr_ds.model.modeling import position_ids_from_input_ids
from xlmr_ds.vocab import IGNORE_INDEX

POSITION_CASES = [
    # (input ids, expected positions): the first real token is at 2, pads stay at 1
    ([[0, 7, 8, 2]], [[2, 3, 4, 5]]),
    ([[0, 7, 2, 1, 1]], [[2, 3, 4, 1, 1]]),
    ([[1, 1, 1]], [[1, 1, 1]]),
    ([[0, 2, 1], [0, 9, 2]], [[2, 3, 1], [2, 3, 4]]),
]


@pytest.mark.parametrize("input_ids,expected", POSITION_CASES)
def test_position_ids_start_at_two_and_skip_padding(input_ids, expected):
    assert position_ids_from_input_ids(torch.tensor(input_ids), pad_token_id=1).tolist() == expected


def _model_and_batch(seed=0):
    torch.manual_seed(seed)
    model = XLMRForMaskedLM(preset("tiny"))
    input_ids = torch.randint(4, 999, (3, 16))
    input_ids[1, 10:] = 1
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[0, 3], labels[1, 5], labels[2, 15] = 11, 12, 13
    return model, input_ids, input_ids.ne(1).long(), labels


def test_masked_head_logits_are_the_full_logits_at_the_labelled_positions():
    model, input_ids, attention_mask, labels = _model_and_batch()
    model.eval()
    with torch.no_grad():
        full = model(input_ids, attention_mask).logits
        masked = model(input_ids, attention_mask, labels=labels)
    labelled = labels.ne(IGNORE_INDEX)
    torch.testing.assert_close(masked.logits, full[labelled], rtol=0, atol=1e-6)
    expected_loss = torch.nn.functional.cross_entropy(full[labelled], labels[labelled])
    torch.testing.assert_close(masked.loss, expected_loss, rtol=0, atol=1e-6)


def test_a_batch_without_labelled_tokens_gives_zero_loss_and_zero_gradients():
    model, input_ids, attention_mask, labels = _model_and_batch()
    out = model(input_ids, attention_mask, labels=torch.full_like(labels, IGNORE_INDEX))
    assert out.loss.item() == 0.0
    out.loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_decoder_is_tied_to_the_word_embeddings():
    model, input_ids, attention_mask, labels = _model_and_batch()
    model(input_ids, attention_mask, labels=labels).loss.backward()
    # The embedding gradient gets the decoder's contribution at every vocabulary row, not only looked-up ones.
    unused = torch.ones(model.config.vocab_size, dtype=torch.bool)
    unused[input_ids.unique()] = False
    assert model.embeddings.word.weight.grad[unused].abs().sum() > 0
    assert model.lm_head.decoder.weight is model.embeddings.word.weight
    assert not model.embeddings.word.weight[1].any(), "the padding row must stay zero after initialization"


def test_dropout_is_active_in_training_and_off_in_eval():
    model, input_ids, attention_mask, _ = _model_and_batch()
    model.train()
    assert not torch.equal(model(input_ids, attention_mask).logits, model(input_ids, attention_mask).logits)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(input_ids, attention_mask).logits, model(input_ids, attention_mask).logits)


def test_padding_rows_start_at_zero():
    model = XLMRForMaskedLM(preset("tiny"))
    assert not model.embeddings.word.weight[1].any() and not model.embeddings.position.weight[1].any()


def test_large_builds_on_the_meta_device_without_allocating():
    with torch.device("meta"):
        model = XLMRForMaskedLM(preset("large"))
    assert all(p.is_meta for p in model.parameters())


@pytest.mark.parametrize("seq,allowed", [(512, True), (513, False)])
def test_sequences_longer_than_the_position_table_get_a_clear_error(seq, allowed):
    model = XLMRForMaskedLM(preset("tiny", num_layers=1)).eval()
    input_ids = torch.full((1, seq), 5)
    if allowed:
        assert model(input_ids).logits.shape == (1, seq, model.config.vocab_size)
    else:
        with pytest.raises(XLMRDSError, match="input has 513 tokens per sequence .* allows at most 512"):
            model(input_ids)


def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    model, input_ids, attention_mask, labels = _model_and_batch()
    model.train()
    results = []
    for checkpointing in (False, True):
        model.activation_checkpointing = checkpointing
        model.zero_grad()
        torch.manual_seed(11)  # the same dropout masks in both passes
        loss = model(input_ids, attention_mask, labels=labels).loss
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=0)
    for plain, recomputed in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(plain, recomputed, rtol=1e-6, atol=1e-7)
