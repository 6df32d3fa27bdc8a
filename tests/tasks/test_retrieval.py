"""`xlmr-ds eval retrieval`: accuracy@1 both ways equals the same computation on transformers' hidden states;
bad parallel files are one line naming them."""

import json

import pytest
import torch
import torch.nn.functional as F
from task_factory import corpus_words

from xlmr_ds.engine.retrieval import default_layer, evaluate_retrieval, read_parallel
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


BREAKS = "x\u2028y\u2029z\x85w"  # Unicode line breaks that are text inside a sentence, not line ends
# (name, source file's bytes, target file's bytes, the source's sentences, the target's sentences)
PARALLEL_FILES = [
    ("plain", b"one\ntwo\n", b"eins\nzwei\n", ["one", "two"], ["eins", "zwei"]),
    ("a byte-order mark on one side", "\ufeffone\ntwo\n".encode(), b"eins\nzwei", ["one", "two"], ["eins", "zwei"]),
    ("CRLF line ends", b"one\r\ntwo\r\n", b"eins\nzwei\n", ["one", "two"], ["eins", "zwei"]),
    ("Unicode line breaks inside a sentence", f"{BREAKS}\ntwo\n".encode(), b"eins\nzwei\n", [BREAKS, "two"],
     ["eins", "zwei"]),
]


@pytest.mark.parametrize("name,source,target,source_lines,target_lines", PARALLEL_FILES,
                         ids=[c[0] for c in PARALLEL_FILES])
def test_parallel_files_are_read_line_by_line(tmp_path, name, source, target, source_lines, target_lines):
    (tmp_path / "src.txt").write_bytes(source)
    (tmp_path / "tgt.txt").write_bytes(target)
    pair = RetrievalPair("de", str(tmp_path / "src.txt"), str(tmp_path / "tgt.txt"))
    assert read_parallel(pair) == (source_lines, target_lines)


# (name, the source file's bytes (the target: two lines), the error expected)
BAD_PARALLEL_FILES = [
    ("not UTF-8", b"one\n\xff\n", r"src\.txt:2: not UTF-8"),
    ("old Mac line ends on both sides would pair one giant line", b"one\rtwo\r",
     r"src\.txt:1: a carriage return inside the line \(old Mac line ends\?\)"),
]


@pytest.mark.parametrize("source,error", [c[1:] for c in BAD_PARALLEL_FILES], ids=[c[0] for c in BAD_PARALLEL_FILES])
def test_bad_parallel_file_is_one_error(tmp_path, source, error):
    (tmp_path / "src.txt").write_bytes(source)
    (tmp_path / "tgt.txt").write_bytes(b"eins\nzwei\n")
    with pytest.raises(XLMRDSError, match=error):
        read_parallel(RetrievalPair("de", str(tmp_path / "src.txt"), str(tmp_path / "tgt.txt")))


# (spec, relative to a folder holding run_10:30/{en,de}.txt and a, b:c, a:b, c; the pair read, or the error)
PAIR_SPECS = [
    ("de=run_10:30/en.txt:run_10:30/de.txt", ("de", "run_10:30/en.txt", "run_10:30/de.txt")),
    ("de=a:b:c", r"'de=a:b:c': more than one ':' in it parts two existing files \(a \| b:c, a:b \| c\)"),
    ("de=a:b", ("de", "a", "b")),  # one ':': the files are looked for when read
    ("de=lang=x/a.txt:b.txt", ("de", "lang=x/a.txt", "b.txt")),
    ("de=run_10:30/en.txt:run_10:30/none.txt", r"no ':' in it parts two existing files; expected LANG=SRC:TGT"),
    ("run=a:b:c", r"'run=a:b:c': expected LANG=SRC:TGT .*; 'run' is not a language code"),
]


@pytest.mark.parametrize("spec,expected", PAIR_SPECS, ids=[c[0] for c in PAIR_SPECS])
def test_pair_specs_split_where_both_files_exist(tmp_path, spec, expected):
    (tmp_path / "run_10:30").mkdir()
    for name in ("run_10:30/en.txt", "run_10:30/de.txt", "a", "b:c", "a:b", "c"):
        (tmp_path / name).write_text("a\n")
    if isinstance(expected, str):
        with pytest.raises(XLMRDSError, match=expected):
            parse_pair(spec, "--pairs", tmp_path)
    else:
        assert parse_pair(spec, "--pairs", tmp_path) == RetrievalPair(*expected)
