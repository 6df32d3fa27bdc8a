"""Train an XLM-R masked language model with DeepSpeed.

    # one machine, 2 processes (on CPU: DS_ACCELERATOR=cpu, chosen automatically without a GPU)
    deepspeed --num_gpus 2 --module xlmr_ds.train --deepspeed_config ds_configs/tiny_cpu_zero2.json \\
        --data runs/demo/data --model tiny --steps 100 --save runs/demo/ckpt
    # several nodes
    deepspeed --hostfile hostfiles/two_nodes --module xlmr_ds.train --deepspeed_config ... --data ... --save ...
    # MPI, or a single process
    mpiexec -n 2 python -m xlmr_ds.train --deepspeed_config ... --data ...
    python -m xlmr_ds.train --deepspeed_config ... --data ...
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.model import PRESETS


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"xlmr_ds.train: error: {message} (see python -m xlmr_ds.train --help)\n")


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value} must be more than 0")
    return number


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="xlmr_ds.train", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deepspeed_config", required=True, metavar="FILE", help="DeepSpeed JSON config")
    parser.add_argument("--data", required=True, metavar="OUT", help="an `xlmr-ds binarize` output directory")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", choices=list(PRESETS), default="tiny", help="model preset (default tiny)")
    model.add_argument("--model-config", metavar="FILE", help="JSON file of XLMRConfig fields")
    parser.add_argument("--steps", type=_positive, required=True, help="optimizer steps to reach")
    parser.add_argument("--exit-at-step", type=_positive, metavar="K",
                        help="save and exit once step K is done (time-limited jobs); --steps still sets the "
                             "schedule's length, so a later run continues the same learning-rate curve")
    parser.add_argument("--save", metavar="DIR", help="checkpoints, metrics.jsonl and monitor output")
    parser.add_argument("--metrics-file", metavar="FILE",
                        help="where metrics.jsonl goes (default: --save/metrics.jsonl; this allows one without --save)")
    parser.add_argument("--save-every", type=_non_negative, default=0, metavar="K", help="save every K steps")
    parser.add_argument("--eval-every", type=_non_negative, default=0, metavar="K",
                        help="per-language validation every K steps (and before the first step)")
    parser.add_argument("--eval-samples", type=_positive, default=32, help="validation blocks per language")
    parser.add_argument("--keep", type=_non_negative, default=0, metavar="K",
                        help="keep the newest K complete checkpoints (0: keep all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-from", metavar="HF_DIR", help="start from Hugging Face weights, fresh optimizer")
    parser.add_argument("--resume", default="auto", metavar="auto|none|PATH",
                        help="auto: newest complete checkpoint in --save (default)")
    parser.add_argument("--valid-fraction", type=float, default=0.005,
                        help="share of each language's documents held out for validation (default 0.005)")
    parser.add_argument("--block-size", type=_positive, default=512, help="tokens per sequence (default 512)")
    parser.add_argument("--activation-checkpointing", action="store_true", help="recompute blocks in backward")
    parser.add_argument("--num-workers", type=_non_negative,
                        help="DataLoader worker processes (default: 2 on a GPU, so that batches are ready before "
                             "the step needs them; 0 on CPU, where the cores are the model's)")
    parser.add_argument("--peak-tflops", type=float, help="device peak for MFU (default: from the GPU's name)")
    parser.add_argument("--dist-timeout-minutes", type=_positive_float, default=30, metavar="M",
                        help="a process that makes no progress for M minutes (a collective waiting on a dead or hung "
                             "peer) exits, so the job ends instead of hanging (default 30; fractions allowed)")
    parser.add_argument("--nonfinite-loss", choices=("stop", "skip"), default="stop",
                        help="a NaN/inf loss: stop the job naming the step (default), or skip the step and count it "
                             "in metrics; the model is never updated from it (with fp16 the loss scaler skips)")
    parser.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)),
                        help=argparse.SUPPRESS)  # added by the deepspeed launcher
    return parser


def _launcher_rank() -> tuple[str, str] | None:
    """(rank, world size) as the launcher set them (deepspeed/torchrun, MPICH, Open MPI); None when alone."""
    for rank, size in (("RANK", "WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE"),
                       ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE")):
        if rank in os.environ and os.environ.get(size, "1") != "1":
            return os.environ[rank], os.environ[size]
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    placed = _launcher_rank()
    if placed:
        # The only record of which host each rank of a multi-node job landed on.
        print(f"[xlmr-ds] rank {placed[0]} of {placed[1]} on {socket.gethostname()}", flush=True)
    from torch.distributed import DistNetworkError, DistStoreError

    from xlmr_ds.engine.trainer import run

    prefix = f"[rank {placed[0]}] " if placed else ""
    try:
        return run(args)
    except XLMRDSError as error:
        print(f"{prefix}xlmr_ds.train: error: {error}", file=sys.stderr)
        return 1
    except (DistStoreError, DistNetworkError) as error:
        # Raised while the processes meet (rendezvous), typically because a host never started its ranks.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"{prefix}xlmr_ds.train: error: the job's processes did not all connect within "
              f"--dist-timeout-minutes={args.dist_timeout_minutes}: {first_line}; if a host never started its "
              f"ranks, the launcher printed why above (`xlmr-ds launch check --hostfile FILE` finds such hosts "
              f"in seconds)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    exit_code = main()
    # Not SystemExit: a finished job skips the interpreter's teardown, where gloo's worker threads can abort
    # the process after everything was written (xlmr_ds/engine/teardown.py says why).
    from xlmr_ds.engine.teardown import exit_process

    exit_process(exit_code)
