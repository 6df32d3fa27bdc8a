"""`xlmr-ds compare RUN_DIR... --out report.md`: several training runs side by side, as a recipe study reads them.

Each run directory is a training `--save` directory: its metrics.jsonl holds the training loss of every step
and, for a run trained with `--eval-every K`, the per-language validation losses (`eval` records); its newest
complete checkpoint's marker holds the run's settings (the dataset, alpha, recipe).

Every run is compared on its training loss (compare_train_loss.png, and the mean of its last steps). The
validation sections cover the runs that were validated and name the others, so that runs trained without
`--eval-every` (the default) are compared, not refused. Languages are grouped by resource size: the dataset's
languages ranked by training tokens (manifest.json) and cut into thirds, high, mid and low. A group's perplexity
is exp of the mean of its languages' losses (the geometric mean of their perplexities), so that no single
language dominates it. The validation sections have the final table (each group and every language), a plot per
group of perplexity against steps (compare_<group>.png beside the report), and, when the runs differ in a
constant alpha, the paper's alpha question answered from the measured numbers: as alpha falls, does
low-resource perplexity improve and high-resource perplexity degrade? With `--reach LANG`, also how many steps
each run needs to reach the last run's final validation loss on LANG (how much sooner an initialization gets
there than the baseline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from xlmr_ds.dataset.manifest import read_manifest
from xlmr_ds.engine.checkpoint import newest_complete, read_marker
from xlmr_ds.engine.metrics import read_metrics
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.jsonfile import read_json_object
from xlmr_ds.outputs import write_text_atomically
from xlmr_ds.tools.report import _plot

GROUPS = ("high", "mid", "low")


@dataclass
class RunCurves:
    """One run's validation curves and what it was trained with."""

    name: str
    """The run's label in tables and plots (its directory's name unless given)."""

    path: Path
    """The training --save directory."""

    data_dir: Path
    """The dataset the run trained on (its manifest gives the resource groups)."""

    alpha: float | None
    """The language-sampling alpha when it is one constant for the whole run, else None."""

    recipe: str | None
    """The recipe file, if the run had one."""

    steps: list[int]
    """The steps at which validation ran (empty: the run was trained without --eval-every)."""

    losses: dict[str, list[float]]
    """language -> validation loss at each of `steps`."""

    train_steps: list[int]
    """The steps trained, one training-loss record each."""

    train_losses: list[float]
    """The training loss at each of `train_steps`."""

    @property
    def validated(self) -> bool:
        return bool(self.steps)


def load_run(path: str | Path, name: str | None = None) -> RunCurves:
    path = Path(path)
    metrics = path / "metrics.jsonl"
    if not metrics.exists():
        raise XLMRDSError(f"{path}: no metrics.jsonl; expected a training --save directory")
    evaluations = [r for r in read_metrics(metrics, "eval") if r.get("languages")]
    trained = [r for r in read_metrics(metrics, "train") if r.get("loss") is not None]
    if not trained:
        raise XLMRDSError(f"{metrics}: no training step recorded; expected the metrics.jsonl of a training run")
    checkpoint = newest_complete(path)
    if checkpoint is None:
        raise XLMRDSError(f"{path}: no complete checkpoint, so the run's settings are unknown; compare finished runs")
    data = read_marker(Path(checkpoint))["run_config"]["data"]
    alpha = data["alpha"]
    if data.get("recipe"):
        alpha = _constant_alpha(data["recipe"])
    losses: dict[str, list[float]] = {}
    for record in evaluations:
        for language, figures in record["languages"].items():
            losses.setdefault(language, []).append(figures["loss"])
    return RunCurves(name or path.name, path, Path(data["data_dir"]), alpha, data.get("recipe"),
                     [r["step"] for r in evaluations], losses, [r["step"] for r in trained],
                     [r["loss"] for r in trained])


FINAL_TRAIN_STEPS = 10
"""A run's final training loss is the mean over its last steps: one step's loss is one batch's, and noisy."""


def final_train_loss(run: RunCurves) -> tuple[float, int]:
    """(the mean training loss of the run's last steps, the number of steps in that mean)."""
    last = run.train_losses[-FINAL_TRAIN_STEPS:]
    return sum(last) / len(last), len(last)


def _constant_alpha(recipe_file: str) -> float | None:
    """The recipe's alpha when every phase keeps one value (phases that leave it out keep the run's)."""
    try:
        phases = read_json_object(recipe_file, "recipe")["phases"]
    except XLMRDSError:
        return None
    values = {p["alpha"] for p in phases if isinstance(p.get("alpha"), (int, float))}
    ramps = [p for p in phases if isinstance(p.get("alpha"), dict)]
    return values.pop() if len(values) == 1 and not ramps and "alpha" in phases[0] else None


