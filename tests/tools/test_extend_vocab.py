"""`xlmr-ds model extend-vocab`: a pretrained model grown to an extended tokenizer keeps what it computed for
old ids (bit-identical old rows, logits within 1e-6), initializes the new rows as asked, loads in transformers
with the new tokenizer, and continued pretraining from it runs end to end (binarize, train under ZeRO-3,
export, fill-mask in the new language)."""

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from launch import environment, train
from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

from xlmr_ds.engine.export import choose_checkpoint, load_checkpoint_model
from xlmr_ds.model.hf import load_hf
from xlmr_ds.model.resize import new_row_ids
from xlmr_ds.prep.spm.extend import extend_sentencepiece
from xlmr_ds.tokenizer import XLMRTokenizer
from xlmr_ds.tools.extend_vocab import extend_model_vocabulary, old_split

CONFIGS = Path(__file__).parents[2] / "ds_configs"


def _new_language(path, lines=400, seed=11):
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 9))) for _ in range(120)]
    text = []
    for n in range(lines):
        text.append(" ".join(rng.choices(words, k=rng.randint(5, 14))) + ".")
        if n % 4 == 3:
            text.append("")
    path.write_text("\n".join(text) + "\n")


@pytest.fixture(scope="module")
def extended(corpus_dir, spm_model, unbroken_runs, tmp_path_factory):
    """The session's tokenizer extended by a Latin-script language 'xx', and the 4-step ZeRO-2 run grown to it."""
    root = tmp_path_factory.mktemp("extend-vocab")
    corpus = root / "corpus"
    shutil.copytree(corpus_dir, corpus)
    _new_language(corpus / "xx.txt")
    extend_sentencepiece(spm_model, corpus, 150, root / "new", ["xx"], sample_lines=2000, progress=False)
    run = unbroken_runs(2)
    results = {init: extend_model_vocabulary(run, root / "new.model", root / f"hf-{init}", init)
               for init in ("mean", "random")}
    return root, corpus, run, results


def _models(extended, init):
    root, _, run, _ = extended
    return load_checkpoint_model(choose_checkpoint(run, None)).eval(), load_hf(root / f"hf-{init}").eval()


@pytest.mark.parametrize("init", ["mean", "random"])
def test_old_ids_compute_what_they_did(extended, init):
    old, new = _models(extended, init)
    old_size, new_size = old.config.vocab_size, new.config.vocab_size
    assert new_size > old_size and extended[3][init].new_size == new_size
    assert torch.equal(new.embeddings.word.weight[:old_size - 1], old.embeddings.word.weight[:old_size - 1])
    assert torch.equal(new.embeddings.word.weight[-1], old.embeddings.word.weight[-1])  # <mask>, moved last
    assert torch.equal(new.lm_head.bias[:old_size - 1], old.lm_head.bias[:old_size - 1])
    assert new.lm_head.decoder.weight is new.embeddings.word.weight
    ids = torch.randint(4, old_size - 1, (3, 40), generator=torch.Generator().manual_seed(0))
    ids[:, 0], ids[:, -1], ids[1, 7] = 0, 2, old_size - 1  # <s>, </s> and a <mask>
    with torch.no_grad():
        before = old(ids).logits
        after = new(ids.masked_fill(ids == old_size - 1, new_size - 1)).logits
    over_old_ids = torch.cat([after[..., :old_size - 1], after[..., -1:]], dim=-1)
    torch.testing.assert_close(over_old_ids, before, rtol=0, atol=1e-6)


def test_mean_init_is_the_mean_of_the_old_split_and_random_init_is_the_pretraining_one(extended):
    root, *_ = extended
    old, mean_model = _models(extended, "mean")
    _, random_model = _models(extended, "random")
    grown = XLMRTokenizer(root / "hf-mean" / "sentencepiece.bpe.model")
    base = XLMRTokenizer(choose_checkpoint(extended[2], None).marker["tokenizer"]["path"])
    word_start = base.sp.PieceToId("\u2581") + 1
    rows = list(new_row_ids(old.config.vocab_size, mean_model.config.vocab_size))
    checked = 0
    for row in rows[:40]:
        piece = grown.id_to_piece(row)
        split = [i for i in old_split(piece, base, word_start) if i != 3]
        if not split:
            continue
        expected = old.embeddings.word.weight[split].mean(0)
        torch.testing.assert_close(mean_model.embeddings.word.weight[row], expected, rtol=0, atol=1e-6)
        checked += 1
    assert checked >= 20
    fresh = random_model.embeddings.word.weight[rows]
    assert abs(fresh.std().item() - old.config.initializer_range) < 0.003 and torch.all(random_model.lm_head.bias[rows] == 0)


