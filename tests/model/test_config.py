import json

import pytest

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model import PRESETS, XLMRConfig, largest_parameter_count, parameter_count, preset

# Conneau et al. 2019 and the released checkpoints: layers, hidden, ffn, heads, head dim, parameters (masked LM, tied decoder counted once).
PUBLISHED = [
    ("base", 12, 768, 3072, 12, 64, 278_295_186),
    ("large", 24, 1024, 4096, 16, 64, 560_142_482),
]


@pytest.mark.parametrize("name,layers,hidden,ffn,heads,head_dim,params", PUBLISHED)
def test_published_presets_have_the_xlmr_shape_and_exact_parameter_count(name, layers, hidden, ffn, heads,
                                                                           head_dim, params):
    config = preset(name)
    shape = (config.num_layers, config.hidden_size, config.ffn_size, config.num_heads, config.head_dim)
    assert shape == (layers, hidden, ffn, heads, head_dim)
    assert (config.vocab_size, config.max_position_embeddings, config.type_vocab_size) == (250_002, 514, 1)
    assert (config.layer_norm_eps, config.hidden_dropout, config.attention_dropout) == (1e-5, 0.1, 0.1)
    assert config.max_sequence_length == 512
    assert parameter_count(config) == params


def test_large_parameter_count_matches_the_worked_breakdown():
    # The released Large checkpoint: embeddings 256,531,456 + 24 x 12,596,224 + head 1,301,650.
    d, ffn, vocab = 1024, 4096, 250_002
    embeddings = vocab * d + 514 * d + d + 2 * d
    block = 4 * (d * d + d) + 2 * d + (d * ffn + ffn) + (ffn * d + d) + 2 * d
    head = d * d + d + 2 * d + vocab
    assert (embeddings, block, head) == (256_531_456, 12_596_224, 1_301_650)
    assert parameter_count(preset("large")) == embeddings + 24 * block + head
    assert largest_parameter_count(preset("large")) == vocab * d


def test_tiny_preset_is_small_and_supports_full_length_sequences():
    tiny = PRESETS["tiny"]
    assert tiny.num_layers <= 4 and tiny.hidden_size <= 256
    assert tiny.max_sequence_length == 512
    assert tiny.head_dim in (32, 64, 128)


BAD_CONFIGS = [
    ({"hidden_size": 100, "num_heads": 3}, "not a multiple of num_heads"),
    ({"num_layers": 0}, "num_layers=0 must be a positive integer"),
    ({"hidden_dropout": 1.0}, "hidden_dropout=1.0 must be in [0, 1)"),
    ({"max_position_embeddings": 2}, "leaves no room"),
    ({"vocab_size": 2}, "outside the vocabulary"),
]


@pytest.mark.parametrize("changes,message", BAD_CONFIGS)
def test_invalid_config_values_are_refused_with_the_field_named(changes, message):
    with pytest.raises(XLMRDSError, match=message.replace("[", r"\[").replace(")", r"\)")):
        preset("tiny", **changes)


def test_config_file_round_trips_and_rejects_unknown_keys(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps(preset("tiny").to_dict()))
    assert XLMRConfig.from_json(path) == preset("tiny")
    path.write_text(json.dumps({"hidden_size": 64, "num_layer": 2}))
    with pytest.raises(XLMRDSError, match=r"model.json: unknown key 'num_layer'"):
        XLMRConfig.from_json(path)
    path.write_text("{not json")
    with pytest.raises(XLMRDSError, match=r"model.json: invalid JSON at line 1"):
        XLMRConfig.from_json(path)


def test_unknown_preset_names_the_choices():
    with pytest.raises(XLMRDSError, match="unknown model 'huge'; choose one of tiny, small, base, large"):
        preset("huge")
