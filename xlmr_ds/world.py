"""Which process this is, and the process group of a data job (binarization, index building): MPI when
launched by mpiexec, else one process (a training job passes its own runtime, engine/runtime.py, instead).

Only the few collectives the data code needs, so it reads the same with one rank or many. MPI is imported
only under an MPI launcher: importing mpi4py initializes MPI, which a torch.distributed job must not pay for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from xlmr_ds.errors import XLMRDSError

T = TypeVar("T")

_MPI_LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")


def launcher_placement() -> tuple[int, int] | None:
    """(global rank, world size) as the launcher set them (deepspeed/torchrun, MPICH, Open MPI); None when
    this process is alone."""
    for rank, size in (("RANK", "WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE"),
                       ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE")):
        if rank in os.environ and os.environ.get(size, "1") != "1":
            return int(os.environ[rank]), int(os.environ[size])
    return None


def free_port() -> int:
    """A TCP port nobody listens on now, for a job that starts its own rendezvous."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


DEFAULT_RENDEZVOUS_PORT = 29500
"""torch.distributed's and DeepSpeed's default port."""


def rendezvous_port() -> int:
    """The port a training job's processes meet on: the launcher's MASTER_PORT; for a process alone without
    one, a free port (DeepSpeed would take 29500, which another job on the machine may hold); else the default,
    the same on every rank."""
    if "MASTER_PORT" in os.environ:
        return int(os.environ["MASTER_PORT"])
    return free_port() if launcher_placement() is None else DEFAULT_RENDEZVOUS_PORT


LOCAL_RANK_VARIABLES = ("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK",
                        "SLURM_LOCALID")
"""Where launchers put a process's rank on its node: deepspeed and torchrun, Open MPI, MPICH and Intel MPI's
Hydra, PMI-2 launchers, srun. Under mpiexec DeepSpeed sets LOCAL_RANK only inside init_distributed, after the
device must be chosen."""


def launcher_local_rank() -> int:
    """This process's rank on its node as the launcher set it (0 when alone): the GPU it takes."""
    for name in LOCAL_RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def launcher_rank() -> int:
    placed = launcher_placement()
    return placed[0] if placed else 0


def launched_by_mpi() -> bool:
    return any(name in os.environ for name in _MPI_LAUNCHER_VARIABLES)


class SingleProcess:
    rank, size = 0, 1

    def exscan_sum(self, value: int) -> int:
        return 0

    def allreduce_sum(self, value: int) -> int:
        return value

    def gather(self, value: Any) -> list[Any]:
        return [value]

    def bcast(self, value: Any) -> Any:
        return value

    def sum(self, values: Sequence[float]) -> list[float]:
        return [float(v) for v in values]

    def broadcast_object(self, value: Any, source: int = 0) -> Any:
        return value

    def barrier(self) -> None:
        pass

    def abort(self, code: int) -> None:
        raise SystemExit(code)


class MPIWorld:
    def __init__(self) -> None:
        from mpi4py import MPI

        self._mpi = MPI
        self._comm = MPI.COMM_WORLD
        self.rank, self.size = self._comm.Get_rank(), self._comm.Get_size()

    def exscan_sum(self, value: int) -> int:
        """Sum of `value` over the ranks before this one (0 on rank 0, where MPI leaves it undefined)."""
        result = self._comm.exscan(value, op=self._mpi.SUM)
        return 0 if self.rank == 0 else result

    def allreduce_sum(self, value: int) -> int:
        return self._comm.allreduce(value, op=self._mpi.SUM)

    def gather(self, value: Any) -> list[Any] | None:
        return self._comm.gather(value, root=0)

    def bcast(self, value: Any) -> Any:
        return self._comm.bcast(value, root=0)

    def sum(self, values: Sequence[float]) -> list[float]:
        """Each value summed over the ranks, in one all-reduce (the runtime's `sum`, under mpiexec)."""
        return [float(v) for v in self._comm.allreduce(np.asarray(values, dtype=np.float64), op=self._mpi.SUM)]

    def broadcast_object(self, value: Any, source: int = 0) -> Any:
        return self._comm.bcast(value, root=source)

    def barrier(self) -> None:
        self._comm.Barrier()

    def abort(self, code: int) -> None:
        """End every rank: one rank's user error must not leave the others waiting in a collective."""
        self._comm.Abort(code)


def data_world() -> SingleProcess | MPIWorld:
    return MPIWorld() if launched_by_mpi() else SingleProcess()


def fail_together(world, work: Callable[[], T]) -> T:
    """work() on every rank. An input error is often found by the one rank that reads the bad part; the ranks
    agree before going on, so that none waits forever in a collective for one that gave up: every rank raises
    the first error in rank order."""
    try:
        result, error = work(), None
    except XLMRDSError as raised:
        result, error = None, str(raised)
    errors = world.gather(error)
    first = world.bcast(next((e for e in errors if e), None) if world.rank == 0 else None)
    if first:
        raise XLMRDSError(first)
    return result


def everyone(world, value: Any) -> list[Any]:
    """Every rank's value, in rank order, on every rank."""
    return world.bcast(world.gather(value))
