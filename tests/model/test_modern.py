"""Our ModernBERT is transformers' ModernBertForMaskedLM: the same parameter counts for the released shapes, the
same logits and loss for odd shapes, windows and padding, and weights both ways, bit for bit."""

import json

import pytest
import torch
from transformers import AutoModelForMaskedLM
from transformers import ModernBertConfig as HFModernBertConfig
from transformers import ModernBertForMaskedLM as HFModernBertForMaskedLM

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model import preset
from xlmr_ds.model.hf import load_hf, save_hf
from xlmr_ds.model.modern_config import MODERN_PRESETS, ModernBertConfig
from xlmr_ds.model.modern_hf import (
    hf_name,
    load_modern_hf,
    modern_config_from_hf,
    modern_config_to_hf,
    save_modern_hf,
)
from xlmr_ds.model.modern_modeling import ModernBertForMaskedLM, modern_parameter_count
from xlmr_ds.vocab import IGNORE_INDEX

TOLERANCE = 1e-5
TINY = MODERN_PRESETS["modern-tiny"]


def hf_model(config: ModernBertConfig) -> HFModernBertForMaskedLM:
    return HFModernBertForMaskedLM(HFModernBertConfig.from_dict(modern_config_to_hf(config),
                                                                attn_implementation="eager"))


@pytest.mark.parametrize("name", ["modernbert-base", "modernbert-large", "mmbert-small", "mmbert-base"])
def test_the_presets_have_transformers_parameter_counts(name):
    config = MODERN_PRESETS[name]
    with torch.device("meta"):
        theirs = sum(p.numel() for p in hf_model(config).parameters())
    assert modern_parameter_count(config) == theirs


# (name, config) of the parity table: odd widths, windows and global-every-n values, the optional biases.
CONFIGS = {
    "tiny": TINY,
    "odd-shapes": TINY.replace(vocab_size=517, hidden_size=72, num_heads=6, ffn_size=100, num_layers=4,
                               local_attention=10, global_attn_every_n_layers=2),
    "every-layer-global": TINY.replace(global_attn_every_n_layers=1, num_layers=2),
    "one-global-layer": TINY.replace(global_attn_every_n_layers=7, num_layers=3, local_attention=4),
    "all-biases": TINY.replace(norm_bias=True, attention_bias=True, mlp_bias=True, classifier_bias=True,
                               decoder_bias=False, norm_eps=1e-6, global_rope_theta=1e4, local_rope_theta=500.0),
}

# (name, sequence lengths in the batch, padded length)
BATCHES = [
    ("no-padding", [40, 40], 40),
    ("ragged-padding", [40, 7, 23, 1], 40),
    ("shorter-than-the-window", [5, 3], 5),
]


def padded_batch(config: ModernBertConfig, lengths: list[int], seq: int, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, config.vocab_size, (len(lengths), seq), generator=generator)
    mask = torch.zeros(len(lengths), seq, dtype=torch.long)
    for row, length in enumerate(lengths):
        input_ids[row, length:] = config.pad_token_id
        mask[row, :length] = 1
    return input_ids, mask


def _randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter drawn at random (LayerNorms and biases too), so that no wrong mapping hides behind 1s and 0s."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model


