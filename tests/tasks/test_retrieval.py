"""`xlmr-ds eval retrieval`: accuracy@1 both ways equals the same computation on transformers' hidden states;
bad parallel files are one line naming them."""

import json

import pytest
import torch
import torch.nn.functional as F
from task_factory import corpus_words

from xlmr_ds.engine.retrieval import default_layer, evaluate_retrieval
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.tasks.settings import RetrievalPair, RetrievalSettings
from xlmr_ds.tasks.task_config import parse_pair


@pytest.fixture(scope="module")
def parallel(corpus_dir, tmp_path_factory):
    """'Translations': sentence i of ru is made of the words at the positions sentence i of en uses, so that
    the two sides share structure but no pieces (another script)."""
    root = tmp_path_factory.mktemp("parallel")
    en, ru = corpus_words(corpus_dir, "en"), corpus_words(corpus_dir, "ru")
    picks = [[(7 * i + 3 * j) % 40 for j in range(3 + i % 4)] for i in range(30)]
    (root / "en.txt").write_text("\n".join(" ".join(en[k] for k in pick) for pick in picks) + "\n")
    (root / "ru.txt").write_text("\n".join(" ".join(ru[k] for k in pick) for pick in picks) + "\n")
    (root / "en-copy.txt").write_text((root / "en.txt").read_text())
    return root


def hf_accuracies(model_dir, source_lines, target_lines, layer):
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, use_safetensors=True).eval()

    def embed(lines):
        batch = tokenizer(lines, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch, output_hidden_states=True).hidden_states[layer]
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    similarity = embed(source_lines) @ embed(target_lines).T
    gold = torch.arange(len(source_lines))
    return (similarity.argmax(1).eq(gold).float().mean().item(), similarity.argmax(0).eq(gold).float().mean().item())


@pytest.mark.parametrize("layer", [None, 0, 2], ids=["default-middle", "embeddings", "top"])
def test_accuracies_equal_transformers_hidden_states(pretrained_hf, parallel, layer):
    pairs = (RetrievalPair("ru", str(parallel / "en.txt"), str(parallel / "ru.txt")),
             RetrievalPair("en-copy", str(parallel / "en.txt"), str(parallel / "en-copy.txt")))
    table = evaluate_retrieval(RetrievalSettings(str(pretrained_hf), pairs, layer=layer))
    used = default_layer(2) if layer is None else layer
    assert table.extra["layer"] == used
    en = (parallel / "en.txt").read_text().splitlines()
    for pair in pairs:
        target = open(pair.target).read().splitlines()
        forward, backward = hf_accuracies(pretrained_hf, en, target, used)
        result = table.languages[pair.language]
        assert result["src->tgt"] == pytest.approx(forward, abs=1e-9)
        assert result["tgt->src"] == pytest.approx(backward, abs=1e-9)
        assert result["accuracy@1"] == pytest.approx((forward + backward) / 2)
    assert table.languages["en-copy"]["accuracy@1"] == 1.0  # a sentence finds its own copy


def test_cli_writes_the_tables(pretrained_hf, parallel, tmp_path, capsys):
    from xlmr_ds.cli.main import main

    out = tmp_path / "out"
    code = main(["eval", "retrieval", "--model", str(pretrained_hf), "--pairs",
                 f"ru={parallel}/en.txt:{parallel}/ru.txt", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "accuracy@1 (%)" in printed and "src->tgt (%)" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "retrieval" and results["details"] == ["src->tgt", "tgt->src"]
    assert (out / "results.csv").read_text().startswith("language,accuracy@1,src->tgt,tgt->src,examples\n")


def test_bad_parallel_files(pretrained_hf, parallel, tmp_path):
    (tmp_path / "short.txt").write_text("one\ntwo\n")
    (tmp_path / "gap.txt").write_text("one\n\nthree\n")
    (tmp_path / "empty.txt").write_text("")
    cases = [
        (f"ru={parallel}/en.txt:{tmp_path}/short.txt", None, r"en\.txt has 30 lines but .*short\.txt has 2"),
        (f"ru={tmp_path}/gap.txt:{tmp_path}/gap.txt", None, r"gap\.txt:2: an empty line"),
        (f"ru={tmp_path}/empty.txt:{tmp_path}/empty.txt", None, r"empty\.txt: empty"),
        (f"ru={tmp_path}/none.txt:{parallel}/ru.txt", None, r"none\.txt: not found"),
        (f"ru={parallel}/en.txt:{parallel}/ru.txt", 3, r"--layer=3: the model has 2 blocks"),
    ]
    for spec, layer, error in cases:
        with pytest.raises(XLMRDSError, match=error):
            evaluate_retrieval(RetrievalSettings(str(pretrained_hf), (parse_pair(spec, "--pairs"),), layer=layer))
    for spec in ("ru=a.txt", "a.txt:b.txt", "=a:b"):
        with pytest.raises(XLMRDSError, match="expected LANG=SRC:TGT"):
            parse_pair(spec, "--pairs")
