"""The block index as jobs build it: spread over processes (byte-identical to one process), meeting in a
heartbeat rather than one long barrier, failing together, and `xlmr-ds data index` / `data batches`."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xlmr_ds.dataset.block_index import BuildHeartbeat, assign_languages
from xlmr_ds.dataset.config import DataConfig
from xlmr_ds.dataset.loader import PretrainingData
from xlmr_ds.dataset.recipe import Recipe
from xlmr_ds.world import SingleProcess

MPIEXEC = str(Path(sys.executable).parent / "mpiexec")

ASSIGNMENT_CASES = [
    # (lines per language, processes, expected shares)
    ({"en": 10, "de": 5, "fr": 4, "sw": 1}, 1, [["en", "de", "fr", "sw"]]),
    ({"en": 10, "de": 5, "fr": 4, "sw": 1}, 2, [["en"], ["de", "fr", "sw"]]),
    ({"en": 10, "de": 5, "fr": 4, "sw": 1}, 3, [["en"], ["de"], ["fr", "sw"]]),
    ({"en": 10, "de": 5}, 4, [["en"], ["de"], [], []]),
    ({"a": 3, "b": 3, "c": 3}, 2, [["a", "c"], ["b"]]),  # ties: by name, so every process computes the same
]


@pytest.mark.parametrize("lines,processes,expected", ASSIGNMENT_CASES)
def test_languages_go_largest_first_to_the_least_loaded_process(lines, processes, expected):
    assert assign_languages(lines, processes) == expected


class CountingWorld(SingleProcess):
    def __init__(self):
        self.rounds = []

    def sum(self, values):
        self.rounds.append(list(values))
        return super().sum(values)


@pytest.mark.parametrize("seconds,advances,expected_rounds", [(0.0, 3, 4), (3600.0, 3, 1)])
def test_the_heartbeat_meets_between_chunks_once_its_interval_has_passed(seconds, advances, expected_rounds):
    world = CountingWorld()
    heartbeat = BuildHeartbeat(world, total_lines=30, seconds=seconds, progress=False)
    for _ in range(advances):
        heartbeat.advance(10)
    assert heartbeat.finish(failed=False) == 0
    assert len(world.rounds) == expected_rounds
    assert sum(lines for _, lines, _ in world.rounds) == 30  # every line reported once
    assert world.rounds[-1][0] == 0  # the last round: nobody builds


def _index_files(data: Path) -> dict[str, bytes]:
    (cache,) = [d for d in (data / ".index").iterdir() if not d.name.startswith(".")]
    return {p.name: p.read_bytes() for p in sorted(cache.iterdir())}


def _data_copy(binarized_dir: Path, path: Path) -> Path:
    import shutil

    shutil.copytree(binarized_dir, path, ignore=shutil.ignore_patterns(".index"))
    return path


@pytest.fixture(scope="module")
def one_process_index(binarized_dir, tmp_path_factory):
    data = _data_copy(binarized_dir, tmp_path_factory.mktemp("one") / "data")
    result = subprocess.run([sys.executable, "-m", "xlmr_ds", "data", "index", "--data", str(data),
                             "--block-size", "64"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.search(r"block size 64: [\d,]+ lines in [\d.]+ s with 1 process: ", result.stdout), result.stdout
    return data


@pytest.mark.multiprocess
@pytest.mark.parametrize("processes", [2, 3])
def test_an_index_built_by_several_processes_is_byte_identical(one_process_index, binarized_dir, tmp_path,
                                                              processes):
    data = _data_copy(binarized_dir, tmp_path / "data")
    result = subprocess.run([MPIEXEC, "-n", str(processes), sys.executable, "-m", "xlmr_ds", "data", "index",
                             "--data", str(data), "--block-size", "64"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert f"with {processes} processes" in result.stdout
    assert _index_files(data) == _index_files(one_process_index)
    assert [p.name for p in (data / ".index").iterdir()] == [next(iter((data / ".index").iterdir())).name]
    again = subprocess.run([sys.executable, "-m", "xlmr_ds", "data", "index", "--data", str(data), "--block-size",
                            "64"], capture_output=True, text=True, timeout=120)
    assert "already built" in again.stdout


# Run under mpiexec -n 2: rank 0 packs slowly (a pause per chunk of 16 lines); every process records the longest
# it spent inside one collective. `fail` makes rank 1 fail on its first language instead.
BUILD_SCRIPT = """
import json, sys, time
from pathlib import Path
from xlmr_ds.dataset import block_index
from xlmr_ds.dataset.manifest import read_manifest
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.world import MPIWorld