@pytest.mark.parametrize("batch_name,lengths,seq", BATCHES, ids=[b[0] for b in BATCHES])
@pytest.mark.parametrize("config_name", CONFIGS)
def test_logits_and_loss_equal_transformers(config_name, batch_name, lengths, seq):
    config = CONFIGS[config_name]
    ours = _randomized(ModernBertForMaskedLM(config)).eval()
    theirs = hf_model(config).eval()
    theirs.load_state_dict({hf_name(k): v for k, v in ours.state_dict().items()}, strict=False)
    assert torch.equal(theirs.decoder.weight, ours.decoder.weight)  # tied on both sides
    input_ids, mask = padded_batch(config, lengths, seq)
    real = mask.bool()
    with torch.no_grad():
        expected = theirs(input_ids=input_ids, attention_mask=mask).logits
        got = ours(input_ids, mask).logits
        torch.testing.assert_close(got[real], expected[real], atol=TOLERANCE, rtol=0)
        labels = torch.where(real & (torch.arange(seq) % 3 == 0), input_ids, IGNORE_INDEX)
        expected_loss = theirs(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        torch.testing.assert_close(ours(input_ids, mask, labels).loss, expected_loss, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("global_every,far_token_seen", [(1, True), (5, False)])
def test_a_sliding_window_layer_sees_only_its_window(global_every, far_token_seen):
    """One layer after the first (whose attention has no norm): global, or a window of 8 tokens on each side.
    A token changed at position 39 reaches position 0 only through the global layer."""
    model = _randomized(ModernBertForMaskedLM(TINY.replace(num_layers=2, global_attn_every_n_layers=global_every)))
    model.layers = model.layers[1:]
    input_ids, _ = padded_batch(TINY, [40], 40)
    changed = input_ids.clone()
    changed[0, 39] = changed[0, 39] % (TINY.vocab_size - 4) + 3
    with torch.no_grad():
        first, second = model.eval()(input_ids).logits[0], model(changed).logits[0]
    assert not torch.equal(first[39], second[39])
    assert torch.equal(first[:31], second[:31]) != far_token_seen  # 39 - 8 = 31: beyond the window


@pytest.mark.parametrize("config_name", CONFIGS)
def test_a_directory_round_trip_is_bit_identical_and_transformers_loads_it(config_name, tmp_path):
    config = CONFIGS[config_name]
    ours = _randomized(ModernBertForMaskedLM(config)).eval()
    save_modern_hf(ours, tmp_path / "hf")
    theirs = AutoModelForMaskedLM.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    assert type(theirs).__name__ == "ModernBertForMaskedLM"
    again = load_modern_hf(tmp_path / "hf")
    assert again.config == config
    for name, tensor in ours.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name
    from_object = load_modern_hf(theirs)
    input_ids, mask = padded_batch(config, [40, 11], 40)
    with torch.no_grad():
        expected = theirs(input_ids=input_ids, attention_mask=mask).logits
        torch.testing.assert_close(from_object(input_ids, mask).logits[mask.bool()], expected[mask.bool()],
                                   atol=TOLERANCE, rtol=0)


def test_transformers_4_config_keys_are_read():
    hf_config = modern_config_to_hf(CONFIGS["odd-shapes"])
    del hf_config["layer_types"], hf_config["rope_parameters"]
    hf_config.update(global_attn_every_n_layers=2, global_rope_theta=160_000.0, local_rope_theta=10_000.0)
    assert modern_config_from_hf(hf_config, "config.json") == CONFIGS["odd-shapes"]


def test_initialization_is_modernberts_truncated_normals():
    config = TINY.replace(hidden_size=256, ffn_size=512, num_layers=4, vocab_size=4000)
    model = ModernBertForMaskedLM(config)
    std_out = 0.02 / (2 * config.num_layers) ** 0.5
    for weight, std in ((model.embeddings.word.weight, 0.02), (model.layers[1].attention.qkv.weight, 0.02),
                        (model.layers[1].mlp.wi.weight, 0.02), (model.layers[1].attention.out.weight, std_out),
                        (model.layers[1].mlp.wo.weight, std_out), (model.lm_head.dense.weight, std_out)):
        assert weight.abs().max() <= 2 * std + 1e-9
        # A normal truncated at 2 standard deviations has 0.880 of the standard deviation.
        assert abs(weight.std().item() / std - 0.880) < 0.03
    assert model.decoder.weight is model.embeddings.word.weight and not model.decoder.bias.any()


BAD_CONFIGS = [
    ({"local_attention": 15}, "local_attention=15 must be even"),
    ({"hidden_size": 120, "num_heads": 8}, "head size hidden_size / num_heads = 15 is odd"),
    ({"hidden_size": 100, "num_heads": 8}, "hidden_size=100 is not a multiple of num_heads=8"),
    ({"pad_token_id": 1000}, "pad_token_id=1000 is outside the vocabulary [0, 1000)"),
]


@pytest.mark.parametrize("changes,message", BAD_CONFIGS)
def test_configs_the_architecture_cannot_run_are_refused(changes, message):
    with pytest.raises(XLMRDSError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        TINY.replace(**changes)


BAD_HF_CONFIGS = [
    ({"hidden_activation": "silu"}, "hidden_activation='silu' cannot be represented by xlmr-ds"),
    ({"layer_types": ["full_attention", "full_attention", "sliding_attention"]},
     "layer_types is not global every n layers from layer 0"),
    ({"rope_parameters": {"full_attention": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}}},
     "rope_parameters.full_attention.rope_type='linear' cannot be represented"),
    ({"model_type": "xlm-roberta"}, "model_type 'xlm-roberta' is not a ModernBERT"),
]


@pytest.mark.parametrize("changes,message", BAD_HF_CONFIGS)
def test_hf_configs_we_cannot_represent_are_refused(changes, message):
    with pytest.raises(XLMRDSError, match=message.replace("(", r"\(")):
        modern_config_from_hf({**modern_config_to_hf(TINY), **changes}, "config.json")


def test_each_architectures_reader_refuses_the_others_directory(tmp_path):
    save_modern_hf(ModernBertForMaskedLM(TINY), tmp_path / "modern")
    from xlmr_ds.model import XLMRForMaskedLM

    save_hf(XLMRForMaskedLM(preset("tiny")), tmp_path / "xlmr")
    with pytest.raises(XLMRDSError, match="model_type 'xlm-roberta' is not a ModernBERT"):
        load_modern_hf(tmp_path / "xlmr")
    with pytest.raises(XLMRDSError, match="is a ModernBERT"):
        load_hf(tmp_path / "modern")
    config = json.loads((tmp_path / "modern" / "config.json").read_text())
    assert config["architectures"] == ["ModernBertForMaskedLM"]
