"""Zero-shot transfer across a pretraining run (`xlmr-ds eval transfer`): the task file's fine-tune (or
retrieval) on each complete checkpoint, one result directory per step and a summary table of all steps.

    OUT/step_00000100/    the step's results.json/.csv/.md (and for a fine-tune its metrics.jsonl and model/)
    OUT/transfer.json     every step's scores (tasks/results.py: TransferSummary), also .csv and .md

A step whose results.json is already there is read, not run again: an interrupted sweep continues where
it stopped, and a sweep run again after more checkpoints were saved scores only the new ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from xlmr_ds.engine.checkpoint import CheckpointInfo, complete_checkpoints, tag_for
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.logs import log
from xlmr_ds.tasks.output import StagedOutput
from xlmr_ds.tasks.results import ResultTable, TransferSummary
from xlmr_ds.tasks.settings import RetrievalSettings
from xlmr_ds.tasks.task_config import read_task_config
from xlmr_ds.world import launcher_rank


def checkpoints_to_score(run_dir: str | Path, all_checkpoints: bool) -> list[CheckpointInfo]:
    complete = complete_checkpoints(run_dir)
    if not complete:
        raise XLMRDSError(f"{run_dir}: no complete checkpoint (a step_* directory with its completion marker); "
                          f"pass the --save directory of a pretraining run")
    return complete if all_checkpoints else complete[-1:]


def write_retrieval(table: ResultTable, out: str | Path) -> None:
    output = StagedOutput(out, launcher_rank() == 0)
    try:
        if output.enabled:
            table.write(output.path, "retrieval: accuracy@1 of parallel sentences, both directions")
        output.commit()
    except BaseException:
        output.discard()
        raise


def run_transfer(run_dir: str | Path, task_file: str | Path, out: str | Path, all_checkpoints: bool) -> TransferSummary:
    out = Path(out)
    checkpoints = checkpoints_to_score(run_dir, all_checkpoints)
    first = read_task_config(task_file, str(checkpoints[0].path), str(out / tag_for(checkpoints[0].step)))
    task = "retrieval" if isinstance(first, RetrievalSettings) else first.task
    runtimes: list = []  # the fine-tunes' one runtime, started by the first of them that runs
    try:
        summary = _score_checkpoints(checkpoints, task_file, out, task, runtimes)
    finally:
        for runtime in runtimes:
            runtime.shut_down()
    if launcher_rank() == 0:
        summary.write(out, f"{task}: zero-shot transfer by pretraining step ({Path(task_file).name})")
    return summary


def _score_checkpoints(checkpoints: list[CheckpointInfo], task_file: str | Path, out: Path, task: str,
                       runtimes: list) -> TransferSummary:
    """Each checkpoint scored (or its earlier result read); the fine-tunes share one runtime, started by the
    first of them and put in `runtimes` for the caller to shut down."""
    summary = None
    for info in checkpoints:
        step_out = out / tag_for(info.step)
        settings = read_task_config(task_file, str(info.path), str(step_out))
        if (step_out / "results.json").is_file():
            table = ResultTable.from_dict(json.loads((step_out / "results.json").read_text()))
            log(f"step {info.step}: scored before ({step_out / 'results.json'})")
        elif isinstance(settings, RetrievalSettings):
            from xlmr_ds.engine.retrieval import evaluate_retrieval

            table = evaluate_retrieval(settings)
            write_retrieval(table, step_out)
        else:
            from xlmr_ds.engine.finetune import FineTuner
            from xlmr_ds.engine.runtime import Runtime

            if not runtimes:
                runtimes.append(Runtime.start())
            table = FineTuner(settings, runtime=runtimes[0]).run()
        summary = summary or TransferSummary(task, table.metric)
        summary.add(info.step, table)
        log(f"step {info.step}: average {table.metric} {table.average:.4f}" + (
            f", zero-shot {table.average_zero_shot:.4f}" if table.average_zero_shot is not None else ""))
    return summary
