"""Our model is Hugging Face's XLMRobertaForMaskedLM: same logits, same loss, weights both ways."""

import json

import pytest
import torch
from hf_helpers import random_hf_model
from transformers import AutoModelForMaskedLM

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model import XLMRForMaskedLM, preset
from xlmr_ds.model.hf import load_hf, save_hf
from xlmr_ds.vocab import IGNORE_INDEX

TOLERANCE = 1e-5

CONFIGS = {
    "tiny": preset("tiny"),
    "three-layers-8-heads": preset("tiny", num_layers=3, num_heads=8, hidden_size=64, ffn_size=96, vocab_size=517),
    "short-position-table": preset("tiny", max_position_embeddings=66, vocab_size=300),
}


def padded_batch(vocab_size: int, lengths: list[int], seq: int, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(4, vocab_size, (len(lengths), seq), generator=generator)
    for row, length in enumerate(lengths):
        input_ids[row, length:] = 1
        if length:
            input_ids[row, 0] = 0
            input_ids[row, length - 1] = 2
    return input_ids, input_ids.ne(1).long()


# (name, sequence lengths in the batch, padded length; 0 = the model's maximum)
BATCHES = [
    ("no-padding", [24, 24], 24),
    ("ragged-padding", [24, 7, 16, 3], 24),
    ("maximum-length", [0, 0], 0),
    ("maximum-length-padded", [0, 33], 0),
]


def _materialize(config, lengths, seq):
    seq = seq or config.max_sequence_length
    lengths = [length or seq for length in lengths]
    return padded_batch(config.vocab_size, lengths, seq)


@pytest.mark.parametrize("hf_attention,our_backend", [("eager", "eager"), ("sdpa", "torch"), ("eager", "torch")])
@pytest.mark.parametrize("batch_name,lengths,seq", BATCHES)
@pytest.mark.parametrize("config_name", CONFIGS)
def test_logits_equal_transformers_in_eval_mode(config_name, batch_name, lengths, seq, hf_attention, our_backend):
    config = CONFIGS[config_name]
    hf = random_hf_model(config, hf_attention)
    ours = load_hf(hf).eval()
    ours.set_kernel_backend(our_backend)
    input_ids, attention_mask = _materialize(config, lengths, seq)
    with torch.no_grad():
        expected = hf(input_ids=input_ids, attention_mask=attention_mask).logits
        actual = ours(input_ids, attention_mask).logits
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=0, atol=TOLERANCE)


def test_a_fully_padded_sequence_matches_eager_transformers_and_has_no_nan():
    config = CONFIGS["tiny"]
    hf = random_hf_model(config, "eager")
    ours = load_hf(hf).eval()
    input_ids, attention_mask = padded_batch(config.vocab_size, [12, 0], 12)
    with torch.no_grad():
        expected = hf(input_ids=input_ids, attention_mask=attention_mask).logits
        for backend in ("torch", "eager"):
            ours.set_kernel_backend(backend)
            actual = ours(input_ids, attention_mask).logits
            assert not actual.isnan().any()
            torch.testing.assert_close(actual, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("config_name", CONFIGS)
def test_masked_head_path_gives_transformers_loss_and_logits_of_the_labelled_positions(config_name):
    config = CONFIGS[config_name]
    hf = random_hf_model(config, "eager")
    ours = load_hf(hf).eval()
    input_ids, attention_mask = padded_batch(config.vocab_size, [20, 11, 5], 20)
    chosen = (torch.rand(input_ids.shape, generator=torch.Generator().manual_seed(3)) < 0.3) & attention_mask.bool()
    labels = torch.where(chosen, input_ids, IGNORE_INDEX)
    with torch.no_grad():
        expected = hf(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        actual = ours(input_ids, attention_mask, labels=labels)
    torch.testing.assert_close(actual.loss, expected.loss, rtol=0, atol=TOLERANCE)
    torch.testing.assert_close(actual.logits, expected.logits[chosen], rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("config_name", CONFIGS)
def test_saved_directory_loads_in_transformers_with_no_missing_weights_and_equal_logits(config_name, tmp_path):
    config = CONFIGS[config_name]
    torch.manual_seed(5)
    ours = XLMRForMaskedLM(config).eval()
    save_hf(ours, tmp_path / "hf")
    hf, info = AutoModelForMaskedLM.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert type(hf).__name__ == "XLMRobertaForMaskedLM"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    input_ids, attention_mask = padded_batch(config.vocab_size, [16, 9], 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids, attention_mask).logits,
                                   hf.eval()(input_ids=input_ids, attention_mask=attention_mask).logits,
                                   rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("via", ["directory", "transformers-object"])
def test_round_trip_ours_to_hf_to_ours_is_bit_identical(via, tmp_path):
    torch.manual_seed(7)
    ours = XLMRForMaskedLM(CONFIGS["three-layers-8-heads"])
    with torch.no_grad():
        for parameter in ours.parameters():
            parameter.add_(torch.randn_like(parameter))
    save_hf(ours, tmp_path / "hf")
    source = tmp_path / "hf" if via == "directory" else AutoModelForMaskedLM.from_pretrained(tmp_path / "hf")
    again = load_hf(source)
    assert again.config == ours.config
    before, after = ours.state_dict(), again.state_dict()
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name


def _edit_config(directory, **changes):
    path = directory / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


UNREPRESENTABLE = [
    ({"hidden_act": "relu"}, "hidden_act='relu' cannot be represented by xlmr-ds"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type='relative_key' cannot be represented"),
    ({"is_decoder": True}, "is_decoder=True cannot be represented"),
    ({"tie_word_embeddings": False}, "tie_word_embeddings=False cannot be represented"),
    ({"model_type": "bert"}, "model_type='bert' cannot be represented"),
    ({"num_hidden_layers": 3}, "missing weight 'roberta.encoder.layer.2"),
]


@pytest.mark.parametrize("changes,message", UNREPRESENTABLE)
def test_a_config_we_cannot_represent_gets_a_clear_error(changes, message, tmp_path):
    save_hf(XLMRForMaskedLM(CONFIGS["tiny"]), tmp_path)
    _edit_config(tmp_path, **changes)
    with pytest.raises(XLMRDSError, match=message.replace("(", r"\(")):
        load_hf(tmp_path)


def test_pickle_weights_are_refused_and_a_missing_directory_is_named(tmp_path):
    save_hf(XLMRForMaskedLM(CONFIGS["tiny"]), tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(XLMRDSError, match="holds only pytorch_model.bin; xlmr-ds reads .* only from safetensors"):
        load_hf(tmp_path)
    with pytest.raises(XLMRDSError, match="nowhere: no config.json"):
        load_hf(tmp_path / "nowhere")
