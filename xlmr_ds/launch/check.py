"""`xlmr-ds launch check`: before a long multi-node job, ask every host in the hostfile whether it can run it.

Each host is reached the way DeepSpeed's launcher reaches it (non-interactive ssh) and runs
`xlmr_ds.launch.probe` with this machine's own Python path, which is also the path the launcher starts ranks
with. The answers are compared with this machine: same Python, xlmr-ds, torch and DeepSpeed versions, the
same dataset (manifest.json's sha256), and one checkpoint directory that every host sees (a file written
here must be visible there: checkpoints of one job are written by all ranks into one directory).

Every ssh has a connection timeout and a total timeout, so an unreachable host costs seconds, not minutes.
Commands are argument lists; the one string ssh sends to the remote shell is built with shlex.join.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.launch.probe import PROBE_PREFIX, probe

VERSIONS = (("python", "python"), ("xlmr_ds", "xlmr-ds"), ("torch", "torch"), ("deepspeed", "deepspeed"))
PROBE_SECONDS = 60  # beyond the ssh connection: importing torch on a busy host with a cold disk
DEEPSPEED_ENV = os.environ.get("DS_ENV_FILE", ".deepspeed_env")


@dataclass
class HostReport:
    host: str
    slots: int
    seconds: float | None = None
    answer: dict | None = None
    problems: list[str] = field(default_factory=list)


def ssh_command(host: str, remote: list[str], connect_timeout: int, port: int | None) -> list[str]:
    """ssh that never prompts (BatchMode) and gives up connecting after `connect_timeout` seconds."""
    command = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}"]
    if port is not None:
        command += ["-p", str(port)]
    return command + ["--", host, shlex.join(remote)]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def probe_host(host: str, slots: int, data: str | None, save: str | None, token: str | None,
               connect_timeout: int, port: int | None) -> HostReport:
    report = HostReport(host, slots)
    remote = [sys.executable, "-m", "xlmr_ds.launch.probe"]
    for flag, value in (("--data", data), ("--save", save), ("--token", token)):
        if value:
            remote += [flag, value]
    limit = connect_timeout + PROBE_SECONDS
    started = time.monotonic()
    try:
        result = subprocess.run(ssh_command(host, remote, connect_timeout, port), capture_output=True, text=True,
                                timeout=limit, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        report.problems.append(f"{host}: no answer within {limit} s (ssh connected, but the probe did not finish)")
        return report
    except FileNotFoundError:
        raise XLMRDSError("ssh not found on this machine; multi-node launches need an ssh client") from None
    report.seconds = time.monotonic() - started
    if result.returncode == 255:
        report.problems.append(f"{host}: unreachable by ssh (timeout {connect_timeout} s): {_last_line(result.stderr)}")
    elif result.returncode == 127:
        report.problems.append(f"{host}: {sys.executable} not found there; the launcher starts every rank with this "
                               f"path, so each host needs the same Python environment at the same path")
    elif result.returncode != 0:
        report.problems.append(f"{host}: the probe failed (exit {result.returncode}): {_last_line(result.stderr)}")
    else:
        answers = [line[len(PROBE_PREFIX):] for line in result.stdout.splitlines() if line.startswith(PROBE_PREFIX)]
        if not answers:
            report.problems.append(f"{host}: the probe printed no answer: {_last_line(result.stdout + result.stderr)}")
        else:
            report.answer = json.loads(answers[-1])
    return report


def compare(report: HostReport, reference: dict, data: str | None, save: str | None) -> None:
    """Add to report.problems what differs from this machine or stops a job on that host."""
    answer, host = report.answer, report.host
    if answer is None:
        return
    for key, label in VERSIONS:
        if answer.get(key) != reference.get(key):
            report.problems.append(f"{host}: {label} {answer.get(key) or 'not installed'}, but "
                                   f"{reference.get(key) or 'not installed'} on this machine")
    devices = answer["devices"]
    if devices.get("error"):
        report.problems.append(f"{host}: {devices['error']}")
    elif devices["gpus"] and report.slots > devices["gpus"]:
        report.problems.append(f"{host}: slots={report.slots} but {devices['gpus']} GPU(s); slots are processes, "
                               f"one per GPU")
    if data:
        state = answer["data"]
        if not state["ok"]:
            report.problems.append(f"{host}: --data {data}: {state['detail']}")
        elif reference["data"]["ok"] and state["manifest_sha256"] != reference["data"]["manifest_sha256"]:
            report.problems.append(f"{host}: --data {data} is another dataset (its manifest.json differs from this "
                                   f"machine's); copy it again or use shared storage")
    if save:
        state = answer["save"]
        if not state["ok"]:
            report.problems.append(f"{host}: --save {save}: {state['detail']}")
        elif reference["save"]["ok"] and not state["token_seen"]:
            report.problems.append(f"{host}: --save {save} is not the directory this machine sees (a file written "
                                   f"here is missing there); all ranks write one checkpoint: use shared storage")


def local_problems(hosts: list[tuple[str, int]], reference: dict, data: str | None, save: str | None) -> list[str]:
    problems = []
    if len(hosts) > 1 and shutil.which("pdsh") is None:
        problems.append("this machine: pdsh not found; `deepspeed --hostfile` starts remote ranks with it "
                        "(apt install pdsh), or pass --launcher to deepspeed")
    if data and not reference["data"]["ok"]:
        problems.append(f"this machine: --data {data}: {reference['data']['detail']}")
    if save and not reference["save"]["ok"]:
        problems.append(f"this machine: --save {save}: {reference['save']['detail']} (create it on storage "
                        f"every host sees)")
    for directory in (Path.home(), Path.cwd()):
        problems += deepspeed_env_problems(directory / DEEPSPEED_ENV)
    return problems


def deepspeed_env_problems(path: Path) -> list[str]:
    """DeepSpeed's launcher splits each line of .deepspeed_env at '=' and crashes on anything else."""
    try:
        lines = path.read_text().splitlines()
    except (FileNotFoundError, IsADirectoryError):
        return []
    return [f"{path}:{number}: {line!r} is not KEY=VALUE (DeepSpeed's launcher fails on it, blank lines too)"
            for number, line in enumerate(lines, start=1) if "=" not in line]


