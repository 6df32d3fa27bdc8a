"""The run report: runs/<name>/report.md with loss and learning-rate plots, throughput, per-language
validation perplexity before and after, fill-mask examples (as pieces, with a count of the answers that are
words in the prompt's script), the zero-shot transfer tables of fine-tune and retrieval results, and the
commands that scale the run up."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

from xlmr_ds.engine.metrics import read_metrics
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.jsonfile import read_json_object
from xlmr_ds.outputs import replaced_file, write_text_atomically

SCALE_UP = """```bash
# what a cluster needs, before it is booked
xlmr-ds plan --model large --gpus 64 --gpus-per-node 8 --gpu h100 --zero 2 --micro-batch 16 --seq 512 \\
    --global-batch 8192 --tokens 6.3e12 --mfu 0.4 --write-config ds_configs/my_large.json
# Base on one 8-GPU node, then Large across nodes (hostfiles/ has examples; data on shared storage)
deepspeed --num_gpus 8 --module xlmr_ds.train --deepspeed_config ds_configs/base_zero2_bf16.json \\
    --data DATA --model base --steps 1500000 --save runs/base --save-every 1000 --eval-every 1000 --keep 3
deepspeed --hostfile hostfiles/two_nodes --module xlmr_ds.train --deepspeed_config ds_configs/large_zero2_bf16.json \\
    --data DATA --model large --steps 1500000 --save runs/large --save-every 1000 --eval-every 1000 --keep 3
```
The same corpus -> `xlmr-ds spm train --vocab-size 250000` -> `mpiexec -n R xlmr-ds binarize` steps make DATA;
`--init-from HF_DIR` continues from released XLM-R weights (with the released sentencepiece.bpe.model)."""


def _plot(path: Path, series: dict[str, tuple[list, list]], ylabel: str, title: str, log: bool = False) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5))
    for label, (x, y) in series.items():
        axis.plot(x, y, label=label, marker="." if len(x) < 40 else None)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    if log:
        axis.set_yscale("log")
    if len(series) > 1:
        axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with replaced_file(path) as staged:  # the temporary's suffix is .tmp: the format is named
        figure.savefig(staged, format=path.suffix.lstrip("."), dpi=110)
    plt.close(figure)


def answers_per_mask(predictions: list) -> list[list[dict]]:
    """transformers' fill-mask pipeline's answers as one list per <mask>, in the prompt's order: it returns a flat
    list for one mask and a list of lists for several (each mask predicted with the others left masked)."""
    return predictions if predictions and isinstance(predictions[0], list) else [predictions]


def fill_mask_examples(hf_dir: Path, texts: list[str]) -> list[tuple[str, list[tuple[str, float]]]]:
    """Each mask's top-3 answers as SentencePiece pieces (the word-boundary mark ▁ kept, so that an answer that
    is only the boundary shows as `▁`, not as a blank) with their probabilities: (the text, numbered by mask when
    it has several; the answers)."""
    from transformers import pipeline

    from xlmr_ds.model.hf import require_masked_lm

    require_masked_lm(hf_dir, "report --hf")
    fill = pipeline("fill-mask", model=str(hf_dir), tokenizer=str(hf_dir), model_kwargs={"use_safetensors": True})
    pieces = fill.tokenizer.convert_ids_to_tokens
    examples = []
    for text in texts:
        per_mask = answers_per_mask(fill(text, top_k=3))
        for number, predictions in enumerate(per_mask, start=1):
            label = f"{text} (<mask> {number})" if len(per_mask) > 1 else text
            examples.append((label, [(pieces(p["token"]), p["score"]) for p in predictions]))
    return examples


def _script(character: str) -> str:
    """The Unicode script family of a letter, from its name (LATIN, CYRILLIC, CJK, HIRAGANA, ...)."""
    name = unicodedata.name(character, "")
    return "CJK" if name.startswith(("CJK", "HIRAGANA", "KATAKANA")) else name.split(" ")[0]


UNSPACED_SCRIPTS = {"CJK", "THAI", "LAO", "KHMER", "MYANMAR"}
"""Scripts written without spaces between words: there a piece without the word-boundary mark can be a word."""


def is_word_in_script_of(piece: str, text: str) -> bool:
    """Whether an answer is a word in the script of the prompt's letters: letters (and marks), starting a word (the
    boundary mark ▁ first, except in a script written without spaces). What a model that learned something
    answers, rather than `▁`, punctuation or the inside of a word such as `s`."""
    scripts = {_script(c) for c in text.replace("<mask>", "") if unicodedata.category(c).startswith("L")}
    word = piece.removeprefix("\u2581")
    # Letters and the marks that go with them (Thai vowels, Devanagari matras), in the prompt's scripts.
    if not word or not unicodedata.category(word[0]).startswith("L") or not all(
            unicodedata.category(c)[0] in "LM" and _script(c) in scripts for c in word):
        return False
    return piece.startswith("\u2581") or _script(word[0]) in UNSPACED_SCRIPTS


def word_order_section(eval_json: Path) -> list[str]:
    """What word order is worth to the model: an `xlmr-ds eval --shuffled-order --json` file's losses."""
    languages = read_json_object(eval_json, "--json file of `xlmr-ds eval --shuffled-order`").get("languages")
    rows = {lang: r for lang, r in languages.items() if isinstance(r, dict) and "loss_shuffled_order" in r} \
        if isinstance(languages, dict) else {}
    if not rows:
        raise XLMRDSError(f"{eval_json}: no loss_shuffled_order; write it with `xlmr-ds eval --shuffled-order`")
    ordered = sum(r["loss"] for r in rows.values()) / len(rows)
    shuffled = sum(r["loss_shuffled_order"] for r in rows.values()) / len(rows)
    gain = shuffled - ordered
    return ["## Word order", "",
            f"Masked-LM loss on the held-out blocks, mean of {len(rows)} languages: {ordered:.4f} in order, "
            f"{shuffled:.4f} with each block's tokens shuffled (the same masked tokens to predict): word order is "
            f"worth {gain:+.4f} nats ({100 * gain / shuffled:+.1f}%).", "",
            "A model that has only learned which pieces each language uses, the first plateau of masked-LM "
            "training, gains nothing from order, and its fill-mask answers are its language's most frequent pieces "
            "wherever the mask is. Learning how pieces combine shows here first as a gain well above zero.", ""]


