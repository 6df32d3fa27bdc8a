"""Launching real training jobs from tests: the deepspeed launcher, mpiexec, or one plain process."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

from xlmr_ds.engine.metrics import read_metrics

BIN = Path(sys.executable).parent
_ports = itertools.count(29600 + os.getpid() % 200 * 10)


def environment() -> dict:
    env = dict(os.environ)
    env["DS_ACCELERATOR"] = "cpu"
    # The same PATH everywhere: DeepSpeed rebuilds its shm op when the ninja it finds changes.
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def train_command(launcher: str, processes: int, args: list[str], module: str = "xlmr_ds.train") -> tuple[list[str], dict]:
    env = environment()
    port = str(next(_ports))
    if launcher == "deepspeed":
        command = [str(BIN / "deepspeed"), "--num_gpus", str(processes), "--master_port", port,
                   "--module", module, *args]
    elif launcher == "mpiexec":
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        command = [str(BIN / "mpiexec"), "-n", str(processes), sys.executable, "-m", module, *args]
    elif launcher == "python":
        assert processes == 1
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        command = [sys.executable, "-m", module, *args]
    else:
        raise ValueError(launcher)
    return command, env


def train(args: list[str], processes: int = 2, launcher: str = "deepspeed", timeout: int = 600,
          check: bool = True, extra_env: dict | None = None,
          module: str = "xlmr_ds.train") -> subprocess.CompletedProcess:
    """Run a job module (the pretraining one unless `module` says another) under `launcher`."""
    command, env = train_command(launcher, processes, args, module)
    env.update(extra_env or {})
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"training failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def losses(save_dir: Path) -> list[float]:
    return [record["loss"] for record in read_metrics(save_dir / "metrics.jsonl")]


def consumed(save_dir: Path) -> list[int]:
    return [record["consumed_samples"] for record in read_metrics(save_dir / "metrics.jsonl")]


def model_args(model: str) -> tuple[str, ...]:
    """The flags that make the training_args fixture's run train `model` (its --model tiny otherwise; argparse
    takes the last --model)."""
    return () if model == "tiny" else ("--model", model)
