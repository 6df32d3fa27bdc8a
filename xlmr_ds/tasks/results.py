"""Scores per language and the zero-shot table: accuracy, entity-level F1 (seqeval, as everyone reports it),
averages over all languages and over the languages not trained on, written as results.json / .csv / .md.

results.json (one object):

    task            the task name (pair-classification, ..., retrieval)
    metric          "accuracy", "f1" (entity-level, seqeval's default conlleval mode) or "accuracy@1" (the mean
                    of both retrieval directions, each given under its own name as listed in `details`)
    source          the languages trained on (empty for retrieval)
    languages       {language: {metric: value, "examples": n, ...}} in the order given
    average         the mean of the metric over every language
    average_zero_shot   the mean over the languages not in `source` (null when there is none)
    details         names of further per-language values (retrieval: "src->tgt", "tgt->src")
    ...             what the command adds (the epoch chosen, the settings)

results.csv: one row per language (language, metric, the details, examples), then rows `average` and
`average_zero_shot`.
results.md: the same table in Markdown, under a heading that names the task and metric.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xlmr_ds.outputs import write_text_atomically


def accuracy(predicted: Sequence, gold: Sequence) -> float:
    if len(predicted) != len(gold) or not gold:
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold labels")
    return sum(p == g for p, g in zip(predicted, gold)) / len(gold)


def entity_f1(predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> float:
    """Entity-level F1 over all sentences (micro average), seqeval's default (conlleval) mode."""
    from seqeval.metrics import f1_score

    return float(f1_score([list(g) for g in gold], [list(p) for p in predicted]))


@dataclass
class ResultTable:
    """One score per language, plus what a reader needs to tell zero-shot from trained-on."""

    task: str
    metric: str
    source: tuple[str, ...]
    languages: dict[str, dict] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    details: tuple[str, ...] = ()
    """Per-language values shown as columns beside the metric (retrieval's two directions)."""

    def add(self, language: str, score: float, examples: int, **details) -> None:
        self.languages[language] = {self.metric: score, "examples": examples, **details}

    def _mean(self, languages) -> float | None:
        scores = [self.languages[lang][self.metric] for lang in languages]
        return sum(scores) / len(scores) if scores else None

    @property
    def average(self) -> float | None:
        return self._mean(self.languages)

    @property
    def average_zero_shot(self) -> float | None:
        return self._mean([lang for lang in self.languages if lang not in self.source])

    def to_dict(self) -> dict:
        return {"task": self.task, "metric": self.metric, "source": list(self.source), "languages": self.languages,
                "average": self.average, "average_zero_shot": self.average_zero_shot, "details": list(self.details),
                **self.extra}

    def rows(self) -> list[tuple[str, str, str]]:
        def cell(value):
            return "-" if value is None else f"{100 * value:.2f}"

        rows = []
        blank = ("",) * len(self.details)
        for lang, result in self.languages.items():
            mark = " (source)" if lang in self.source else ""
            rows.append((lang + mark, cell(result[self.metric]), *(cell(result[d]) for d in self.details),
                         str(result["examples"])))
        rows.append(("average", cell(self.average), *blank, ""))
        if self.source:
            rows.append(("average zero-shot", cell(self.average_zero_shot), *blank, ""))
        return rows

    def header(self) -> tuple[str, ...]:
        return ("language", f"{self.metric} (%)", *(f"{d} (%)" for d in self.details), "examples")

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["language", self.metric, *self.details, "examples"])
        for lang, result in self.languages.items():
            writer.writerow([lang, result[self.metric], *(result[d] for d in self.details), result["examples"]])
        blank = [""] * len(self.details)
        writer.writerow(["average", self.average, *blank, ""])
        writer.writerow(["average_zero_shot", "" if self.average_zero_shot is None else self.average_zero_shot,
                         *blank, ""])
        return out.getvalue()

    def to_markdown(self, title: str) -> str:
        header = self.header()
        lines = [f"## {title}", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path, title: str) -> None:
        """results.json, results.csv and results.md in out_dir (the caller's staging directory)."""
        (out_dir / "results.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        (out_dir / "results.csv").write_text(self.to_csv())
        (out_dir / "results.md").write_text(self.to_markdown(title))

    @classmethod
    def from_dict(cls, values: dict) -> ResultTable:
        known = {"task", "metric", "source", "languages", "average", "average_zero_shot", "details"}
        return cls(values["task"], values["metric"], tuple(values["source"]), values["languages"],
                   {k: v for k, v in values.items() if k not in known}, tuple(values.get("details", ())))


@dataclass
class TransferSummary:
    """One row per pretraining step (`xlmr-ds eval transfer`): each language's score, the averages.

    transfer.json: {"task", "metric", "source", "steps": [{"step", "languages": {lang: score}, "average",
    "average_zero_shot"}, ...]} in step order; transfer.csv: `step,<languages...>,average,average_zero_shot`;
    transfer.md: the same table in Markdown.
    """

    task: str
    metric: str
    source: tuple[str, ...] = ()
    steps: list[dict] = field(default_factory=list)

    def add(self, step: int, table: ResultTable) -> None:
        self.source = table.source
        self.steps.append({"step": step, "languages": {lang: r[self.metric] for lang, r in table.languages.items()},
                           "average": table.average, "average_zero_shot": table.average_zero_shot})

    @property
    def languages(self) -> list[str]:
        return list(self.steps[0]["languages"]) if self.steps else []

    def header(self) -> tuple[str, ...]:
        zero_shot = ("average zero-shot",) if self.source else ()
        return ("step", *self.languages, "average", *zero_shot)

    def rows(self) -> list[tuple[str, ...]]:
        def cell(value):
            return "-" if value is None else f"{100 * value:.2f}"

        rows = []
        for entry in self.steps:
            zero_shot = (cell(entry["average_zero_shot"]),) if self.source else ()
            rows.append((str(entry["step"]), *(cell(entry["languages"][lang]) for lang in self.languages),
                         cell(entry["average"]), *zero_shot))
        return rows

    def to_dict(self) -> dict:
        return {"task": self.task, "metric": self.metric, "source": list(self.source), "steps": self.steps}

    def write(self, out_dir: Path, title: str) -> None:
        """transfer.json/.csv/.md in out_dir, each written under a temporary name and renamed."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["step", *self.languages, "average", "average_zero_shot"])
        for entry in self.steps:
            zero_shot = entry["average_zero_shot"]
            writer.writerow([entry["step"], *(entry["languages"][lang] for lang in self.languages), entry["average"],
                             "" if zero_shot is None else zero_shot])
        header = self.header()
        markdown = [f"## {title}", "", f"{self.metric} (%) by pretraining step", "",
                    "| " + " | ".join(header) + " |", "|" + "|".join(["---:"] * len(header)) + "|"]
        markdown += ["| " + " | ".join(row) + " |" for row in self.rows()]
        contents = {"transfer.json": json.dumps(self.to_dict(), indent=2) + "\n", "transfer.csv": buffer.getvalue(),
                    "transfer.md": "\n".join(markdown) + "\n"}
        for name, text in contents.items():
            write_text_atomically(out_dir / name, text)