def check_hosts(hosts: list[tuple[str, int]], data: str | None, save: str | None, connect_timeout: int,
                port: int | None) -> tuple[dict, list[HostReport], list[str]]:
    """(this machine's probe, one report per host in hostfile order, problems found on this machine)."""
    data = str(Path(data).resolve()) if data else None
    save = str(Path(save).resolve()) if save else None
    token = f".xlmr-ds-launch-check-{socket.gethostname()}-{uuid.uuid4().hex[:12]}"
    token_path = Path(save) / token if save and Path(save).is_dir() else None
    try:
        if token_path:
            token_path.write_text("written by `xlmr-ds launch check`; safe to delete\n")
        reference = probe(data, save, token if token_path else None)
        with ThreadPoolExecutor(max_workers=min(32, len(hosts))) as pool:
            reports = list(pool.map(lambda entry: probe_host(*entry, data, save, token, connect_timeout, port), hosts))
    finally:
        if token_path:
            token_path.unlink(missing_ok=True)
    for report in reports:
        compare(report, reference, data, save)
    return reference, reports, local_problems(hosts, reference, data, save)


def select_hosts(hosts: list[tuple[str, int]], include: str, exclude: str) -> list[tuple[str, int]]:
    """The hosts and slot counts `deepspeed --include/--exclude` would use, by DeepSpeed's own parser."""
    if not include and not exclude:
        return hosts
    if include and exclude:
        raise XLMRDSError("--include and --exclude cannot be combined (as with deepspeed)")
    from deepspeed.launcher.runner import parse_inclusion_exclusion

    try:
        active = parse_inclusion_exclusion(dict(hosts), include, exclude)
    except ValueError as error:
        raise XLMRDSError(f"--{'include' if include else 'exclude'} {include or exclude!r}: {error}") from None
    if not active:
        raise XLMRDSError(f"--exclude {exclude!r} leaves no host")
    return [(host, len(slots)) for host, slots in active.items()]
