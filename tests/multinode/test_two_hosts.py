"""Multi-node launches on two real hosts (network namespaces node1 and node2, see netns_hosts.sh).

The multi-node blocks of docs/multi-node.md run here word for word (`manual_block`), on node1, with the paths they use
($HOSTFILE, $CORPUS, $SPM, $DATA, $CKPT) pointing at this session's files. The one-node references are the
cached 2-process runs of tests/conftest.py (`unbroken_runs`), trained with the same config and arguments.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from launch import consumed, losses
from manual import ROOT, manual_block

from xlmr_ds.engine.checkpoint import MARKER

pytestmark = [pytest.mark.multinode, pytest.mark.multiprocess, pytest.mark.slow]

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def manual_environment(two_hosts):
    """docs/multi-node.md's environment block (it writes ./.deepspeed_env in the checkout); the file is put back after."""
    path = ROOT / ".deepspeed_env"
    before = path.read_bytes() if path.exists() else None
    try:
        result = two_hosts.run("node1", manual_block("environment"), timeout=30)
        assert result.returncode == 0, result.output
        yield path
    finally:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(before)


@pytest.fixture(scope="session")
def two_host_run(two_hosts, manual_environment, binarized_dir, tmp_path_factory):
    """docs/multi-node.md's two-node training block: launch check, then deepspeed --hostfile, 4 steps, saves at 2 and 4."""
    ckpt = tmp_path_factory.mktemp("two-hosts-run") / "ckpt"
    result = two_hosts.run("node1", manual_block("train"), timeout=600, env={
        "HOSTFILE": "hostfiles/two_nodes_cpu", "DATA": str(binarized_dir), "CKPT": str(ckpt)})
    assert result.returncode == 0, result.output[-6000:]
    return result, ckpt


def test_every_multinode_block_of_the_manual_is_run_here():
    marked = re.findall(r"<!-- multinode:(\S+)", (ROOT / "docs" / "multi-node.md").read_text())
    assert sorted(marked) == sorted(["environment", "binarize", "train", "resume-on-one-node"])
    assert all(f'manual_block("{name}")' in Path(__file__).read_text() for name in marked)


def rank_hosts(output: str) -> dict[int, str]:
    """{rank: host} from the `[xlmr-ds] rank R of W on HOST` line every rank prints."""
    return {int(rank): host for rank, host in re.findall(r"\[xlmr-ds\] rank (\d+) of \d+ on (\S+)", output)}


def test_two_host_training_equals_a_one_host_two_process_run(two_host_run, unbroken_runs):
    result, ckpt = two_host_run
    assert "ready: 2 host(s), 2 slot(s)" in result.stdout  # launch check passed before the launch
    assert rank_hosts(result.output) == {0: "node1", 1: "node2"}
    # pdsh labels each line with the host it came from: rank 1's line really came from node2.
    assert re.search(r"^node2: \[xlmr-ds\] rank 1 of 2 on node2$", result.output, re.M)
    reference = unbroken_runs(2)
    assert len(losses(ckpt)) == 4
    assert losses(ckpt) == losses(reference)
    assert consumed(ckpt) == consumed(reference)
    for step in (2, 4):
        marker = json.loads((ckpt / f"step_{step:08d}" / MARKER).read_text())
        assert (marker["step"], marker["world_size"]) == (step, 2)


def test_a_two_host_checkpoint_resumes_on_one_host_with_the_same_sample_order(two_host_run, two_hosts, binarized_dir,
                                                                            unbroken_runs, tmp_path):
    _, ckpt = two_host_run
    # The two-host job as if its allocation ended after the step-2 checkpoint.
    resumed = tmp_path / "ckpt"
    shutil.copytree(ckpt, resumed, ignore=shutil.ignore_patterns("step_00000004"))
    result = two_hosts.run("node1", manual_block("resume-on-one-node"), timeout=600,
                           env={"DATA": str(binarized_dir), "CKPT": str(resumed)})
    assert result.returncode == 0, result.output[-6000:]
    assert f"resumed from {resumed / 'step_00000002'} at step 2, 16 samples consumed" in result.output
    assert rank_hosts(result.output) == {0: "node1", 1: "node1"}
    reference = unbroken_runs(2)
    assert consumed(resumed) == consumed(reference) == [8, 16, 24, 32]
    assert losses(resumed) == losses(reference)


# The two ranks, one per host, build the block index together on the shared storage (each its languages),
# then both read it.
INDEX_SCRIPT = """
import socket, sys
from xlmr_ds.dataset import block_index
write = block_index.write_language_tables
def logged_write(staging, data_dir, language, *args, **kwargs):
    sys.stdout.write(f"built {language} on {socket.gethostname()}\\n")  # one write: the hosts' lines interleave
    sys.stdout.flush()
    return write(staging, data_dir, language, *args, **kwargs)
block_index.write_language_tables = logged_write
from xlmr_ds.dataset.loader import DataConfig, PretrainingData
data = PretrainingData(DataConfig(sys.argv[1], block_size=32))
sys.stdout.write(f"sample on {socket.gethostname()} {int(data.train_sample(3)['input_ids'].sum())}\\n")
sys.stdout.flush()
"""