def resource_groups(tokens: dict[str, int]) -> dict[str, list[str]]:
    """Languages ranked by training tokens, most first, cut into thirds (the first thirds take the remainder)."""
    ranked = sorted(tokens, key=lambda lang: (-tokens[lang], lang))
    size, extra = divmod(len(ranked), 3)
    groups, start = {}, 0
    for index, group in enumerate(GROUPS):
        end = start + size + (1 if index < extra else 0)
        groups[group] = ranked[start:end]
        start = end
    return groups


def group_perplexity(losses: dict[str, float], languages: list[str]) -> float | None:
    present = [losses[lang] for lang in languages if lang in losses]
    return math.exp(sum(present) / len(present)) if present else None


def alpha_finding(runs: list[RunCurves], finals: dict[str, dict[str, float | None]]) -> list[str]:
    """The paper's question answered from the measured numbers, or why it cannot be here."""
    with_alpha = [run for run in runs if run.alpha is not None]
    if len({run.alpha for run in with_alpha}) < 2:
        return ["The runs do not differ in one constant alpha, so the alpha study does not apply."]
    ordered = sorted(with_alpha, key=lambda run: -run.alpha)  # alpha falling
    lines = [f"Runs in order of falling alpha: {', '.join(f'{r.name} (alpha {r.alpha:g})' for r in ordered)}."]
    for group, want, verb in (("low", -1, "improves"), ("high", +1, "degrades")):
        values = [finals[run.name][group] for run in ordered]
        steps = [b - a for a, b in zip(values, values[1:])]
        holds = all(step * want > 0 for step in steps)
        figures = " -> ".join(f"{v:.2f}" for v in values)
        answer = "yes" if holds else "no"
        lines.append(f"- As alpha falls, {group}-resource perplexity {verb}: **{answer}** ({figures}).")
    return lines


def steps_to_reach(run: RunCurves, language: str, target: float) -> int | None:
    """The first validation step at which `run`'s loss on `language` is at most `target` (None: never)."""
    for step, loss in zip(run.steps, run.losses.get(language, [])):
        if loss <= target:
            return step
    return None


def steps_to_stay(run: RunCurves, language: str, target: float) -> int | None:
    """The first validation step from which `run`'s loss on `language` stays at most `target` (None: never):
    validation on a few blocks is noisy, and a curve that dips once has not arrived."""
    reached = None
    for step, loss in zip(run.steps, run.losses.get(language, [])):
        if loss > target:
            reached = None
        elif reached is None:
            reached = step
    return reached


def reach_finding(runs: list[RunCurves], language: str) -> list[str]:
    """How many steps each run needs to reach the last run's final validation loss on `language` (the last run
    is the baseline: e.g. random initialization of new embeddings, against mean initialization before it)."""
    baseline = runs[-1]
    if language not in baseline.losses:
        raise XLMRDSError(f"--reach {language}: {baseline.path} has no validation loss for {language}")
    target = baseline.losses[language][-1]
    lines = [f"Target: {baseline.name}'s final validation loss on {language}, {target:.4f} (perplexity "
             f"{math.exp(target):.2f}, step {baseline.steps[-1]}).", "",
             "| run | first validation step at or below it | sooner | step from which it stays there | sooner |",
             "|---|---|---|---|---|"]

    def cells(measure) -> tuple[str, str]:
        base_steps = measure(baseline, language, target)
        reached = measure(run, language, target)
        if reached is None:
            return "not reached", "-"
        return str(reached), f"{base_steps / reached:.2f}x" if reached else "at step 0"

    for run in runs:
        lines.append(f"| {run.name} | " + " | ".join((*cells(steps_to_reach), *cells(steps_to_stay))) + " |")
    return lines


@dataclass
class Comparison:
    """What `write_comparison` wrote, and the part of it a terminal shows."""

    path: Path
    """The report (Markdown)."""

    plots: list[Path]
    """The plots beside it."""

    findings: list[str]
    """The training-loss table, the alpha study's answer (or why there is none) and the --reach table."""


