import json
import re

import pytest

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.tools.report import write_report


def _language(loss, accuracy, guess=0.05, tokens=40):
    return {"loss": loss, "perplexity": 2.718281828 ** loss, "accuracy": accuracy, "tokens": tokens,
            "accuracy_context_free": guess, "context_free_id": 5, "context_free_piece": "▁the"}


def _probe(language, rank, top):
    return {"language": language, "block": 3, "text": "the cat sat on <mask> mat", "word": "▁the", "rank": rank,
            "top": [[piece, 0.1] for piece in top]}


def _metrics(path, steps=5, languages=("en",)):
    lines = [{"type": "eval", "step": 0, "languages": {lang: _language(6.0, 0.0) for lang in languages},
              "word_probes": [_probe("en", 2629, ["▁x", "▁y", "▁z"])]}]
    for step in range(1, steps + 1):
        lines.append({"type": "train", "step": step, "loss": 7.0 - step * 0.1, "lr": step * 1e-4,
                      "consumed_samples": 8 * step, "tokens": 512, "tokens_per_s": 1000.0 + step,
                      "step_time_s": 0.5})
    lines.append({"type": "eval", "step": steps, "languages": {lang: _language(5.0, 0.125) for lang in languages},
                  "word_probes": [_probe("en", 3, ["▁a", "▁the", "."])]})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_report_answers_did_it_learn_first_then_how_fast_then_scale_up(tmp_path):
    _metrics(tmp_path / "metrics.jsonl")
    report = write_report(tmp_path, tmp_path / "out" / "report.md")
    text = report.read_text()
    for png in ("loss.png", "lr.png", "accuracy_gain.png", "validation_loss.png"):
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({png})" in text
    assert "6.9000 at step 1 -> 6.5000 at step 5" in text
    # language, masked tokens, the guess, its accuracy, step 0, the end, the gain in points
    assert "| en | 40 | `▁the` | 5.0 | 0.0 | 12.5 | +7.5 |" in text
    assert "Above the guess in 1 of 1 languages; mean gain +7.5 points." in text
    assert "| en | `the cat sat on <mask> mat` | `▁the` | 2,629 | 3 | `▁a`, `▁the`, `.` |" in text
    assert "2,560 tokens" in text and "cannot be expected" in text  # a run this small says what it can show
    assert text.index("## Did it learn?") < text.index("## How fast?") < text.index("## Scaling the same run")
    assert "tokens/s" in text and "deepspeed --hostfile hostfiles/two_nodes" in text and "xlmr-ds plan" in text
    csv_rows = (tmp_path / "out" / "validation.csv").read_text().splitlines()
    assert csv_rows[0] == "step,language,loss,perplexity,accuracy,accuracy_context_free,masked_tokens"
    assert len(csv_rows) == 3 and csv_rows[2].startswith("5,en,5.0000,")


@pytest.mark.parametrize("languages,shown", [(24, 24), (25, 24), (40, 24)])
def test_report_tables_stay_under_25_rows_with_every_row_in_the_csv(tmp_path, languages, shown):
    names = tuple(f"l{index:02d}" for index in range(languages))
    _metrics(tmp_path / "metrics.jsonl", languages=names)
    text = write_report(tmp_path, tmp_path / "out" / "report.md").read_text()
    assert sum(re.match(r"\| l\d\d \|", line) is not None for line in text.splitlines()) == shown
    assert len((tmp_path / "out" / "accuracy.csv").read_text().splitlines()) == 1 + languages
    assert (f"{languages - shown} more rows in `accuracy.csv`." in text) is (languages > shown)


def test_report_needs_a_run_directory(tmp_path):
    with pytest.raises(XLMRDSError, match="metrics.jsonl: not found"):
        write_report(tmp_path, tmp_path / "report.md")


# (piece, prompt, is it a word in the prompt's script?)
WORD_CASES = [
    ("▁good", "The weather is <mask> today.", True),
    ("▁", "The weather is <mask> today.", False),  # the bare word boundary
    (".", "The weather is <mask> today.", False),
    ("▁хорошая", "The weather is <mask> today.", False),  # a word, of another script
    ("▁хорошая", "Сегодня <mask> погода.", True),
    ("好", "今天天气很<mask>。", True),
    ("▁Haus", "Das ist ein <mask> Haus.", True),
    ("▁2", "Das ist ein <mask> Haus.", False),
    ("s", "The weather is <mask> today.", False),  # the inside of a word, not a word
    ("▁好", "今天天气很<mask>。", True),
    ("ดี", "อากาศ<mask>มาก", True),  # Thai is written without spaces too
]


@pytest.mark.parametrize("piece,prompt,expected", WORD_CASES)
def test_fill_mask_answers_that_are_words_of_the_prompts_script(piece, prompt, expected):
    from xlmr_ds.tools.report import is_word_in_script_of

    assert is_word_in_script_of(piece, prompt) is expected


def test_report_shows_the_transfer_tables(tmp_path):
    from xlmr_ds.tasks.results import ResultTable

    _metrics(tmp_path / "metrics.jsonl")
    finetune = ResultTable("sequence-classification", "accuracy", ("en",), extra={"epoch": 2, "chance": 1 / 3})
    finetune.add("en", 0.9, 90)
    finetune.add("de", 0.5, 90)
    retrieval = ResultTable("retrieval", "accuracy@1", (), details=("src->tgt", "tgt->src"), extra={"layer": 1})
    retrieval.add("de", 0.25, 157, **{"src->tgt": 0.2, "tgt->src": 0.3})
    for name, table in (("ft", finetune), ("ret", retrieval)):
        (tmp_path / name).mkdir()
        table.write(tmp_path / name, name)
    text = write_report(tmp_path, tmp_path / "report.md", finetune_dir=tmp_path / "ft",
                        retrieval_dir=tmp_path / "ret").read_text()
    assert "| en (source) | 90.00 | 90 |" in text and "| average zero-shot | 50.00 |  |" in text
    assert "Chance: 33.33%." in text and "chosen epoch 2" in text
    assert "| de | 25.00 | 20.00 | 30.00 | 157 |" in text and "layer 1" in text
    assert "Chance: one in the number of pairs, 0.64% to 0.64%." in text
    assert "not XNLI" in text
    with pytest.raises(XLMRDSError, match="results.json: not found"):
        write_report(tmp_path, tmp_path / "report.md", finetune_dir=tmp_path / "missing")


def test_report_says_what_word_order_is_worth_to_the_model(tmp_path):
    _metrics(tmp_path / "metrics.jsonl")
    languages = {"en": {"loss": 5.0, "loss_shuffled_order": 5.5}, "de": {"loss": 4.0, "loss_shuffled_order": 4.1}}
    (tmp_path / "eval.json").write_text(json.dumps({"settings": {}, "languages": languages}))
    text = write_report(tmp_path, tmp_path / "report.md", word_order=tmp_path / "eval.json").read_text()
    assert "4.5000 in order, 4.8000 with each block's tokens shuffled" in text and "+0.3000 nats (+6.2%)" in text
    (tmp_path / "plain.json").write_text(json.dumps({"languages": {"en": {"loss": 5.0}}}))
    with pytest.raises(XLMRDSError, match="no loss_shuffled_order"):
        write_report(tmp_path, tmp_path / "report.md", word_order=tmp_path / "plain.json")
    with pytest.raises(XLMRDSError, match="missing.json: --json file of `xlmr-ds eval --shuffled-order` not found"):
        write_report(tmp_path, tmp_path / "report.md", word_order=tmp_path / "missing.json")
