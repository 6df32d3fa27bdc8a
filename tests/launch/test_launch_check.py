"""`xlmr-ds launch check` without a cluster: bad input, hosts that refuse or never answer (on loopback only),
problems found on this machine, and the rules that compare a host with this machine.

The real two-host checks are in tests/multinode/test_two_hosts.py.
"""

import copy
import socket
import subprocess
import sys
import time

import pytest

from xlmr_ds.launch.check import HostReport, compare, ssh_command


def launch_check(*args: str, cwd=None, timeout: int = 60) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "xlmr_ds", "launch", "check", *args], capture_output=True,
                            text=True, timeout=timeout, cwd=cwd)
    return result, time.monotonic() - started


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on: ssh is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections (the kernel does) but never speaks: ssh waits for a banner."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


BAD_INPUT = [
    ("syntax error", "node1 slots=1\nnode2 slot=1\n", [], 1, r"hostfile:2: 'node2 slot=1': expected 'HOSTNAME slots=N'"),
    ("duplicate host", "node1 slots=1\nnode1 slots=1\n", [], 1, r"hostfile:2: host node1 is listed twice"),
    ("zero slots", "node1 slots=0\n", [], 1, r"hostfile:1: slots=0 for node1"),
    ("include and exclude", "node1 slots=1\n", ["--include", "node1", "--exclude", "node1"], 1, "cannot be combined"),
    ("unknown include", "node1 slots=1\n", ["--include", "node7"], 1, "Hostname 'node7' not found in hostfile"),
    ("ssh timeout zero", "node1 slots=1\n", ["--ssh-timeout", "0"], 2, "argument --ssh-timeout: 0 must be at least 1"),
    ("missing hostfile", None, [], 1, r"hostfile: hostfile not found"),
]


@pytest.mark.parametrize("text,args,code,message", [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_line_naming_what_to_fix(tmp_path, capsys, text, args, code, message):
    """In-process (the subprocess tests below show the real exit path): each case fails before any ssh."""
    import re

    from xlmr_ds.cli.main import main

    hostfile = tmp_path / "hostfile"
    if text is not None:
        hostfile.write_text(text)
    try:
        returned = main(["launch", "check", "--hostfile", str(hostfile), *args])
    except SystemExit as exit:  # argparse
        returned = exit.code
    captured = capsys.readouterr()
    assert returned == code and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), captured.err


@pytest.mark.parametrize("kind,ssh_says", [("refused", "Connection refused"), ("silent", "timed out")],
                         ids=["refused", "never-answers"])
def test_an_unreachable_host_fails_within_the_timeout_naming_the_host(tmp_path, request, kind, ssh_says):
    port = request.getfixturevalue(f"{'closed' if kind == 'refused' else 'silent'}_port")
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("127.0.0.1 slots=2\n")
    result, seconds = launch_check("--hostfile", str(hostfile), "--ssh-port", str(port), "--ssh-timeout", "2")
    assert one_line_error(result) == "xlmr-ds: error: launch check: 1 problem(s) on 127.0.0.1; see the list above"
    assert seconds < 20  # 2 s of ssh plus starting Python and importing torch for this machine's versions
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "FAILED" in rows["127.0.0.1"]
    problem = next(line for line in result.stdout.splitlines() if line.strip().startswith("127.0.0.1:"))
    assert "unreachable by ssh (timeout 2 s)" in problem and ssh_says in problem


def test_problems_on_this_machine_are_listed_with_the_hosts(tmp_path, closed_port):
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("127.0.0.1 slots=1\n")
    (tmp_path / ".deepspeed_env").write_text("PATH=/usr/bin\n\nDS_ACCELERATOR=cpu\n")
    (tmp_path / "data").mkdir()
    result, _ = launch_check("--hostfile", str(hostfile), "--ssh-port", str(closed_port), "--ssh-timeout", "2",
                             "--data", "data", "--save", "ckpt", cwd=tmp_path)
    assert one_line_error(result) == "xlmr-ds: error: launch check: 4 problem(s) on 127.0.0.1; see the list above"
    problems = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]
    assert problems[0].startswith("127.0.0.1: unreachable by ssh")
    assert problems[1:] == [
        f"this machine: --data {tmp_path / 'data'}: no manifest.json (not a complete `xlmr-ds binarize` output)",
        f"this machine: --save {tmp_path / 'ckpt'}: not found (create it on storage every host sees)",
        f"{tmp_path / '.deepspeed_env'}:2: '' is not KEY=VALUE (DeepSpeed's launcher fails on it, blank lines too)",
    ]


def test_ssh_is_an_argument_list_that_never_prompts():
    command = ssh_command("node1", ["/venv/bin/python", "-m", "xlmr_ds.launch.probe", "--data", "/d/it's here"], 3, 2222)
    assert command == ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-p", "2222", "--", "node1",
                       "/venv/bin/python -m xlmr_ds.launch.probe --data '/d/it'\"'\"'s here'"]


REFERENCE = {
    "hostname": "node1", "python": "3.11.7", "xlmr_ds": "0.1.0", "torch": "2.13.0", "deepspeed": "0.19.8",
    "devices": {"gpus": 8, "cpus": 64},
    "data": {"ok": True, "manifest_sha256": "aa"}, "save": {"ok": True, "token_seen": True},
}


def _with(path: str, value):
    answer = copy.deepcopy(REFERENCE)
    *parents, key = path.split(".")
    target = answer
    for parent in parents:
        target = target[parent]
    target[key] = value
    return answer


COMPARISONS = [
    ("same", REFERENCE, 8, []),
    ("torch differs", _with("torch", "2.12.0"), 8, ["node2: torch 2.12.0, but 2.13.0 on this machine"]),
    ("deepspeed missing", _with("deepspeed", None), 8, ["node2: deepspeed not installed, but 0.19.8 on this machine"]),
    ("python differs", _with("python", "3.10.1"), 8, ["node2: python 3.10.1, but 3.11.7 on this machine"]),
    ("more slots than GPUs", _with("devices.gpus", 4), 8, ["node2: slots=8 but 4 GPU(s); slots are processes, one per GPU"]),
    ("CPU host", _with("devices.gpus", 0), 8, []),
    ("torch broken", _with("devices", {"gpus": None, "cpus": 8, "error": "import torch failed: libcuda"}), 8,
     ["node2: import torch failed: libcuda"]),
    ("data missing", _with("data", {"ok": False, "detail": "not found"}), 8, ["node2: --data /d: not found"]),
    ("another dataset", _with("data.manifest_sha256", "bb"), 8,
     ["node2: --data /d is another dataset (its manifest.json differs from this machine's); copy it again or use "
      "shared storage"]),
    ("node-local checkpoints", _with("save.token_seen", False), 8,
     ["node2: --save /c is not the directory this machine sees (a file written here is missing there); all ranks "
      "write one checkpoint: use shared storage"]),
    ("read-only checkpoints", _with("save", {"ok": False, "detail": "not writable: Read-only file system"}), 8,
     ["node2: --save /c: not writable: Read-only file system"]),
]


@pytest.mark.parametrize("answer,slots,problems", [c[1:] for c in COMPARISONS], ids=[c[0] for c in COMPARISONS])
def test_a_host_is_compared_with_this_machine(answer, slots, problems):
    report = HostReport("node2", slots, 1.0, answer)
    compare(report, REFERENCE, "/d", "/c")
    assert report.problems == problems
