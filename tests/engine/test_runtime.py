"""The distributed runtime (xlmr_ds/engine/runtime.py): every collective of the project is its, each puts its
tensors where the backend takes them, and the values are right on one process and on several.

NCCL cannot be run without a GPU, but what makes it crash can: it has no CPU collectives. A backend registered
with torch.distributed for the "cuda" device type only (gloo underneath) refuses a CPU tensor with NCCL's own
error, "No backend type associated with device type cpu". The trainer's end-of-run memory gather, the
fine-tuner's per-step all-reduce and the bench's all-reduce and broadcast all failed so before the runtime.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from launch import environment

from xlmr_ds.engine.runtime import Runtime, collective_device

ROOT = Path(__file__).resolve().parents[2]
NCCL_REFUSAL = "No backend type associated with device type cpu"

COLLECTIVES = {"all_reduce", "all_gather", "all_gather_object", "all_gather_into_tensor", "broadcast",
               "broadcast_object_list", "barrier", "monitored_barrier", "reduce", "reduce_scatter",
               "reduce_scatter_tensor", "gather", "gather_object", "scatter", "scatter_object_list", "all_to_all",
               "all_to_all_single", "send", "recv", "isend", "irecv"}
DISTRIBUTED_MODULES = {"torch.distributed", "deepspeed.comm"}
RUNTIME = ROOT / "xlmr_ds" / "engine" / "runtime.py"


def _collective_calls(path: Path) -> list[str]:
    """`line: name` of each torch.distributed / deepspeed.comm collective the module calls."""
    tree = ast.parse(path.read_text(), str(path))
    aliases, direct = set(), set()  # names bound to the modules; collectives imported by name
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for name in node.names:
                if name.name in DISTRIBUTED_MODULES:
                    aliases.add(name.asname or name.name)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for name in node.names:
                if f"{node.module}.{name.name}" in DISTRIBUTED_MODULES:
                    aliases.add(name.asname or name.name)
                elif node.module in DISTRIBUTED_MODULES and name.name in COLLECTIVES:
                    direct.add(name.asname or name.name)
    calls = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        if isinstance(function, ast.Attribute) and function.attr in COLLECTIVES:
            owner = ast.unparse(function.value)
            if owner in aliases or owner in DISTRIBUTED_MODULES:
                calls.append(f"{node.lineno}: {owner}.{function.attr}")
        elif isinstance(function, ast.Name) and function.id in direct:
            calls.append(f"{node.lineno}: {function.id}")
    return calls


def test_the_walk_finds_collectives_written_every_way(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import torch\nimport torch.distributed as dist\nfrom torch.distributed import barrier as b\n"
                      "from deepspeed import comm\ndist.all_reduce(t)\ntorch.distributed.broadcast(t, 0)\nb()\n"
                      "comm.all_gather_object(x, y)\nworld.barrier()\n")
    assert _collective_calls(module) == ["5: dist.all_reduce", "6: torch.distributed.broadcast", "7: b",
                                         "8: comm.all_gather_object"]


def test_no_collective_is_called_outside_the_runtime():
    sources = [p for folder in ("xlmr_ds", "kernels") for p in (ROOT / folder).rglob("*.py")
               if p != RUNTIME and "kernels" not in p.relative_to(ROOT / folder).parts[:1]]
    found = {str(p.relative_to(ROOT)): calls for p in sources if (calls := _collective_calls(p))}
    assert found == {}, "collectives outside xlmr_ds/engine/runtime.py (make them the runtime's)"
    assert _collective_calls(RUNTIME), "the walk should find the runtime's own collectives"


@pytest.fixture
def refusing_cpu_group():
    """A one-process group whose backend takes CUDA tensors only, as NCCL does (gloo underneath)."""
    if "refuses_cpu" not in dist.Backend.backend_list:
        dist.Backend.register_backend(
            "refuses_cpu", lambda store, rank, size, timeout: dist.ProcessGroupGloo(store, rank, size, timeout),
            devices=["cuda"])
    dist.init_process_group("refuses_cpu", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_the_refusing_backend_fails_a_cpu_tensor_as_nccl_does(refusing_cpu_group):
    with pytest.raises(RuntimeError, match=NCCL_REFUSAL):
        dist.all_reduce(torch.ones(2))


# Each collective of the runtime, called as the jobs call it.
CALLS = {
    "sum": lambda runtime: runtime.sum([1.0, 2.0]),
    "max": lambda runtime: runtime.max([1.0]),
    "sum_tensor": lambda runtime: runtime.sum_tensor(torch.ones(3, dtype=torch.float64)),
    "gather_objects": lambda runtime: runtime.gather_objects({"rng": "state"}),
    "broadcast_object": lambda runtime: runtime.broadcast_object(0.25),
    "barrier": lambda runtime: runtime.barrier(),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_every_collective_puts_its_tensors_where_a_cuda_only_backend_takes_them(refusing_cpu_group, call):
    # On a GPU machine this process's device is cuda:<local rank>; here there is no CUDA, so a collective that
    # puts its tensor there fails on the missing GPU, never on the backend's refusal of a CPU tensor.
    runtime = Runtime(0, 1, torch.device("cuda", 0), timeout_minutes=1.0)
    assert runtime.collective_device == torch.device("cuda", 0)
    with pytest.raises((RuntimeError, AssertionError)) as raised:
        call(runtime)
    assert NCCL_REFUSAL not in str(raised.value)
    assert "CUDA" in str(raised.value) or "cuda" in str(raised.value) or "NVIDIA" in str(raised.value)


@pytest.mark.parametrize("backend,device,expected", [
    ("gloo", torch.device("cpu"), torch.device("cpu")),
    ("gloo", torch.device("cuda", 1), torch.device("cpu")),  # gloo takes CPU tensors: no copy to the GPU
    ("nccl", torch.device("cuda", 1), torch.device("cuda", 1)),
])
def test_the_collective_device_is_the_backends(backend, device, expected):
    assert collective_device(backend, device) == expected


WORKER = """
import json
import torch
from xlmr_ds.engine.runtime import Runtime
runtime = Runtime.start(timeout_minutes=1.0)
rank = runtime.rank
answers = {
    "sum": runtime.sum([rank + 1.0, 10.0]),
    "max": runtime.max([float(rank), -1.0]),
    "sum_tensor": runtime.sum_tensor(torch.tensor([0.5, rank], dtype=torch.float64)),
    "gather_objects": runtime.gather_objects({"rank": rank}),
    "broadcast_object": runtime.broadcast_object(f"from rank {rank}"),
    "collective_device": str(runtime.collective_device),
}
runtime.barrier()
runtime.shut_down()
if rank == 0:
    print(json.dumps(answers))
