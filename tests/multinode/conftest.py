"""Two hosts, node1 and node2, for the whole test session: network namespaces set up by netns_hosts.sh.

Set up once, on first use, and torn down at the end of the session whatever the tests did; a session that
was killed leaves namespaces that the next `up` removes. Commands run on a host through `TwoHosts.run`,
always under a timeout that ends their whole process group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from launch import environment  # noqa: E402

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
SCRIPT = HERE / "netns_hosts.sh"
UP_SECONDS = 420  # installing openssh-server and pdsh on a fresh machine included


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class TwoHosts:
    def __init__(self, state: Path):
        self.state = state

    def run(self, host: str, script: str, env: dict | None = None, timeout: float = 300,
            cwd: Path = ROOT) -> Finished:
        """`bash -euo pipefail -c SCRIPT` on `host`, in `cwd`, with the tests' environment plus `env`."""
        import time

        command = [str(SCRIPT), "exec", str(self.state), host, "--", "bash", "-euo", "pipefail", "-c", script]
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=cwd, env={**environment(), **(env or {})}, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # what it started on the other host ends at teardown
            stdout, stderr = process.communicate()
            raise AssertionError(f"timed out after {timeout} s on {host}: {script}\n{stdout[-3000:]}\n{stderr[-3000:]}") from None
        return Finished(process.returncode, stdout, stderr, time.monotonic() - started)


@pytest.fixture(scope="session")
def two_hosts(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("multi-node tests need root (network namespaces, sshd); CI runs them as root")
    state = tmp_path_factory.mktemp("two-hosts")
    env = {**os.environ, "XLMR_DS_NETNS_OWNER": str(os.getpid())}
    try:
        result = subprocess.run([str(SCRIPT), "up", str(state)], capture_output=True, text=True, env=env,
                                timeout=UP_SECONDS)
        if result.returncode != 0:
            raise AssertionError(f"netns_hosts.sh up failed ({result.returncode}):\n{result.stderr[-3000:]}")
        yield TwoHosts(state)
    finally:
        subprocess.run([str(SCRIPT), "down", str(state)], env=env, timeout=120)
