"""<save>/metrics.jsonl: one JSON object per optimizer step and one per evaluation, written by rank 0.

Resuming from step N first drops the lines after step N (work a dead run did after its last checkpoint),
so the file always tells the history of the model that exists.
"""

from __future__ import annotations

import json
from pathlib import Path

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.outputs import write_text_atomically


class MetricsLog:
    def __init__(self, path: Path, enabled: bool):
        self.path = path
        self.enabled = enabled

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        write_text_atomically(self.path, "".join(line + "\n" for line in kept))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as out:
                out.write(json.dumps(record) + "\n")
        except OSError as error:
            raise XLMRDSError(f"{self.path}: cannot append metrics ({error.strerror}); free space there or choose "
                              f"another --metrics-file; checkpoints already complete are not affected") from None


def read_metrics(path: str | Path, kind: str = "train") -> list[dict]:
    return [record for record in map(json.loads, Path(path).read_text().splitlines()) if record["type"] == kind]
