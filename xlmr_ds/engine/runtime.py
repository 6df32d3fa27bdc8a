"""The distributed runtime every job runs on: pretraining, fine-tuning and the bench start it the same way.

`Runtime.start` joins the process group once: DeepSpeed's accelerator chosen before DeepSpeed is imported, the
job's timeout, the rendezvous port (a process alone meets on a free port of its own), this process's device
(on a GPU the local rank's, set as the current CUDA device), and the process's seed. The runtime then owns what
a job needs around its loop: the progress watchdog (`beat`), the stop request (SIGTERM/SIGINT, `stop_requested`),
teardown (`shut_down`), and every collective the project makes (`sum`, `max`, `gather_objects`,
`broadcast_object`, `barrier`); no other module calls a torch.distributed collective (tests/test_runtime.py walks
the source).

Where a collective's tensor lives: NCCL has no CPU collectives ("No backend type associated with device type
cpu"), gloo has CPU ones. Each collective puts its tensor on the device the backend serves, as torch.distributed
records it per backend (`Backend.backend_capability`): the CPU when the backend takes CPU tensors (gloo, the
CPU runs), else this process's accelerator device (NCCL); and it reads the result back to the host once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from xlmr_ds.accelerator import select_deepspeed_accelerator
from xlmr_ds.engine.guards.stop_request import StopRequest
from xlmr_ds.engine.guards.teardown import release_shared_memory_buffer, shut_down_process_group
from xlmr_ds.engine.guards.watchdog import TRAINING_RESTART, ProgressWatchdog
from xlmr_ds.logs import library_output_silenced
from xlmr_ds.world import launcher_local_rank, rendezvous_port


def collective_device(backend: str, device: torch.device) -> torch.device:
    """Where a collective's tensors must be for `backend`: the CPU where it takes CPU tensors, else `device`
    (the process's accelerator device, which NCCL needs)."""
    capability = dist.Backend.backend_capability.get(str(backend).lower(), ["cpu"])
    return torch.device("cpu") if "cpu" in capability else device


class Runtime:
    """One process of a distributed job (see the module docstring). `Runtime.start` makes one; the job calls
    `shut_down` at its end."""

    def __init__(self, rank: int, world_size: int, device: torch.device, timeout_minutes: float,
                 stop: StopRequest | None = None, job: str = "xlmr-ds train"):
        self.rank, self.world_size = rank, world_size
        self.device = device
        """Where this process computes: cuda:<local rank> on a GPU, else the CPU."""
        self.collective_device = collective_device(dist.get_backend(), device)
        """Where the collectives' tensors go (see collective_device)."""
        self.timeout_minutes = timeout_minutes
        self.stop = stop
        """SIGTERM/SIGINT handling (installed by `start`)."""
        self.job = job
        """How the job names itself in its errors (`xlmr-ds train`, `xlmr-ds finetune`)."""
        self._watchdog: ProgressWatchdog | None = None

    @property
    def size(self) -> int:
        """The world size, under the name the data code's worlds use (xlmr_ds/world.py)."""
        return self.world_size

    @classmethod
    def start(cls, timeout_minutes: float = 30.0, seed: int | None = None, job: str = "xlmr-ds train") -> Runtime:
        """Join the job's process group (one process without a launcher) and pick this process's device."""
        select_deepspeed_accelerator()
        import deepspeed

        if torch.cuda.is_available():  # before the group starts: NCCL binds each process to its current device
            torch.cuda.set_device(launcher_local_rank())
        with library_output_silenced():  # "deepspeed_shm_comm_op built successfully", from every process
            deepspeed.init_distributed(timeout=timedelta(minutes=timeout_minutes),
                                       distributed_port=rendezvous_port())
        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() \
            else torch.device("cpu")
        if seed is not None:
            torch.manual_seed(seed)
        return cls(dist.get_rank(), dist.get_world_size(), device, timeout_minutes, StopRequest(), job)

    @property
    def backend(self) -> str:
        return str(dist.get_backend())

    # ---- collectives ---------------------------------------------------------------------------------
    def _reduce(self, values: Sequence[float], op: dist.ReduceOp) -> list[float]:
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self.collective_device)
        dist.all_reduce(tensor, op=op)
        return tensor.tolist()  # the one host synchronization

    def sum(self, values: Sequence[float]) -> list[float]:
        """Each value summed over the processes, in one all-reduce."""
        return self._reduce(values, dist.ReduceOp.SUM)

    def max(self, values: Sequence[float]) -> list[float]:
        """Each value's maximum over the processes, in one all-reduce."""
        return self._reduce(values, dist.ReduceOp.MAX)

    def sum_tensor(self, tensor: torch.Tensor) -> list[float]:
        """A float64 tensor already on the device (a step's totals, summed there without a host sync per
        micro-batch), summed over the processes and read back once."""
        tensor = tensor.to(self.collective_device, dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather_objects(self, value: Any) -> list[Any]:
        """Every process's `value` (small, picklable), in rank order, on every process."""
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def broadcast_object(self, value: Any, source: int = 0) -> Any:
        """`value` of process `source`, on every process."""
        holder = [value]
        dist.broadcast_object_list(holder, src=source, device=self.collective_device)
        return holder[0]

    def barrier(self) -> None:
        """Wait until every process is here: a sum of one number on the collective device, read back by the
        host (torch's own barrier guesses a device for a backend it does not know, and under NCCL returns
        before the GPU has synchronized)."""
        self.sum([0.0])

    # ---- guards --------------------------------------------------------------------------------------
    def start_watchdog(self, restart: str = TRAINING_RESTART) -> None:
        """From here on, a process without a `beat` for the job's timeout exits (guards/watchdog.py); `restart`
        says what running the job again does, for its message."""
        if self._watchdog is None:
            self._watchdog = ProgressWatchdog(self.timeout_minutes * 60, self.rank, self.world_size, self.job,
                                              restart)

    def stop_watchdog(self) -> None:
        """No more watching (a job of several runs in one process, e.g. a transfer sweep, between its runs)."""
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None

    def beat(self, activity: str) -> None:
        """Progress was made; `activity` names what comes next, for the watchdog's message."""
        if self._watchdog is not None:
            self._watchdog.beat(activity)

    @property
    def stop_requested(self) -> bool:
        """Whether SIGTERM or SIGINT reached this process (not yet agreed with the others: sum it in a
        collective so that every process stops at the same step)."""
        return self.stop is not None and self.stop.requested

    def shut_down(self) -> None:
        """This process's end of the job: the watchdog stopped, shared memory released, the group destroyed."""
        self.beat("shutting down")
        release_shared_memory_buffer()
        shut_down_process_group()
        self.stop_watchdog()
