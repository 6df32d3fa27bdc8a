"""Preemption: SIGTERM or SIGINT (what SLURM and Ctrl-C send) asks the run to stop at the next step boundary.

The handler only sets a flag; the trainer all-reduces it with the step's other totals, so every rank sees
the request at the same step, saves one checkpoint there and exits cleanly.
"""

from __future__ import annotations

import signal


class StopRequest:
    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True
