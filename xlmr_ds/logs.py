"""One logging set-up for every command: our lines on rank 0 through one logger, progress bars on rank 0
only, and the libraries' noise that a user cannot act on silenced where it starts.

`configure_logging` is called once by each entry point (cli/main.py, cli/train.py); `log` and
`progress_bar` are what the rest of xlmr-ds uses. Silenced unless verbose (`-v`, or XLMR_DS_VERBOSE=1, which
the launchers pass on to every rank and DeepSpeed's own launcher process):

- DeepSpeed's logger below ERROR: its INFO banners and WARNINGs such as "Attempting to get learning rate
  from scheduler before it has started" (every step of a warmup that starts at step 0; our metrics show the
  learning rate) or "Unable to find hostfile" (a one-node launch is what was asked for);
- torch.distributed's FutureWarning about all_gather_into_tensor (DeepSpeed's call, not ours);
- transformers' advisory warnings and its "Loading weights" bars (Hugging Face's progress bars are off), and
  the Python warnings a library raises about its own internals;
- what a library print()s inside `library_output_silenced` blocks: DeepSpeed's "deepspeed_shm_comm_op built
  successfully" from every process that starts a process group, and zero_to_fp32's lines and shard bar while
  a checkpoint is consolidated (export, eval, fine-tuning from a run).
Errors of any library still show (they are raised, not printed), and so does everything with verbose.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, redirect_stderr, redirect_stdout

from tqdm import tqdm

VERBOSE_ENV = "XLMR_DS_VERBOSE"
_LOGGER = logging.getLogger("xlmr_ds")
# Python warnings that a library raises about its own use of another library: nothing a user can change.
_LIBRARY_WARNINGS = (
    (FutureWarning, r".*all_gather_into_tensor.*"),
    (FutureWarning, r".*reduce_scatter_tensor.*"),
    (UserWarning, r".*TypedStorage is deprecated.*"),
    (FutureWarning, r".*`torch\.cuda\.amp\..*` is deprecated.*"),
    (FutureWarning, r".*torch\.cpu\.amp\.autocast.*"),
)


class _ErrorsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


class _TqdmHandler(logging.Handler):
    """Lines written between progress-bar refreshes, so that a bar never cuts a line in two."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stdout)
        except Exception:  # noqa: BLE001 - logging must never end the job; logging's own policy
            self.handleError(record)


def verbose_requested(verbose: bool | None = None) -> bool:
    return bool(verbose) or os.environ.get(VERBOSE_ENV, "0") not in ("", "0")


def configure_logging(rank: int = 0, verbose: bool | None = None) -> None:
    """Our logger prints on rank 0 only; the libraries' noise is silenced unless verbose (see the docstring)."""
    _LOGGER.handlers.clear()
    _LOGGER.propagate = False
    if rank == 0:
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter("[xlmr-ds] %(message)s"))
        _LOGGER.addHandler(handler)
        _LOGGER.setLevel(logging.INFO)
    else:
        _LOGGER.setLevel(logging.CRITICAL + 1)
    if verbose_requested(verbose):
        os.environ[VERBOSE_ENV] = "1"  # for the processes this one starts
        return
    # DeepSpeed's logger sets its own level when deepspeed is imported; a filter on the logger (found by name,
    # before or after that import) is kept.
    deepspeed_logger = logging.getLogger("DeepSpeed")
    if not any(isinstance(f, _ErrorsOnly) for f in deepspeed_logger.filters):
        deepspeed_logger.addFilter(_ErrorsOnly())
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # Read by huggingface_hub when transformers is imported (later, only by the commands that need it).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    for category, message in _LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


@contextmanager
def library_output_silenced(stderr: bool = False) -> Iterator[None]:
    """What a library print()s to stdout inside the block goes nowhere, unless verbose (the module docstring
    says where it is used); to stderr too with `stderr` (zero_to_fp32's shard bar). Never stderr around the
    start of a process group: DeepSpeed's op builders silence the compiler by redirecting the file descriptor
    behind sys.stderr, and with ours in its place the compiler's lines would reach the terminal instead."""
    if verbose_requested():
        yield
        return
    with open(os.devnull, "w") as sink, redirect_stdout(sink), (redirect_stderr(sink) if stderr else nullcontext()):
        yield


def log(message: str) -> None:
    """A line for the user, printed once per job (rank 0)."""
    _LOGGER.info(message)


def progress_bar(*, rank: int = 0, disable: bool = False, **kwargs) -> tqdm:
    """A tqdm bar shown on rank 0 only (and not at all with disable)."""
    return tqdm(disable=disable or rank != 0, **kwargs)


def whole_line(message: str, stream=None) -> None:
    """`message` and its newline on `stream` (stdout by default) in one write. print() writes the newline
    separately, and with PYTHONUNBUFFERED each write is a system call of its own, so the lines of several
    ranks sharing the launcher's pipe could run together ("...on node1[xlmr-ds] rank 1..."); one write of less
    than the pipe's atomic size (4 KiB) cannot."""
    stream = sys.stdout if stream is None else stream
    stream.write(f"{message}\n")
    stream.flush()


def error_line(message: str) -> None:
    """`message` on stderr as one whole line (see whole_line)."""
    whole_line(message, sys.stderr)