world = MPIWorld()
data, mode = Path(sys.argv[1]), sys.argv[2]

class Timed:
    def __init__(self, world):
        self.world, self.rank, self.size, self.longest = world, world.rank, world.size, 0.0
    def sum(self, values):
        started = time.monotonic()
        result = self.world.sum(values)
        self.longest = max(self.longest, time.monotonic() - started)
        return result
    def broadcast_object(self, value, source=0):
        return self.world.broadcast_object(value, source)
    def barrier(self):
        self.world.barrier()

packed_chunks = block_index.packed_chunks
def slow_chunks(*args, **kwargs):
    for chunk in packed_chunks(*args, **{**kwargs, "chunk_lines": 16}):
        if world.rank == 0:
            time.sleep(0.02)
        yield chunk
block_index.packed_chunks = slow_chunks
if mode == "fail" and world.rank == 1:
    def failing(*args, **kwargs):
        raise XLMRDSError("rank 1 cannot read its language")
    block_index.write_language_tables = failing

languages = sorted(read_manifest(data)["languages"])
timed = Timed(world)
started = time.monotonic()
try:
    block_index.build_cache(data, data / ".index" / "key", languages, 64, 0.005, 0, timed, heartbeat_seconds=0.2)
    outcome = "built"
except XLMRDSError as error:
    outcome = str(error)
ranks = world.gather({"rank": world.rank, "longest": timed.longest, "seconds": time.monotonic() - started,
                      "outcome": outcome})
if world.rank == 0:
    print(json.dumps(ranks))
"""


def _run_build(data: Path, mode: str) -> list[dict]:
    result = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-c", BUILD_SCRIPT, str(data), mode],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.multiprocess
def test_no_process_waits_in_one_collective_for_the_whole_build(binarized_dir, tmp_path):
    data = _data_copy(binarized_dir, tmp_path / "data")
    ranks = _run_build(data, "build")
    assert [r["outcome"] for r in ranks] == ["built", "built"]
    waiting = ranks[1]  # done long before rank 0, it met rank 0's heartbeats instead of one barrier
    assert waiting["longest"] < waiting["seconds"] / 4, ranks  # rounds 0.2 s apart in a build of seconds
    assert json.loads((data / ".index" / "key" / "complete.json").read_text())["block_size"] == 64


@pytest.mark.multiprocess
def test_a_process_that_fails_stops_the_others_and_leaves_no_cache(binarized_dir, tmp_path):
    data = _data_copy(binarized_dir, tmp_path / "data")
    ranks = _run_build(data, "fail")
    assert ranks[1]["outcome"] == "rank 1 cannot read its language"
    assert "1 other process(es) failed building the block index" in ranks[0]["outcome"]
    assert list((data / ".index").iterdir()) == []  # the staging directory is gone, no cache


def _batches_rows(stdout: str) -> list[list[str]]:
    lines = stdout.splitlines()
    return [line.split()[:6] for line in lines[1:] if line and line[0].isdigit()]


@pytest.mark.parametrize("start,count,global_batch", [(0, 5, 8), (1_000_003, 4, 8192)])
def test_data_batches_shows_what_the_loader_gives(one_process_index, start, count, global_batch):
    result = subprocess.run([sys.executable, "-m", "xlmr_ds", "data", "batches", "--data", str(one_process_index),
                             "--block-size", "64", "--start-sample", str(start), "--count", str(count),
                             "--global-batch", str(global_batch), "--seed", "3"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    data = PretrainingData(DataConfig(str(one_process_index), block_size=64, seed=3), Recipe.single_phase(1 << 40),
                           global_batch)
    expected = []
    for sample in range(start, start + count):
        language, block = data.order[sample]
        tokens = data.block_tokens(data.languages[language], 0, block)
        expected.append([f"{sample:,}", f"{sample // global_batch:,}", "xlmr", data.languages[language],
                         f"{block:,}", f"{len(tokens):,}"])
        assert np.array_equal(tokens, data.train_sample(sample, masked=False)["input_ids"])
    assert _batches_rows(result.stdout) == expected
