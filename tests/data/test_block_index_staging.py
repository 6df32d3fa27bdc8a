"""A block-index build removes the staging directories of killed builds, and only those."""

import os
import socket
import subprocess
import sys

import pytest

from xlmr_ds.data.block_index import _remove_abandoned_staging

HOST = socket.gethostname().replace(".", "_")


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("name,removed", [
    ("this host, dead process", True),
    ("this host, live process", False),
    ("another host, dead process", False),
    ("another cache, dead process", False),
])
def test_only_staging_of_dead_processes_of_this_host_is_removed(tmp_path, name, removed):
    cache_dir = tmp_path / ".index" / "0123456789abcdef0123"
    cache_dir.parent.mkdir()
    key, host, pid = cache_dir.name, HOST, dead_pid()
    if name == "this host, live process":
        pid = os.getpid()
    elif name == "another host, dead process":
        host = "elsewhere"
    elif name == "another cache, dead process":
        key = "fedcba9876543210fedc"
    staging = cache_dir.parent / f".{key}.{host}.{pid}.k2j3h4"
    staging.mkdir()
    (staging / "en.train.npy").write_bytes(b"partial")
    _remove_abandoned_staging(cache_dir, HOST)
    assert staging.exists() is not removed
