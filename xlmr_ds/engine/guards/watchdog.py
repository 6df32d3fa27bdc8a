"""A progress watchdog: a training process that stops making progress exits instead of hanging for hours.

Why not only the process-group timeout: DeepSpeed runs ZeRO's collectives on groups it creates with
torch.distributed.new_group(), which take torch's default timeout (30 minutes for gloo), not the one given to
init_process_group; and a rank can also hang outside any collective (a stuck filesystem, a peer that stopped
but kept its sockets open). A killed peer usually shows up at once as a closed connection; a hung one only
through a timeout. So the training loop calls `beat()` at every micro-batch and around evaluation and saving,
and a daemon thread ends the process (os._exit: a thread blocked in a collective cannot be unwound) when no
beat came for `timeout_s`. The launcher then sees a failed rank and ends the others, and the next start
resumes from the newest complete checkpoint.
"""

from __future__ import annotations

import os
import threading
import time

from xlmr_ds.logs import error_line

EXIT_CODE = 124  # as `timeout` uses: the process was ended for taking too long


TRAINING_RESTART = "the job can be restarted, it resumes from the newest complete checkpoint"
"""What a restarted training job does, for the message."""


class ProgressWatchdog:
    def __init__(self, timeout_s: float, rank: int, world_size: int, job: str = "xlmr-ds train",
                 restart: str = TRAINING_RESTART):
        self.timeout_s = timeout_s
        self.rank, self.world_size = rank, world_size
        self.job, self.restart = job, restart
        self._last = time.monotonic()
        self._activity = "starting"
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="xlmr-ds-watchdog", daemon=True)
        self._thread.start()

    def beat(self, activity: str) -> None:
        """Progress was made; `activity` (e.g. "step 12") names what the process does next, for the message."""
        self._last = time.monotonic()
        self._activity = activity

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        poll = min(max(self.timeout_s / 20, 0.05), 5.0)
        while not self._stopped.wait(poll):
            idle = time.monotonic() - self._last
            if idle > self.timeout_s:
                self._expire(idle)

    def _expire(self, idle: float) -> None:
        prefix = f"[rank {self.rank}] " if self.world_size > 1 else ""
        shown = f"{idle:.{0 if idle >= 10 else 1}f}"
        error_line(f"{prefix}{self.job}: error: no progress for {shown} s during {self._activity} "
                   f"(limit {self.timeout_s:g} s, --dist-timeout-minutes): another process of the job has probably "
                   f"died or hangs; exiting so that {self.restart}")
        os._exit(EXIT_CODE)


def is_lost_peer(error: RuntimeError) -> bool:
    """A collective failed because a peer went away (gloo's words for a closed or silent connection): the
    quick way a dead peer shows itself, where a hung one needs the watchdog.

    The words are all there is to go by: gloo's collectives raise a plain RuntimeError with no errno and no
    torch.distributed error type (checked with torch 2.13: "[.../gloo/transport/tcp/pair.cc:553] Connection
    closed by peer ..." for a killed peer, "[.../unbound_buffer.cc:78] Timed out waiting 5000ms for recv
    ..." for a silent one). DistNetworkError and DistStoreError are typed, but they come from the rendezvous
    store, whose failures cli/train.py reports as processes that never connected."""
    text = str(error)
    return "gloo" in text and any(words in text for words in (
        "Connection reset by peer", "Connection closed by peer", "Broken pipe", "Timed out waiting"))
