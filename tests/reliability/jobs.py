"""Training jobs that fault tests start in the background, kill and watch.

Each job runs in its own session (process group), so a test can kill -9 the whole job, launcher and ranks,
as a scheduler or a node failure does. Output goes to a file: a pipe that nobody reads would block the job.
Whatever a test does, the `jobs` fixture kills what is left and removes the shared-memory segments that
killed DeepSpeed ranks cannot remove themselves.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from launch import train_command

ERROR = re.compile(r"xlmr-ds (?:train|finetune): error: [^\r\n]*")


def errors(output: str) -> list[str]:
    """The one-line errors in a job's output (another rank's progress bar may share their line)."""
    return ERROR.findall(output)


@dataclass
class Job:
    popen: subprocess.Popen
    log: Path
    port: str

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def errors(self) -> list[str]:
        return errors(self.output())

    def wait_for_output(self, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.popen.poll() is not None:
                raise AssertionError(f"the job ended ({self.popen.returncode}) before printing {text!r}:\n"
                                     f"{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout} s:\n{self.output()[-3000:]}")
            time.sleep(0.1)

    def rank_pid(self, rank: int) -> int:
        """The pid of a rank that the deepspeed launcher started (it passes --local_rank=R)."""
        for child in psutil.Process(self.pid).children(recursive=True):
            if f"--local_rank={rank}" in child.cmdline():
                return child.pid
        raise AssertionError(f"no rank {rank} under the launcher {self.pid}")

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def processes(self) -> list[psutil.Process]:
        """The job's processes now: what it started and everything below."""
        top = psutil.Process(self.pid)
        return [top, *top.children(recursive=True)]

    def kill(self) -> None:
        """kill -9 of every process of the job."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=60)


class Jobs:
    def __init__(self, directory: Path):
        self.directory = directory
        self.started: list[Job] = []

    def start(self, args: list[str], processes: int = 2, launcher: str = "deepspeed",
              env: dict | None = None, module: str = "xlmr_ds.train") -> Job:
        """A job of `module` (pretraining unless it names another, e.g. xlmr_ds.finetune)."""
        command, environment = train_command(launcher, processes, args, module)
        environment.update(env or {})
        port = command[command.index("--master_port") + 1] if launcher == "deepspeed" else environment["MASTER_PORT"]
        return self._popen(command, environment, port, f"job{len(self.started)}")

    def start_ranks(self, args: list[str], processes: int = 2, env: dict | None = None) -> list[Job]:
        """Each rank a process of its own with no launcher above it, as ranks on different nodes are: nothing
        but the ranks themselves can notice that a peer died or hangs."""
        _, environment = train_command("python", 1, args)
        environment.update(env or {}, WORLD_SIZE=str(processes))
        return [self._popen([sys.executable, "-m", "xlmr_ds.train", *args],
                            {**environment, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                            environment["MASTER_PORT"], f"job{len(self.started)}-rank{rank}")
                for rank in range(processes)]

    def _popen(self, command: list[str], environment: dict, port: str, name: str) -> Job:
        log = self.directory / f"{name}.log"
        with open(log, "w") as out:
            popen = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        job = Job(popen, log, port)
        self.started.append(job)
        return job

    def clean_up(self) -> None:
        for job in self.started:
            if job.popen.poll() is None:
                job.kill()
            for segment in Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_{os.getuid()}_*_{job.port}_*"):
                segment.unlink(missing_ok=True)
