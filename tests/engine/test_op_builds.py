"""DeepSpeed's just-in-time ops build inside the virtual environment, and a stale lock cannot hang a run.

On CPU every process group start loads the shared-memory allreduce op. Torch guards each load with a lock file
that a process killed inside it leaves behind; such a lock, in the user-wide cache (~/.cache/torch_extensions)
or in the environment's own build root, made every later start wait forever without a message.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xlmr_ds.accelerator import STALE_LOCK_SECONDS, remove_stale_op_build_locks
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


def process_group_environment(**extra):
    return environment_without_build_root(DS_ACCELERATOR="cpu", WORLD_SIZE="1", RANK="0", LOCAL_RANK="0",
                                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), **extra)


@pytest.mark.parametrize("folders, minutes_old, held_open, removed", [
    (("deepspeed_shm_comm",), 20, False, True),
    (("deepspeed_shm_comm",), 20, True, False),
    (("deepspeed_shm_comm",), 1, False, False),
    (("py311_cpu", "deepspeed_shm_comm"), 20, False, True),
], ids=["left by a killed process", "a build in progress here", "young: maybe a build on another host",
        "torch's default layout"])
def test_which_locks_are_stale(tmp_path, folders, minutes_old, held_open, removed):
    lock = tmp_path.joinpath(*folders, "lock")
    lock.parent.mkdir(parents=True)
    descriptor = os.open(lock, os.O_CREAT | os.O_EXCL)
    try:
        then = lock.stat().st_mtime - minutes_old * 60
        os.utime(lock, (then, then))
        if not held_open:
            os.close(descriptor)
        assert remove_stale_op_build_locks(tmp_path) == ([lock] if removed else [])
        assert lock.exists() is not removed
    finally:
        if held_open:
            os.close(descriptor)


def test_a_stale_lock_in_the_environment_does_not_block_a_process_group():
    lock = Path(sys.prefix) / "torch_extensions" / "deepspeed_shm_comm" / "lock"
    if not lock.parent.is_dir():
        pytest.fail(f"{lock.parent} is missing: the installation builds it (Makefile: python -m xlmr_ds.accelerator)")
    os.close(os.open(lock, os.O_CREAT | os.O_EXCL))  # fails if a live build holds it: then this test must not run
    try:
        then = lock.stat().st_mtime - STALE_LOCK_SECONDS - 60
        os.utime(lock, (then, then))
        result = subprocess.run([sys.executable, "-c", START_PROCESS_GROUP], capture_output=True, text=True,
                                timeout=180, env=process_group_environment())
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip().endswith("started")
        assert "removed a stale lock of DeepSpeed's op build, 6 min old and held by no process" in result.stderr
    finally:
        lock.unlink(missing_ok=True)


def test_a_stale_lock_in_the_user_cache_does_not_block_a_process_group(tmp_path):
    # The lock a compile killed midway leaves, where torch's default build root puts it.
    stale = tmp_path / ".cache" / "torch_extensions" / "py311_cpu" / "deepspeed_shm_comm"
    stale.mkdir(parents=True)
    (stale / "lock").touch()
    environment = process_group_environment(HOME=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", START_PROCESS_GROUP], capture_output=True, text=True,
                            timeout=180, env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("started")