def transfer_section(finetune_dir: Path | None, retrieval_dir: Path | None) -> list[str]:
    """The zero-shot tables of a `xlmr-ds finetune` and a `xlmr-ds eval retrieval` --out directory."""
    from xlmr_ds.tasks.results import ResultTable

    lines = ["## Cross-lingual transfer (smoke level)", "",
             "A tiny model pretrained for minutes on a few MB: these tables show that the pipeline measures "
             "zero-shot transfer from a checkpoint; they are not XNLI or Tatoeba figures.", ""]
    for directory, what in ((finetune_dir, "Fine-tuned on the source language, tested on every language"),
                            (retrieval_dir, "Parallel sentence retrieval, no fine-tuning")):
        if directory is None:
            continue
        results = directory / "results.json"
        if not results.is_file():
            raise XLMRDSError(f"{results}: not found; pass the --out directory of xlmr-ds finetune / eval retrieval")
        table = ResultTable.from_dict(json.loads(results.read_text()))
        header = table.header()
        lines += [f"### {what}", "", f"`{directory}`: {table.task}, {table.metric}"
                  + (f", chosen epoch {table.extra['epoch']}" if "epoch" in table.extra else "")
                  + (f", layer {table.extra['layer']}" if "layer" in table.extra else "") + ".", "",
                  "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in table.rows()]
        chance = table.extra.get("chance")
        if chance:
            lines += ["", f"Chance: {100 * chance:.2f}%."]
        elif table.metric == "accuracy@1" and table.languages:
            odds = [100 / result["examples"] for result in table.languages.values()]
            lines += ["", f"Chance: one in the number of pairs, {min(odds):.2f}% to {max(odds):.2f}%."]
        lines.append("")
    return lines


def corpus_build_section(corpus_dir: Path, report_dir: Path) -> list[str]:
    """What `corpus build` did to the raw shards, and how well LID recovered the languages they came from."""
    from xlmr_ds.prep.corpus.build import read_build_stats

    stats = read_build_stats(corpus_dir)
    read, copies, kept = stats["read"], stats["duplicate_paragraphs"], stats["kept"]
    plot = os.path.relpath(corpus_dir / "stats.png", report_dir)
    lines = ["## From raw shards to the corpus (`xlmr-ds corpus build`)", "",
             f"{len(stats['inputs'])} raw shards, {read['documents']:,} documents, {read['paragraphs']:,} paragraphs "
             f"({read['bytes'] / 1e6:,.2f} MB), {stats['workers']} worker(s), {stats['seconds']:.1f} s. Paragraphs "
             f"dropped as copies of an earlier one: {copies['paragraphs']:,} "
             f"({100 * copies['paragraphs'] / max(read['paragraphs'], 1):.1f}%).", "",
             "| stage | documents removed | MB removed |", "|---|---:|---:|"]
    lines += [f"| {stage} | {c['documents']:,} | {c['bytes'] / 1e6:,.3f} |" for stage, c in stats["removed"].items()]
    lines += [f"| kept | {kept['documents']:,} | {kept['bytes'] / 1e6:,.3f} |", "", f"![corpus build]({plot})", ""]
    known = stats["known_languages"]
    if known:
        lines += ["### Languages recovered", "",
                  "Each source document's known language against the one fastText's lid.176 found (documents "
                  "removed by a stage counted apart).", "",
                  "| source | documents | identified as source | identified as another | removed | most often "
                  "confused with |", "|---|---:|---:|---:|---:|---|"]
        for source, row in known.items():
            removed = sum(n for to, n in row.items() if to.startswith("removed"))
            right = row.get(source, 0)
            others = {to: n for to, n in row.items() if to != source and not to.startswith("removed")}
            confused = ", ".join(f"{to} ({n})" for to, n in sorted(others.items(), key=lambda i: -i[1])[:2])
            identified = max(right + sum(others.values()), 1)
            lines.append(f"| {source} | {sum(row.values()):,} | {right:,} ({100 * right / identified:.1f}%) | "
                         f"{sum(others.values()):,} | {removed:,} | {confused or '-'} |")
        total_right = sum(row.get(source, 0) for source, row in known.items())
        total_identified = sum(n for row in known.values() for to, n in row.items() if not to.startswith("removed"))
        lines += ["", f"Recovered: {total_right:,} of {total_identified:,} identified documents "
                  f"({100 * total_right / max(total_identified, 1):.1f}%).", ""]
    return lines


def write_report(run_dir: str | Path, out: str | Path, hf_dir: str | Path | None = None,
                 fill_mask: list[str] | None = None, title: str = "xlmr-ds run",
                 finetune_dir: str | Path | None = None, retrieval_dir: str | Path | None = None,
                 corpus_dir: str | Path | None = None, word_order: str | Path | None = None) -> Path:
    run_dir, out = Path(run_dir), Path(out)
    metrics_file = run_dir / "metrics.jsonl"
    if not metrics_file.is_file():
        raise XLMRDSError(f"{metrics_file}: not found; --run must be a training --save directory")
    train = read_metrics(metrics_file, "train")
    evals = read_metrics(metrics_file, "eval")
    if not train:
        raise XLMRDSError(f"{metrics_file}: no training steps recorded yet")
    # The sections read from other commands' outputs first: a bad one is refused before anything is written.
    word_order_lines = word_order_section(Path(word_order)) if word_order else []
    transfer_lines = transfer_section(Path(finetune_dir) if finetune_dir else None,
                                      Path(retrieval_dir) if retrieval_dir else None) \
        if finetune_dir or retrieval_dir else []
    examples = fill_mask_examples(Path(hf_dir), fill_mask) if hf_dir and fill_mask else []
    out.parent.mkdir(parents=True, exist_ok=True)
    steps = [r["step"] for r in train]
    _plot(out.parent / "loss.png", {"training loss": (steps, [r["loss"] for r in train]),
                                    **({"validation loss (mean of languages)": (
                                        [e["step"] for e in evals],
                                        [sum(v["loss"] for v in e["languages"].values()) / len(e["languages"])
                                         for e in evals])} if evals else {})},
          "masked-LM loss", "Loss")
    _plot(out.parent / "lr.png", {"learning rate": (steps, [r["lr"] for r in train])}, "learning rate",
          "Learning rate (warmup, then linear decay)")
    throughput = [r["tokens_per_s"] for r in train[1:]] or [train[0]["tokens_per_s"]]
    lines = [f"# {title}", "", f"Run directory: `{run_dir}`; {len(train)} optimizer steps, "
             f"{train[-1]['consumed_samples']:,} sequences consumed.", "",
             "## Loss", "", "![loss](loss.png)", "",
             f"Training loss: {train[0]['loss']:.4f} at step {train[0]['step']} -> {train[-1]['loss']:.4f} at step "
             f"{train[-1]['step']}.", "", "## Learning rate", "", "![learning rate](lr.png)", "",
             "## Throughput", "",
             f"Mean {sum(throughput) / len(throughput):,.0f} tokens/s over the steps after the first "
             f"(max {max(throughput):,.0f}); mean step time "
             f"{sum(r['step_time_s'] for r in train) / len(train):.2f} s.", ""]
    if corpus_dir:
        lines += corpus_build_section(Path(corpus_dir), out.parent)
    if len(evals) >= 2:
        first, last = evals[0], evals[-1]
        lines += ["## Validation perplexity per language", "",
                  f"Held-out documents, fixed masks; step {first['step']} (before) and step {last['step']} "
                  f"(after).", "",
                  "| language | before | after | accuracy after |", "|---|---:|---:|---:|"]
        for language in sorted(last["languages"]):
            before = first["languages"].get(language, {}).get("perplexity")
            after = last["languages"][language]
            lines.append(f"| {language} | {before:,.1f} | {after['perplexity']:,.1f} | "
                         f"{after.get('accuracy', float('nan')):.3f} |" if before is not None else
                         f"| {language} | - | {after['perplexity']:,.1f} | {after.get('accuracy', float('nan')):.3f} |")
        lines.append("")
    if examples:
        lines += ["## Fill-mask with the exported model", "",
                  f"`transformers` pipeline on `{hf_dir}`; answers as pieces (`▁` marks a word start):", ""]
        for text, predictions in examples:
            shown = ", ".join(f"`{token}` ({score:.3f})" for token, score in predictions)
            lines.append(f"- {text} -> {shown}")
        words = sum(is_word_in_script_of(predictions[0][0], text) for text, predictions in examples if predictions)
        lines += ["", f"Top answers that are words in the prompt's script: {words} of {len(examples)}.", ""]
    lines += word_order_lines
    lines += transfer_lines
    lines += ["## Scaling the same run to Base and Large on GPUs", "", SCALE_UP, ""]
    write_text_atomically(out, "\n".join(lines))
    return out
