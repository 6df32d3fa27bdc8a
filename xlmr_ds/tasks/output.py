"""A command's --out directory written as a whole: it appears complete or not at all."""

from __future__ import annotations

import shutil
from pathlib import Path

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.outputs import check_output_directory, listed, staging_directory


class StagedOutput:
    """--out written as a whole: files go into a staging directory beside it, renamed into place at the end.
    An --out that exists must be an earlier result of the same command (it holds `marker`), never other files.
    `enabled` is False on the ranks other than 0, which write nothing."""

    def __init__(self, out: str | Path, enabled: bool, marker: str = "results.json"):
        self.out = Path(out)
        self.enabled = enabled
        self.check(out, marker)
        self.path = None
        if enabled:
            self.path = staging_directory(self.out)

    @staticmethod
    def check(out: str | Path, marker: str = "results.json") -> None:
        """Refuse an --out that holds anything but an earlier result, before any work is done."""
        out = check_output_directory(out, "--out")
        if out.is_dir() and listed(out) and not (out / marker).is_file():
            raise XLMRDSError(f"--out {out}: exists and is not an earlier result (no {marker}); "
                              f"choose a new directory")

    def commit(self) -> None:
        if not self.enabled:
            return
        if self.out.exists():
            shutil.rmtree(self.out)
        self.path.rename(self.out)

    def discard(self) -> None:
        if self.enabled and self.path is not None and self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)
