import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from launch import train  # noqa: E402

ROOT = Path(__file__).parents[2]
CONFIGS = ROOT / "ds_configs"


@pytest.fixture(scope="session")
def training_args(binarized_dir):
    def make(stage: int, save: Path, steps: int, *extra: str) -> list[str]:
        return ["--deepspeed_config", str(CONFIGS / f"tiny_cpu_zero{stage}.json"), "--data", str(binarized_dir),
                "--model", "tiny", "--block-size", "64", "--steps", str(steps), "--save", str(save), *extra]
    return make


@pytest.fixture(scope="session")
def unbroken_runs(training_args, tmp_path_factory):
    """Reference runs, trained once per session: (stage, processes, launcher) -> save dir of 4 steps."""
    cache = {}

    def get(stage: int, processes: int = 2, launcher: str = "deepspeed") -> Path:
        key = (stage, processes, launcher)
        if key not in cache:
            save = tmp_path_factory.mktemp(f"unbroken-z{stage}-p{processes}-{launcher}")
            train(training_args(stage, save, 4), processes, launcher)
            cache[key] = save
        return cache[key]
    return get
