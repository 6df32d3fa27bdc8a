"""DeepSpeed's just-in-time ops build inside the virtual environment, so a stale lock elsewhere cannot hang a run.

On CPU every process group start loads the shared-memory allreduce op. Torch guards its compile with a lock
file that a killed compile leaves behind; in the user-wide cache (~/.cache/torch_extensions) such a lock made
every later start wait forever without a message.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xlmr_ds.world import free_port

pytestmark = pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="the build moves into a venv only")

SHOW_BUILD_ROOT = "from xlmr_ds.accelerator import select_deepspeed_accelerator as s, os; s(); " \
                  "print(os.environ['TORCH_EXTENSIONS_DIR'])"

START_PROCESS_GROUP = """
from xlmr_ds.accelerator import select_deepspeed_accelerator
select_deepspeed_accelerator()
import deepspeed
deepspeed.init_distributed(dist_backend="gloo", auto_mpi_discovery=False)
print("started")
"""


def environment_without_build_root(**extra):
    environment = {k: v for k, v in os.environ.items() if k != "TORCH_EXTENSIONS_DIR"}
    environment.update(extra)
    return environment


@pytest.mark.parametrize("preset, expected", [
    (None, str(Path(sys.prefix) / "torch_extensions")),
    ("/somewhere/chosen", "/somewhere/chosen"),
], ids=["unset: the venv", "set: kept"])
def test_build_root(preset, expected):
    environment = environment_without_build_root()
    if preset is not None:
        environment["TORCH_EXTENSIONS_DIR"] = preset
    result = subprocess.run([sys.executable, "-c", SHOW_BUILD_ROOT], capture_output=True, text=True, timeout=120,
                            env=environment, check=True)
    assert result.stdout.strip() == expected


def test_a_stale_lock_in_the_user_cache_does_not_block_a_process_group(tmp_path):
    # The lock a compile killed midway leaves, where torch's default build root puts it.
    stale = tmp_path / ".cache" / "torch_extensions" / "py311_cpu" / "deepspeed_shm_comm"
    stale.mkdir(parents=True)
    (stale / "lock").touch()
    environment = environment_without_build_root(HOME=str(tmp_path), DS_ACCELERATOR="cpu", WORLD_SIZE="1",
                                                 RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                                                 MASTER_PORT=str(free_port()))
    result = subprocess.run([sys.executable, "-c", START_PROCESS_GROUP], capture_output=True, text=True,
                            timeout=180, env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("started")
