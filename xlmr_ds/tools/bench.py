"""`xlmr-ds bench`: timed DeepSpeed training steps of xlmr-ds, and of transformers' model beside it: masked-LM
pretraining steps, or with `task` fine-tuning steps of a task head (XLMRobertaForSequence- or
TokenClassification, or XLMRobertaForQuestionAnswering, on transformers' side).

Both implementations get the same batches (synthetic packed sequences masked by the data path's MLM rule,
a pure function of (seed, rank, step), or `data` through the training loader), the same DeepSpeed config,
optimizer, parameter groups and process count; only the model differs (bench_worker.py runs one of them).

Each run is a job of its own (`python -m xlmr_ds.tools.bench_worker`, under `deepspeed --num_gpus N` for
several processes), so that memory figures are per implementation. `compare` runs them interleaved, hf,
ours, hf, ours, ... for `repeats` pairs: a shared machine that is slow for a minute slows both sides of a
pair, and the median of the pairs' ratios, with its min and max, is the figure. `fixed_batch` reuses one
batch to measure what the data path costs (the difference is the loader's share of the step).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.world import free_port

IMPLEMENTATIONS = ("xlmr-ds", "hf")
BENCH_TASKS = ("masked-lm", "pair-classification", "sequence-classification", "token-classification",
               "question-answering")
"""What the timed steps train: pretraining (masked LM), or a fine-tuning head (tasks/formats.py's tasks)."""
CLASSIFICATION_LABELS = 3
"""Labels of the benchmark's classification heads (XNLI's three)."""
SHORT_TIMED_SECONDS = 2.0
"""A run whose timed steps take less than this is too short to time well on a shared machine: said so."""


@dataclass(frozen=True)
class BenchSettings:
    """What one benchmark measures; every run of a comparison gets the same."""

    deepspeed_config: str
    """DeepSpeed JSON config; its batch sizes are replaced (micro_batch x processes, no accumulation)."""

    model: str = "tiny"
    """A preset of xlmr_ds.model.PRESETS."""

    vocab_size: int | None = None
    """Override the preset's vocabulary size (with `data`, the dataset's is used)."""

    seq: int = 512
    """Tokens per sequence."""

    micro_batch: int = 4
    """Sequences per process per step."""

    steps: int = 10
    """Timed steps per run."""

    warmup_steps: int = 2
    """Untimed steps first."""

    data: str | None = None
    """A binarized dataset whose batches come through the training loader (default: synthetic batches)."""

    num_workers: int = 1
    """Loader worker processes with `data`."""

    padding: float = 0.0
    """Synthetic batches: mean share of padding tokens (0 = full rows)."""

    fixed_batch: bool = False
    """Reuse one batch: the step without the data work."""

    activation_checkpointing: bool = False
    """Recompute each block in backward."""

    seed: int = 0
    """Seed of the weights and batches."""

    peak_tflops: float | None = None
    """The device's peak for MFU (default: the GPU's table value)."""

    task: str = "masked-lm"
    """masked-lm (pretraining steps) or a fine-tuning task: its head on both sides, synthetic labels."""


@dataclass(frozen=True)
class Run:
    """One job of a comparison."""

    impl: str
    fixed_batch: bool = False

    @property
    def label(self) -> str:
        return self.impl + (" (fixed batch)" if self.fixed_batch else "")


def run_order(compare_hf: bool, data_gap: bool, repeats: int) -> list[Run]:
    """hf, ours[, ours on a fixed batch], hf, ours, ...: every repeat holds one run of each kind."""
    round_ = ([Run("hf")] if compare_hf else []) + [Run("xlmr-ds")] + ([Run("xlmr-ds", True)] if data_gap else [])
    return round_ * repeats


def worker_command(settings_file: Path, run: Run, processes: int, out: Path) -> list[str]:
    worker = ["--settings", str(settings_file), "--impl", run.impl, "--out", str(out)]
    worker += ["--fixed-batch"] if run.fixed_batch else []
    if processes == 1:
        return [sys.executable, "-m", "xlmr_ds.tools.bench_worker", *worker]
    launcher = Path(sys.executable).parent / "deepspeed"
    return [str(launcher), "--num_gpus", str(processes), "--master_port", str(free_port()),
            "--module", "xlmr_ds.tools.bench_worker", *worker]


def compare(settings: BenchSettings, processes: int, compare_hf: bool, data_gap: bool, repeats: int,
            timeout: int, on_run: Callable[[int, int, Run], None] = lambda number, total, run: None) -> dict:
    """Every run of the comparison, interleaved; the report with the hardware, the runs, and per kind of run
    the one with the median tokens/s (`results`), and with hf the pairs' ratios and their median."""
    order = run_order(compare_hf, data_gap and not settings.fixed_batch, repeats)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="xlmr-ds-bench-") as scratch:
        settings_file = Path(scratch) / "settings.json"
        settings_file.write_text(json.dumps(dataclasses.asdict(settings)))
        for number, run in enumerate(order):
            on_run(number, len(order), run)
            out = Path(scratch) / f"{number}.json"
            try:
                finished = subprocess.run(worker_command(settings_file, run, processes, out), env=env,
                                          capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise XLMRDSError(f"the {run.label} benchmark ran past --timeout {timeout} s") from None
            if finished.returncode != 0 or not out.is_file():
                tail = (finished.stderr or finished.stdout).strip().splitlines()[-1:] or ["no output"]
                raise XLMRDSError(f"the {run.label} benchmark failed (exit {finished.returncode}): {tail[0]}")
            runs.append({**json.loads(out.read_text()), "run": number})
    kinds = list(dict.fromkeys(order))
    by_kind = {kind: [r for r, run in zip(runs, order) if run == kind] for kind in kinds}
    report = {"hardware": hardware(), "repeats": repeats, "runs": runs,
              "results": [_median_run(by_kind[kind]) for kind in kinds]}
    if compare_hf:
        ours, theirs = by_kind[Run("xlmr-ds")], by_kind[Run("hf")]
        ratios = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(ours, theirs)]
        report.update(pair_ratios=ratios, ratio=statistics.median(ratios), ratio_min=min(ratios),
                      ratio_max=max(ratios),
                      ratio_definition="median over interleaved pairs of xlmr-ds tokens/s / hf tokens/s, same "
                                       "batches, config and processes")
    if data_gap and not settings.fixed_batch:
        gaps = [(a["step_time_s"] - b["step_time_s"]) / a["step_time_s"]
                for a, b in zip(by_kind[Run("xlmr-ds")], by_kind[Run("xlmr-ds", True)])]
        report["data_gap"] = statistics.median(gaps)
    # Results first, ours before theirs, as readers of the JSON expect.
    report["results"].sort(key=lambda r: (r["impl"] != "xlmr-ds", r["fixed_batch"]))
    return report


def _median_run(runs: list[dict]) -> dict:
    """The run with the median tokens/s (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r["tokens_per_s"])
    return ordered[(len(ordered) - 1) // 2]


def hardware() -> dict:
    import torch

    info = {"machine": platform.machine(), "cpu": _cpu_name(), "cpu_cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["gpu_count"] = torch.cuda.device_count()
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