def test_transformers_loads_the_grown_model_and_its_tokenizer_gives_our_ids(extended):
    root, corpus, _, _ = extended
    ours, hf_dir = load_hf(root / "hf-mean").eval(), root / "hf-mean"
    theirs = AutoModelForMaskedLM.from_pretrained(hf_dir).eval()
    fast = AutoTokenizer.from_pretrained(hf_dir)
    tokenizer = XLMRTokenizer(hf_dir / "sentencepiece.bpe.model")
    assert fast.mask_token_id == tokenizer.mask_id == ours.config.vocab_size - 1
    lines = [line for name in ("en", "xx", "ru") for line in (corpus / f"{name}.txt").read_text().splitlines()[:6]
             if line.strip()]
    for line in lines:
        assert fast(line)["input_ids"] == [0, *tokenizer.encode(line).tolist(), 2], line
    ids = torch.tensor([fast(lines[7])["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(theirs(input_ids=ids).logits, ours(ids).logits, rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_continued_pretraining_from_the_grown_model_runs_end_to_end(extended, tmp_path):
    """binarize -> ZeRO-3 training with a recipe whose first phase trains only the new embedding rows (the rest
    stays bit-identical) and whose second trains everything -> export -> fill-mask in the new language."""
    root, corpus, _, _ = extended
    env = environment()
    run = lambda *args: subprocess.run([*args], capture_output=True, text=True, timeout=300, env=env)  # noqa: E731
    binarized = run("xlmr-ds", "binarize", "--no-progress", "--input", str(corpus), "--spm", str(root / "new.model"),
                    "--out", str(tmp_path / "data"))
    assert binarized.returncode == 0, binarized.stderr[-2000:]
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"phases": [
        {"name": "new-rows", "steps": 2, "train": "new_embeddings", "lr": {"shape": "stable", "start": 1e-3}},
        {"name": "all", "steps": 1, "lr": {"shape": "stable"}}]}))
    save = tmp_path / "run"
    train(["--deepspeed_config", str(CONFIGS / "tiny_cpu_zero3.json"), "--data", str(tmp_path / "data"),
           "--model", "tiny", "--block-size", "64", "--recipe", str(recipe), "--save", str(save), "--save-every", "1",
           "--keep", "0", "--init-from", str(root / "hf-mean")], processes=1, launcher="python")
    grown = load_hf(root / "hf-mean").state_dict()
    rows = new_row_ids(*[json.loads((root / "hf-mean" / "vocab_extension.json").read_text())[k]
                         for k in ("old_vocab_size", "new_vocab_size")])
    after_phase = load_checkpoint_model(choose_checkpoint(save, 2)).state_dict()
    for name, before in grown.items():
        if name in ("embeddings.word.weight", "lm_head.decoder.weight"):
            assert torch.equal(after_phase[name][:rows.start], before[:rows.start])
            assert torch.equal(after_phase[name][rows.stop:], before[rows.stop:])  # <mask>, last: an old row
            assert not torch.equal(after_phase[name][rows.start:rows.stop], before[rows.start:rows.stop])
        elif name == "lm_head.bias":
            assert torch.equal(after_phase[name][:rows.start], before[:rows.start])
        else:
            assert torch.equal(after_phase[name], before), name
    everything = load_checkpoint_model(choose_checkpoint(save, 3)).state_dict()
    assert not torch.equal(everything["layers.0.attention.query.weight"], grown["layers.0.attention.query.weight"])
    exported = run("xlmr-ds", "export", "--ckpt", str(save), "--out", str(tmp_path / "hf"))
    assert exported.returncode == 0, exported.stderr[-2000:]
    line = (corpus / "xx.txt").read_text().splitlines()[0].split()
    predictions = pipeline("fill-mask", model=str(tmp_path / "hf"))(" ".join([*line[:3], "<mask>", *line[4:]]))
    assert len(predictions) == 5
    grown = XLMRTokenizer(root / "new.model")
    assert AutoTokenizer.from_pretrained(tmp_path / "hf").mask_token_id == grown.mask_id