def test_mpiexec_binarize_across_two_hosts_is_byte_identical_to_one_rank(two_hosts, corpus_dir, spm_model,
                                                                         binarized_dir, tmp_path):
    out = tmp_path / "data"
    result = two_hosts.run("node1", manual_block("binarize"), timeout=300,
                           env={"CORPUS": str(corpus_dir), "SPM": str(spm_model), "DATA": str(out)})
    assert result.returncode == 0, result.output[-6000:]
    assert "with 2 rank(s) on node1, node2:" in result.stdout
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    assert files == sorted(p.name for p in binarized_dir.iterdir() if p.is_file())  # one-rank output
    assert [n for n in files if n.endswith(".idx")] and "manifest.json" in files
    for name in files:
        assert (out / name).read_bytes() == (binarized_dir / name).read_bytes(), name

    index = two_hosts.run("node1", shlex.join([str(BIN / "mpiexec"), "-hosts", "node1,node2", "-n", "2",
                                                sys.executable, "-c", INDEX_SCRIPT, str(out)]), timeout=300)
    assert index.returncode == 0, index.output[-6000:]
    built = re.findall(r"^built (\S+) on (\S+)$", index.stdout, re.M)
    languages = json.loads((out / "manifest.json").read_text())["languages"]
    assert sorted(language for language, _ in built) == sorted(languages)  # each once
    assert {host for _, host in built} == {"node1", "node2"}
    samples = dict(re.findall(r"^sample on (\S+) (\d+)$", index.stdout, re.M))
    assert set(samples) == {"node1", "node2"} and samples["node1"] == samples["node2"]
    assert len(list((out / ".index").iterdir())) == 1


def test_launch_check_finds_a_node_local_checkpoint_directory(two_hosts, binarized_dir):
    # /dev/shm is each host's own: a directory of that name exists on both hosts but is not shared.
    assert two_hosts.run("node2", "mkdir -p /dev/shm/xlmr-ds-ckpt", timeout=30).returncode == 0
    result = two_hosts.run("node1", f"mkdir -p /dev/shm/xlmr-ds-ckpt && xlmr-ds launch check --hostfile "
                                    f"hostfiles/two_nodes_cpu --data {binarized_dir} --save /dev/shm/xlmr-ds-ckpt",
                           timeout=120)
    assert result.returncode == 1, result.output
    assert result.stderr.strip() == "xlmr-ds: error: launch check: 1 problem(s) on node2; see the list above"
    assert ("  node2: --save /dev/shm/xlmr-ds-ckpt is not the directory this machine sees (a file written here is "
            "missing there); all ranks write one checkpoint: use shared storage") in result.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:4]}
    assert rows["node1"][-1] == "shared" and rows["node2"][-2:] == ["PROBLEM", "*"]


DEEPSPEED = ('deepspeed --hostfile "$HOSTFILE" --master_addr node1 --module xlmr_ds.train --deepspeed_config '
             'ds_configs/tiny_cpu_zero2.json --model tiny --block-size 64 --steps 4 --data "$DATA" --save "$CKPT"')

# node3 resolves on both hosts to an address nobody holds: ssh gets "No route to host" in about 3 s.
UNREACHABLE = [
    # (id, hostfile, command (HOSTFILE, DATA, CKPT set), seconds at most, what the output must say)
    ("launch check", "node1 slots=1\nnode3 slots=1\n",
     'xlmr-ds launch check --hostfile "$HOSTFILE" --data "$DATA" --ssh-timeout 3', 30,
     ["node3: unreachable by ssh (timeout 3 s): ssh: connect to host node3 port 22",
      "xlmr-ds: error: launch check: 1 problem(s) on node3; see the list above"]),
    ("the manual's launch", "node1 slots=1\nnode3 slots=1\n", None, 60,
     ["node3: unreachable by ssh (timeout 5 s)"]),
    ("deepspeed, first host down", "node3 slots=1\nnode1 slots=1\n",
     DEEPSPEED, 60,
     ["host=node3 was not reachable via ssh"]),
    ("deepspeed, second host down", "node1 slots=1\nnode3 slots=1\n",
     # The rank on node1 waits 15 s for its peer (fractions of a minute are allowed); starting it can take
     # minutes more when DeepSpeed's CPU comm op is (re)built first.
     DEEPSPEED + " --dist-timeout-minutes 0.25", 300,
     ["node3: ssh: connect to host node3 port 22: No route to host",
      "xlmr-ds train: error: the job's processes did not all connect within --dist-timeout-minutes=0.25"]),
]


@pytest.mark.parametrize("hostfile,command,seconds,expected", [c[1:] for c in UNREACHABLE],
                         ids=[c[0] for c in UNREACHABLE])
def test_an_unreachable_host_fails_in_bounded_time_naming_it(two_hosts, manual_environment, binarized_dir, tmp_path,
                                                             hostfile, command, seconds, expected):
    (tmp_path / "hostfile").write_text(hostfile)
    ckpt = tmp_path / "ckpt"
    result = two_hosts.run("node1", command or manual_block("train"), timeout=seconds + 60, env={
        "HOSTFILE": str(tmp_path / "hostfile"), "DATA": str(binarized_dir), "CKPT": str(ckpt)})
    assert result.returncode != 0, result.output[-6000:]
    assert result.seconds < seconds, result.output[-6000:]
    for text in expected:
        assert text in result.output, result.output[-6000:]
    assert not (ckpt / "metrics.jsonl").exists()  # no step was trained
