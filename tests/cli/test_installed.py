"""An installed xlmr-ds works outside the clone: `plan` and `bench` find the shipped DeepSpeed configs inside
the package (setup.py installs ds_configs/ as xlmr_ds/ds_configs), not through the repository."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """xlmr-ds installed from this tree into a folder of its own (dependencies from the venv)."""
    target = tmp_path_factory.mktemp("installed")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True, timeout=300)
    return target


def run_installed(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(installed), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_installed_package_is_the_one_that_runs_and_carries_the_configs(installed, tmp_path):
    result = run_installed(installed, tmp_path, "-c", "import xlmr_ds; from xlmr_ds.engine.ds_config import "
                           "shipped_configs_dir; print(xlmr_ds.__file__); print(shipped_configs_dir())")
    assert result.returncode == 0, result.stderr
    package, configs = result.stdout.split()
    assert Path(package).is_relative_to(installed) and Path(configs) == installed / "xlmr_ds" / "ds_configs"
    assert sorted(p.name for p in Path(configs).glob("*.json")) == sorted(p.name for p in (ROOT / "ds_configs").glob("*.json"))


def test_plan_runs_outside_the_clone(installed, tmp_path):
    result = run_installed(installed, tmp_path, "-m", "xlmr_ds", "plan", "--model", "large", "--gpus", "8",
                           "--micro-batch", "16", "--global-batch", "8192", "--tokens", "1e9", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    shipped = json.loads((ROOT / "ds_configs" / "large_zero2_bf16.json").read_text())
    assert plan["ds_config"]["optimizer"] == shipped["optimizer"] and plan["ds_config"]["train_batch_size"] == 8192


@pytest.mark.slow
def test_bench_runs_outside_the_clone_with_its_default_config(installed, tmp_path):
    result = run_installed(installed, tmp_path, "-m", "xlmr_ds", "bench", "--model", "tiny", "--seq", "32",
                           "--micro-batch", "2", "--steps", "1", "--warmup-steps", "0", "--repeats", "1",
                           "--json", "bench.json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    assert [r["impl"] for r in report["results"]] == ["xlmr-ds"] and report["results"][0]["zero_stage"] == 2