def write_comparison(run_dirs: list[str], out: str | Path, names: list[str] | None = None,
                     title: str = "xlmr-ds comparison", reach: str | None = None) -> Comparison:
    if names and len(names) != len(run_dirs):
        raise XLMRDSError(f"--names: {len(names)} names for {len(run_dirs)} runs; give one per run or none")
    runs = [load_run(path, names[i] if names else None) for i, path in enumerate(run_dirs)]
    if len({run.name for run in runs}) != len(runs):
        raise XLMRDSError("two runs have the same name; give --names")
    validated = [run for run in runs if run.validated]
    if reach and runs[-1] not in validated:
        raise XLMRDSError(f"--reach {reach}: {runs[-1].path} (the baseline, the last run) was trained without "
                          f"--eval-every, so it has no validation loss to reach")
    manifest = read_manifest(runs[0].data_dir)
    tokens = {lang: info["tokens"] for lang, info in manifest["languages"].items()}
    groups = resource_groups(tokens)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)

    plots = [out.parent / "compare_train_loss.png"]
    _plot(plots[0], {run.name: (run.train_steps, run.train_losses) for run in runs}, "training loss",
          "training loss")
    training = ["| run | steps trained | final training loss | mean over the last |", "|---|---|---|---|"]
    for run in runs:
        loss, steps = final_train_loss(run)
        training.append(f"| {run.name} | {run.train_steps[-1]} | {loss:.4f} | {steps} steps |")

    lines = [f"# {title}", "", "## Runs", "", "| run | directory | alpha | recipe | last validation step |",
             "|---|---|---|---|---|"]
    for run in runs:
        alpha = f"{run.alpha:g}" if run.alpha is not None else "varies"
        last_validation = run.steps[-1] if run.validated else "not validated"
        lines.append(f"| {run.name} | `{run.path}` | {alpha} | {run.recipe or '-'} | {last_validation} |")
    lines += ["", "## Training loss", "", *training, "", "![training loss](compare_train_loss.png)", ""]
    if validated:
        section, group_plots, findings = _validation_sections(validated, runs, tokens, groups, runs[0].data_dir,
                                                              out.parent, reach)
        lines += section
        plots += group_plots
    else:
        findings = ["Validation was not run in any of these runs (they were trained without --eval-every K), so "
                    "they are compared on training loss only; train with --eval-every K for validation perplexity "
                    "per language and resource group, and the alpha study."]
        lines += ["## Validation", "", *findings]
    write_text_atomically(out, "\n".join(lines) + "\n")
    return Comparison(out, plots, [*training, "", *findings])


def _validation_sections(validated: list[RunCurves], runs: list[RunCurves], tokens: dict[str, int],
                         groups: dict[str, list[str]], data_dir: Path, plot_dir: Path,
                         reach: str | None) -> tuple[list[str], list[Path], list[str]]:
    """The report's validation sections over the validated runs, their plots, and the findings shown."""
    finals: dict[str, dict[str, float | None]] = {}
    for run in validated:
        last = {lang: values[-1] for lang, values in run.losses.items()}
        finals[run.name] = {group: group_perplexity(last, groups[group]) for group in GROUPS}
        finals[run.name]["all"] = group_perplexity(last, sorted(tokens))
        finals[run.name].update({lang: math.exp(loss) for lang, loss in last.items()})

    plots = []
    for group in GROUPS:
        series = {}
        for run in validated:
            per_step = [{lang: values[i] for lang, values in run.losses.items()} for i in range(len(run.steps))]
            series[run.name] = (run.steps, [group_perplexity(losses, groups[group]) for losses in per_step])
        plots.append(plot_dir / f"compare_{group}.png")
        _plot(plots[-1], series, "perplexity (log)", f"{group}-resource languages: {', '.join(groups[group])}",
              log=True)

    def cell(value):
        return "-" if value is None else f"{value:.2f}"

    skipped = [run.name for run in runs if not run.validated]
    not_validated = [f"Not validated (trained without --eval-every): {', '.join(skipped)}; they are compared on "
                     f"training loss only."] if skipped else []
    lines = ["## Validation", "", *not_validated, *([""] if skipped else [])]
    lines += [f"Resource groups (thirds of the languages of `{data_dir}` by training tokens): "
              + "; ".join(f"{group}: {', '.join(groups[group])}" for group in GROUPS) + ".", "",
              "## Final validation perplexity", "", "Per group, exp of the mean loss of its languages.", "",
              "| run | high | mid | low | all |", "|---|---|---|---|---|"]
    lines += [f"| {run.name} | " + " | ".join(cell(finals[run.name][g]) for g in (*GROUPS, "all")) + " |"
              for run in validated]
    alpha = alpha_finding(validated, finals)
    lines += ["", "## The alpha study", "", *alpha, "", "## Per language", "",
              "| language | tokens | group | " + " | ".join(run.name for run in validated) + " |",
              "|---|---|---|" + "---|" * len(validated)]
    for group in GROUPS:
        for lang in groups[group]:
            lines.append(f"| {lang} | {tokens[lang]:,} | {group} | "
                         + " | ".join(cell(finals[run.name].get(lang)) for run in validated) + " |")
    findings = [*not_validated, *alpha]
    if reach:
        reached = reach_finding(validated, reach)
        lines += ["", f"## Steps to reach {reach}'s final loss of {validated[-1].name}", "", *reached]
        findings += ["", *reached]
    lines += ["", "## Curves", ""] + [f"![{group}](compare_{group}.png)" for group in GROUPS]
    return lines, plots, findings