"""


@pytest.mark.multiprocess
@pytest.mark.parametrize("processes", [1, 2])
def test_collectives_give_the_same_answers_on_every_process(processes):
    env = {**environment(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(29400 + os.getpid() % 97),
           "WORLD_SIZE": str(processes)}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(processes)]
    outputs = [w.communicate(timeout=180) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err[-2000:] for _, err in outputs]
    answers = json.loads(outputs[0][0].strip().splitlines()[-1])
    ranks = range(processes)
    assert answers == {
        "sum": [sum(r + 1.0 for r in ranks), 10.0 * processes],
        "max": [processes - 1.0, -1.0],
        "sum_tensor": [0.5 * processes, float(sum(ranks))],
        "gather_objects": [{"rank": r} for r in ranks],
        "broadcast_object": "from rank 0",
        "collective_device": "cpu",
    }


LOCAL_RANKS = [
    ({}, 0),                                                      # alone
    ({"LOCAL_RANK": "3"}, 3),                                     # deepspeed, torchrun
    ({"OMPI_COMM_WORLD_LOCAL_RANK": "2"}, 2),                     # Open MPI's mpiexec
    ({"MPI_LOCALRANKID": "1"}, 1),                                # MPICH / Intel MPI (Hydra)
    ({"SLURM_LOCALID": "5"}, 5),                                  # srun
    ({"LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_RANK": "0"}, 1),  # the launcher's own variable first
    ({"LOCAL_RANK": "", "MPI_LOCALRANKID": "4"}, 4),              # an empty variable is not a rank
]


@pytest.mark.parametrize("variables,expected", LOCAL_RANKS)
def test_each_process_takes_the_gpu_of_its_local_rank_under_every_launcher(monkeypatch, variables, expected):
    """The device is chosen before the process group starts, when under mpiexec DeepSpeed has not yet set
    LOCAL_RANK: without the MPI variables every process of a node would take GPU 0."""
    from xlmr_ds.world import LOCAL_RANK_VARIABLES, launcher_local_rank

    for name in LOCAL_RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert launcher_local_rank() == expected
