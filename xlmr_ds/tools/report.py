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
from xlmr_ds.tokenizer import is_word_piece, letter_script

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

    # Many series (a line per language): the legend goes beside the axes, in columns of at most 14 names.
    columns = -(-len(series) // 14) if len(series) > 6 else 0
    figure, axis = plt.subplots(figsize=(7 + 0.9 * columns, 3.5))
    for index, (label, (x, y)) in enumerate(series.items()):
        # matplotlib's 10 colours come round again: the line style tells the rounds apart
        axis.plot(x, y, label=label, marker="." if len(x) < 40 else None, linewidth=1.0 if columns else 1.5,
                  linestyle=("-", "--", ":")[index // 10 % 3])
    axis.set_xlabel("optimizer step")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    if log:
        axis.set_yscale("log")
    if columns:
        axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=columns, fontsize="small", frameon=False)
    elif len(series) > 1:
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


def is_word_in_script_of(piece: str, text: str) -> bool:
    """Whether an answer is a word in the script of the prompt's letters (`xlmr_ds.tokenizer.is_word_piece`)."""
    scripts = {letter_script(c) for c in text.replace("<mask>", "") if unicodedata.category(c).startswith("L")}
    return is_word_piece(piece, scripts)


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
    return ["### Word order", "",
            f"Masked-LM loss on the held-out blocks, mean of {len(rows)} languages: {ordered:.4f} in order, "
            f"{shuffled:.4f} with each block's tokens shuffled (the same masked tokens to predict): word order is "
            f"worth {gain:+.4f} nats ({100 * gain / shuffled:+.1f}%).", "",
            "A model that has only learned which pieces each language uses, the first plateau of masked-LM "
            "training, gains nothing from order, and its fill-mask answers are its language's most frequent pieces "
            "wherever the mask is. Learning how pieces combine shows here first as a gain well above zero.", ""]


def transfer_section(finetune_dir: Path | None, retrieval_dir: Path | None) -> list[str]:
    """The zero-shot tables of a `xlmr-ds finetune` and a `xlmr-ds eval retrieval` --out directory."""
    from xlmr_ds.tasks.results import ResultTable

    lines = ["## How does it transfer?", "",
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
    lines = ["## What data?", "", "### From raw shards to the corpus (`xlmr-ds corpus build`)", "",
             f"{len(stats['inputs'])} raw shards, {read['documents']:,} documents, {read['paragraphs']:,} paragraphs "
             f"({read['bytes'] / 1e6:,.2f} MB), {stats['workers']} worker(s), {stats['seconds']:.1f} s. Paragraphs "
             f"dropped as copies of an earlier one: {copies['paragraphs']:,} "
             f"({100 * copies['paragraphs'] / max(read['paragraphs'], 1):.1f}%).", "",
             "| stage | documents removed | MB removed |", "|---|---:|---:|"]
    lines += [f"| {stage} | {c['documents']:,} | {c['bytes'] / 1e6:,.3f} |" for stage, c in stats["removed"].items()]
    lines += [f"| kept | {kept['documents']:,} | {kept['bytes'] / 1e6:,.3f} |", "", f"![corpus build]({plot})", ""]
    known = stats["known_languages"]
    if known:
        lines += ["#### Languages recovered", "",
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


MAX_TABLE_ROWS = 24
"""A table in the report has at most this many rows; the whole table is in a CSV beside the report."""

TRAINED_TOKENS_OF_BASE = 1_500_000 * 8192 * 512
"""Tokens XLM-R Base was trained on (Conneau et al. 2019: 1.5M updates of 8,192 sequences of 512 tokens)."""


def _table(header: list[str], rows: list[list[str]], csv_path: Path | None = None, align: str = "") -> list[str]:
    """A markdown table of at most MAX_TABLE_ROWS rows; with `csv_path`, every row also goes to that CSV (and the
    table says where the rest is when it is cut)."""
    if csv_path is not None:
        import csv
        import io

        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
        write_text_atomically(csv_path, buffer.getvalue())
    align = align or "|".join(["---"] + ["---:"] * (len(header) - 1))
    lines = ["| " + " | ".join(header) + " |", f"|{align}|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows[:MAX_TABLE_ROWS]]
    if len(rows) > MAX_TABLE_ROWS:
        lines += ["", f"{len(rows) - MAX_TABLE_ROWS} more rows in `{csv_path.name}`." if csv_path else ""]
    return lines


def _bars(path: Path, values: dict[str, float], ylabel: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(max(5.0, 0.35 * len(values) + 1.5), 3.5))
    axis.bar(list(values), list(values.values()), color=["tab:blue" if v >= 0 else "tab:red" for v in values.values()])
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.tick_params(axis="x", labelrotation=90 if len(values) > 12 else 0)
    axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    with replaced_file(path) as staged:
        figure.savefig(staged, format="png", dpi=110)
    plt.close(figure)


def scale_note(train: list[dict]) -> list[str]:
    """What a run of this size can show, said plainly when it is far from XLM-R's."""
    tokens = sum(record.get("tokens", 0) for record in train)
    if not tokens or tokens > 1e-3 * TRAINED_TOKENS_OF_BASE:
        return []
    return [f"This run trained on {tokens:,} tokens, {tokens / TRAINED_TOKENS_OF_BASE:.0e} of what XLM-R Base was "
            "trained on. At this scale a model learns which pieces each language uses and some of how they follow "
            "each other: its masked-token accuracy rises above the best guess that ignores the context, and its "
            "rank for a held-out word falls. It cannot be expected to complete natural sentences as XLM-R does, "
            "and its transfer tables show that the pipeline measures transfer, not what a full-size model "
            "reaches.", ""]


def learning_section(evals: list[dict], report_dir: Path) -> list[str]:
    """Did it learn: masked-token accuracy per language against the context-free guess, step 0 and the end, as a
    table (and accuracy.csv) and as bars; and the held-out fill-mask probes at step 0 and at the end."""
    first, last = evals[0], evals[-1]
    rows, gains = [], {}
    for language in sorted(last["languages"]):
        after = last["languages"][language]
        before = first["languages"].get(language, {})
        guess = after.get("accuracy_context_free")
        if guess is not None:
            gains[language] = 100 * (after["accuracy"] - guess)
        rows.append([language, f"{after.get('tokens', 0):,}",
                     f"`{after['context_free_piece']}`" if "context_free_piece" in after else "-",
                     f"{100 * guess:.1f}" if guess is not None else "-",
                     f"{100 * before['accuracy']:.1f}" if "accuracy" in before else "-",
                     f"{100 * after['accuracy']:.1f}", f"{gains[language]:+.1f}" if language in gains else "-"])
    lines = ["## Did it learn?", "",
             f"Masked-token top-1 accuracy (%) on the held-out blocks of each language, the same masked tokens at "
             f"step {first['step']} and step {last['step']}, against the best guess that ignores the context: the "
             f"language's most frequent piece in its training blocks, always answered.", ""]
    lines += _table(["language", "masked tokens", "context-free guess", "guess", f"step {first['step']}",
                     f"step {last['step']}", "gain over the guess (points)"], rows, report_dir / "accuracy.csv",
                    align="---|---:|---|---:|---:|---:|---:")
    if gains:
        _bars(report_dir / "accuracy_gain.png", gains, "points over the guess",
              f"Masked-token accuracy over the context-free guess, step {last['step']}")
        above = sum(gain > 0 for gain in gains.values())
        lines += ["", f"Above the guess in {above} of {len(gains)} languages; mean gain "
                  f"{sum(gains.values()) / len(gains):+.1f} points.", "", "![accuracy gain](accuracy_gain.png)"]
    lines.append("")
    before_probes = {probe["language"]: probe for probe in first.get("word_probes", [])}
    after_probes = last.get("word_probes", [])
    if after_probes:
        lines += ["### Fill-mask on held-out text", "",
                  "One whole word masked in a held-out block of each language (block and word drawn by a seeded "
                  "rule), the rest of the block as context. The rank is the word's place among all "
                  "answers (1: the top answer).", ""]
        rows = []
        for probe in after_probes:
            earlier = before_probes.get(probe["language"])
            top = ", ".join(f"`{piece}`" for piece, _ in probe["top"])
            rows.append([probe["language"], _around_mask(probe["text"]), f"`{probe['word']}`",
                         f"{earlier['rank']:,}" if earlier else "-", f"{probe['rank']:,}", top])
        lines += _table(["language", "held-out text", "word", f"rank, step {first['step']}",
                         f"rank, step {last['step']}", f"top 3, step {last['step']}"], rows,
                        align="---|---|---|---:|---:|---")
        lines.append("")
    return lines


def _around_mask(text: str, width: int = 36) -> str:
    """The text within `width` characters either side of <mask>, as inline code with markdown's | escaped."""
    at = text.find("<mask>")
    start, end = max(0, at - width), min(len(text), at + len("<mask>") + width)
    shown = ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
    return "`" + shown.replace("`", "'").replace("|", "\\|") + "`"  # code: <mask> is not read as an HTML tag


def validation_csv(evals: list[dict], path: Path) -> None:
    """Every validation: step, language, loss, perplexity, accuracy, the guess's accuracy, masked tokens."""
    rows = [[e["step"], language, f"{r['loss']:.4f}", f"{r['perplexity']:.1f}", f"{r.get('accuracy', 0):.4f}",
             f"{r['accuracy_context_free']:.4f}" if "accuracy_context_free" in r else "", r.get("tokens", "")]
            for e in evals for language, r in sorted(e["languages"].items())]
    _table(["step", "language", "loss", "perplexity", "accuracy", "accuracy_context_free", "masked_tokens"],
           [[str(v) for v in row] for row in rows], path)


def write_report(run_dir: str | Path, out: str | Path, hf_dir: str | Path | None = None,
                 fill_mask: list[str] | None = None, title: str = "xlmr-ds run",
                 finetune_dir: str | Path | None = None, retrieval_dir: str | Path | None = None,
                 corpus_dir: str | Path | None = None, word_order: str | Path | None = None) -> Path:
    """runs/<name>/report.md and its plots and CSVs, its sections in the order a reader asks: did it learn, how
    fast, on what data, how does it transfer, how to scale it up."""
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
    report_dir = out.parent
    report_dir.mkdir(parents=True, exist_ok=True)
    steps = [r["step"] for r in train]
    validation = {"validation loss (mean of languages)": (
        [e["step"] for e in evals],
        [sum(v["loss"] for v in e["languages"].values()) / len(e["languages"]) for e in evals])} if evals else {}
    _plot(report_dir / "loss.png", {"training loss": (steps, [r["loss"] for r in train]), **validation},
          "masked-LM loss", "Loss")
    lines = [f"# {title}", "", f"Run directory: `{run_dir}`; {len(train)} optimizer steps, "
             f"{train[-1]['consumed_samples']:,} sequences consumed.", ""]
    lines += scale_note(train)
    if len(evals) >= 2:
        lines += learning_section(evals, report_dir)
    lines += ["### Loss", "", "![loss](loss.png)", "",
              f"Training loss: {train[0]['loss']:.4f} at step {train[0]['step']} -> {train[-1]['loss']:.4f} at step "
              f"{train[-1]['step']}.", ""]
    if len(evals) >= 2:
        languages = sorted(evals[-1]["languages"])
        _plot(report_dir / "validation_loss.png",
              {language: ([e["step"] for e in evals if language in e["languages"]],
                          [e["languages"][language]["loss"] for e in evals if language in e["languages"]])
               for language in languages}, "masked-LM loss", "Validation loss per language")
        validation_csv(evals, report_dir / "validation.csv")
        lines += ["![validation loss per language](validation_loss.png)", "",
                  "Every validation's loss, perplexity and accuracy per language: `validation.csv`.", ""]
    lines += word_order_lines
    if examples:
        lines += ["### Prompts unlike the corpus", "",
                  f"Natural sentences, unlike much of the training text; `transformers` fill-mask pipeline on "
                  f"`{hf_dir}`, answers as pieces (`▁` marks a word start):", ""]
        for text, predictions in examples:
            shown = ", ".join(f"`{token}` ({score:.3f})" for token, score in predictions)
            lines.append(f"- `{text}` -> {shown}")
        words = sum(is_word_in_script_of(predictions[0][0], text) for text, predictions in examples if predictions)
        lines += ["", f"Top answers that are words in the prompt's script: {words} of {len(examples)}.", ""]
    _plot(report_dir / "lr.png", {"learning rate": (steps, [r["lr"] for r in train])}, "learning rate",
          "Learning rate (warmup, then linear decay)")
    throughput = [r["tokens_per_s"] for r in train[1:]] or [train[0]["tokens_per_s"]]
    lines += ["## How fast?", "",
              f"Mean {sum(throughput) / len(throughput):,.0f} tokens/s over the steps after the first "
              f"(max {max(throughput):,.0f}); mean step time "
              f"{sum(r['step_time_s'] for r in train) / len(train):.2f} s.", "", "![learning rate](lr.png)", ""]
    if corpus_dir:
        lines += corpus_build_section(Path(corpus_dir), report_dir)
    if transfer_lines:
        lines += transfer_lines
    lines += ["## Scaling the same run to Base and Large on GPUs", "", SCALE_UP, ""]
    write_text_atomically(out, "\n".join(lines))
    return out
