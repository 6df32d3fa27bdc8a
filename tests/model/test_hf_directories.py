"""Hugging Face directories that xlmr-ds did not write, read as transformers reads them: config.json -> our config
(transformers' XLMRobertaConfig is the oracle, its defaults included), the one check that a directory has a
masked-LM head (fill-mask, eval --hf, --init-from, report), and --init-from's shape taken from the directory."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForMaskedLM, XLMRobertaConfig
from transformers_dirs import SHAPE, edit_json, save_transformers_model

from xlmr_ds.config import ModelSettings
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model import XLMRConfig, XLMRForMaskedLM, preset
from xlmr_ds.model.hf import (
    _CONFIG_FIELDS,
    _HF_DEFAULTS,
    load_hf,
    read_hf_config,
    require_masked_lm,
    save_hf,
)


@pytest.mark.parametrize("key", sorted(_HF_DEFAULTS))
def test_a_key_config_json_leaves_out_means_what_transformers_takes(key):
    assert _HF_DEFAULTS[key] == getattr(XLMRobertaConfig(), key)


# (id, XLMRobertaConfig changes from SHAPE, config.json keys then removed: transformers' defaults apply)
CONFIGS = [
    ("transformers-epsilon", {}, ()),
    ("our-epsilon-no-dropout", {"layer_norm_eps": 1e-5, "hidden_dropout_prob": 0.0,
                                "attention_probs_dropout_prob": 0.0}, ()),
    ("two-token-types-wider-init", {"type_vocab_size": 2, "initializer_range": 0.05}, ()),
    ("other-special-ids", {"pad_token_id": 5, "bos_token_id": 7, "eos_token_id": 9}, ()),
    ("epsilon-and-types-left-out", {}, ("layer_norm_eps", "type_vocab_size")),
    ("dropout-and-act-left-out", {"hidden_dropout_prob": 0.2}, ("hidden_dropout_prob", "hidden_act",
                                                                "attention_probs_dropout_prob")),
]


@pytest.mark.parametrize("changes,left_out", [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
def test_config_json_is_read_as_transformers_reads_it(changes, left_out, tmp_path):
    save_transformers_model(tmp_path, **changes)
    edit_json(tmp_path / "config.json", drop=left_out)
    theirs = XLMRobertaConfig.from_pretrained(tmp_path)
    ours = read_hf_config(tmp_path)
    assert ours == XLMRConfig(**{field: getattr(theirs, key) for key, field in _CONFIG_FIELDS.items()})


def test_a_transformers_model_with_its_own_epsilon_gives_its_logits(tmp_path):
    """The whole chain on a directory transformers wrote: LayerNorm eps 1e-12 read and used."""
    save_transformers_model(tmp_path)
    ours, theirs = load_hf(tmp_path).eval(), AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert ours.config.layer_norm_eps == 1e-12
    ids = torch.tensor([[0, 17, 42, 99, 311, 2]])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, theirs(input_ids=ids).logits, rtol=0, atol=1e-5)


# (id, config.json changes, the one-line error)
UNREPRESENTABLE = [
    ("relative-positions", {"position_embedding_type": "relative_key"},
     "position_embedding_type='relative_key' cannot be represented by xlmr-ds (expected 'absolute')"),
    ("decoder", {"is_decoder": True}, "is_decoder=True cannot be represented by xlmr-ds (expected False)"),
    ("cross-attention", {"add_cross_attention": True}, "add_cross_attention=True cannot be represented"),
    ("tanh-gelu", {"hidden_act": "gelu_new"}, "hidden_act='gelu_new' cannot be represented by xlmr-ds (expected "
                                              "'gelu')"),
    ("untied-decoder", {"tie_word_embeddings": False}, "tie_word_embeddings=False cannot be represented"),
    ("bert", {"model_type": "bert"}, "model_type='bert' cannot be represented"),
    ("heads-do-not-divide", {"num_attention_heads": 3}, "hidden_size=64 is not a multiple of num_heads=3"),
]


@pytest.mark.parametrize("changes,message", [c[1:] for c in UNREPRESENTABLE], ids=[c[0] for c in UNREPRESENTABLE])
def test_what_the_architecture_cannot_represent_is_refused_in_one_line(changes, message, tmp_path):
    save_transformers_model(tmp_path)
    edit_json(tmp_path / "config.json", **changes)
    with pytest.raises(XLMRDSError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        read_hf_config(tmp_path)
    assert "\n" not in str(error.value)


def test_a_weight_of_another_shape_than_config_json_gives_is_named(tmp_path):
    save_transformers_model(tmp_path)
    edit_json(tmp_path / "config.json", intermediate_size=128)
    with pytest.raises(XLMRDSError, match=r"weight 'roberta.encoder.layer.0.intermediate.dense.weight' has shape "
                                          r"\(96, 64\) but config.json gives \(128, 64\)"):
        load_hf(tmp_path)


def _ours(directory: Path) -> Path:
    save_hf(XLMRForMaskedLM(preset("tiny", vocab_size=502)), directory)
    return directory


def _pickle_only(directory: Path) -> Path:
    _ours(directory)
    (directory / "model.safetensors").rename(directory / "pytorch_model.bin")
    return directory


def _classifier_weights_without_architectures(directory: Path) -> Path:
    save_transformers_model(directory, "XLMRobertaForSequenceClassification")
    edit_json(directory / "config.json", drop=("architectures",))
    return directory


def _sharded(architecture: str, unnamed: bool = False):
    """A transformers model saved in shards (model.safetensors.index.json), its architecture left out if `unnamed`."""
    def make(directory: Path) -> Path:
        import transformers

        config = transformers.XLMRobertaConfig(vocab_size=502, **SHAPE)
        getattr(transformers, architecture)(config).save_pretrained(directory, max_shard_size="40KB")
        assert (directory / "model.safetensors.index.json").is_file()
        if unnamed:
            edit_json(directory / "config.json", drop=("architectures",))
        return directory
    return make


NO_HEAD = "fill-mask needs a masked LM (an `xlmr-ds export` directory, an XLMRobertaForMaskedLM or a ModernBertForMaskedLM)"
# (id, how the directory is made, the one-line error or None when it has a masked-LM head)
MASKED_LM_HEADS = [
    ("xlmr-ds-export", _ours, None),
    ("transformers-masked-lm", lambda d: save_transformers_model(d), None),
    ("sequence-classifier", lambda d: save_transformers_model(d, "XLMRobertaForSequenceClassification"),
     f"config.json's architectures is XLMRobertaForSequenceClassification, which has no masked-LM head; {NO_HEAD}"),
    ("token-classifier", lambda d: save_transformers_model(d, "XLMRobertaForTokenClassification"),
     f"config.json's architectures is XLMRobertaForTokenClassification, which has no masked-LM head; {NO_HEAD}"),
    ("question-answering", lambda d: save_transformers_model(d, "XLMRobertaForQuestionAnswering"),
     f"config.json's architectures is XLMRobertaForQuestionAnswering, which has no masked-LM head; {NO_HEAD}"),
    ("classifier-weights-unnamed", _classifier_weights_without_architectures,
     f"its weights have no masked-LM head (no lm_head.bias, 5 lm_head.* weights missing in all); {NO_HEAD}"),
    ("sharded-masked-lm", _sharded("XLMRobertaForMaskedLM"), None),
    ("sharded-classifier-unnamed", _sharded("XLMRobertaForSequenceClassification", unnamed=True),
     f"its weights have no masked-LM head (no lm_head.bias, 5 lm_head.* weights missing in all); {NO_HEAD}"),
    ("pickle-weights", _pickle_only, "holds only pytorch_model.bin; xlmr-ds reads Hugging Face weights only from "
                                     "safetensors"),
]


@pytest.mark.parametrize("make,message", [c[1:] for c in MASKED_LM_HEADS], ids=[c[0] for c in MASKED_LM_HEADS])
def test_a_directory_without_a_masked_lm_head_is_refused_in_one_line(make, message, tmp_path):
    directory = make(tmp_path / "hf")
    if message is None:
        require_masked_lm(directory, "fill-mask")
        assert isinstance(load_hf(directory), XLMRForMaskedLM)
        return
    with pytest.raises(XLMRDSError) as error:
        require_masked_lm(directory, "fill-mask")
    assert str(error.value).startswith(f"{directory}: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def _model_config(tmp_path: Path, **changes) -> str:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"hidden_size": 64, "num_layers": 1, "num_heads": 2, "ffn_size": 96,
                                "max_position_embeddings": 130, "layer_norm_eps": 1e-12, **changes}))
    return str(path)


DIRECTORY = XLMRConfig(vocab_size=502, hidden_size=64, num_layers=1, num_heads=2, ffn_size=96,
                       max_position_embeddings=130, layer_norm_eps=1e-12)
# (id, ModelSettings(preset, config_file) beside --init-from of a SHAPE directory, the config read or the error)
INIT_FROM = [
    ("shape-not-given", lambda tmp: (None, None), DIRECTORY),
    ("agreeing-config-file", lambda tmp: (None, _model_config(tmp, vocab_size=1000)), DIRECTORY),
    ("preset-disagrees", lambda tmp: ("tiny", None),
     "its config.json disagrees with --model tiny: hidden_size 64 vs 128, num_layers 1 vs 2, num_heads 2 vs 4, "
     "ffn_size 96 vs 512, max_position_embeddings 130 vs 514, layer_norm_eps 1e-12 vs 1e-05 (config.json vs "
     "--model); leave --model out to train the directory's shape"),
    ("config-file-epsilon-differs", lambda tmp: (None, _model_config(tmp, layer_norm_eps=1e-5)),
     "its config.json disagrees with --model-config {tmp}/model.json: layer_norm_eps 1e-12 vs 1e-05 (config.json "
     "vs --model-config); leave --model-config out"),
    ("config-file-dropout-differs", lambda tmp: (None, _model_config(tmp, hidden_dropout=0.0)),
     "hidden_dropout 0.1 vs 0.0 (config.json vs --model-config)"),
]


@pytest.mark.parametrize("given,expected", [c[1:] for c in INIT_FROM], ids=[c[0] for c in INIT_FROM])
def test_init_from_takes_the_shape_from_the_directory(given, expected, tmp_path):
    directory = save_transformers_model(tmp_path / "hf")
    settings = ModelSettings(*given(tmp_path), init_from=str(directory))
    if isinstance(expected, XLMRConfig):
        assert settings.shape() == expected
        assert settings.shape() == read_hf_config(directory)
        return
    with pytest.raises(XLMRDSError) as error:
        settings.shape()
    assert str(error.value).startswith(f"--init-from {directory}: ")
    assert expected.format(tmp=tmp_path) in str(error.value) and "\n" not in str(error.value)


def test_without_init_from_the_preset_or_config_file_is_the_shape(tmp_path):
    assert ModelSettings("small").shape() == preset("small")
    assert ModelSettings("tiny", _model_config(tmp_path)).shape().hidden_size == 64
