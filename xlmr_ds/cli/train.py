"""Train an XLM-R masked language model with DeepSpeed: `xlmr-ds train`, and the launchers' module.

    # one machine, 2 processes (on CPU: DS_ACCELERATOR=cpu, chosen automatically without a GPU)
    deepspeed --num_gpus 2 --module xlmr_ds.train --deepspeed_config ds_configs/tiny_cpu_zero2.json \\
        --data runs/demo/data --model tiny --steps 100 --save runs/demo/ckpt
    # several nodes
    deepspeed --hostfile hostfiles/two_nodes --module xlmr_ds.train --deepspeed_config ... --data ... --save ...
    # MPI, or a single process
    mpiexec -n 2 python -m xlmr_ds.train --deepspeed_config ... --data ...
    python -m xlmr_ds.train --deepspeed_config ... --data ...      # the same as: xlmr-ds train ...

The flags map one to one onto xlmr_ds.config.RunConfig, built here and nowhere else.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket

from xlmr_ds.cli.arguments import (
    OneLineErrorParser,
    add_model_arguments,
    non_negative_int,
    output_directory,
    output_file,
    positive_float,
    positive_int,
)
from xlmr_ds.config import (
    DROPOUT_KEYS,
    NONFINITE_POLICIES,
    CheckpointSettings,
    LoggingSettings,
    ModelSettings,
    OptimizationSettings,
    PolicySettings,
    RunConfig,
)
from xlmr_ds.dataset.config import DataConfig
from xlmr_ds.dataset.recipe import load_recipe
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.logs import configure_logging, error_line, whole_line
from xlmr_ds.world import launcher_placement

PROG = "xlmr-ds train"
"""How the job names itself in its errors, however it was started: as every other command does."""
MODULE = "xlmr_ds.train"


def _default(settings: type, name: str):
    return {f.name: f.default for f in dataclasses.fields(settings)}[name]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deepspeed_config", required=True, metavar="FILE", help="DeepSpeed JSON config")
    parser.add_argument("--data", required=True, metavar="OUT", help="an `xlmr-ds binarize` output directory")
    add_model_arguments(parser, default=_default(ModelSettings, "preset"))
    # Not given is kept apart from the default preset: with --init-from the shape is the directory's, and only a
    # --model the user gave must agree with it (run_config puts the default in otherwise).
    parser.set_defaults(model=None)
    parser.add_argument("--steps", type=positive_int,
                        help="optimizer steps to reach (required without --recipe; with one, its length)")
    parser.add_argument("--recipe", metavar="FILE",
                        help="a JSON recipe of phases that change languages, alpha, mask rate, block size, batch size "
                             "and learning rate over the run (README: Recipes); default: XLM-R's single phase")
    parser.add_argument("--exit-at-step", type=positive_int, metavar="K",
                        help="save and exit once step K is done (time-limited jobs); --steps still sets the "
                             "schedule's length, so a later run continues the same learning-rate curve")
    parser.add_argument("--save", type=output_directory, metavar="DIR",
                        help="checkpoints, metrics.jsonl and monitor output")
    parser.add_argument("--metrics-file", type=output_file, metavar="FILE",
                        help="where metrics.jsonl goes (default: --save/metrics.jsonl; this allows one without --save)")
    parser.add_argument("--save-every", type=non_negative_int, default=_default(CheckpointSettings, "save_every"),
                        metavar="K", help="save every K steps")
    parser.add_argument("--eval-every", type=non_negative_int, default=_default(LoggingSettings, "eval_every"),
                        metavar="K", help="per-language validation every K steps (and before the first step)")
    parser.add_argument("--eval-samples", type=positive_int, default=_default(LoggingSettings, "eval_samples"),
                        help="validation blocks per language")
    parser.add_argument("--keep", type=non_negative_int, default=_default(CheckpointSettings, "keep"), metavar="K",
                        help="keep the newest K complete checkpoints (0: keep all)")
    parser.add_argument("--seed", type=int, default=_default(DataConfig, "seed"))
    parser.add_argument("--init-from", metavar="HF_DIR",
                        help="start from Hugging Face weights, fresh optimizer; the shape, LayerNorm epsilon and "
                             "dropout are its config.json's (a --model or --model-config given too must agree)")
    parser.add_argument("--resume", default=_default(CheckpointSettings, "resume"), metavar="auto|none|PATH",
                        help="auto: newest complete checkpoint in --save (default)")
    parser.add_argument("--branch-from", metavar="CKPT",
                        help="start this run (in its own --save) from another run's checkpoint DIR/step_NNNNNNNN: "
                             "model, optimizer and data position, with this run's recipe (a decay branch)")
    valid_fraction = _default(DataConfig, "valid_fraction")
    parser.add_argument("--valid-fraction", type=float, default=valid_fraction,
                        help=f"share of each language's documents held out for validation (default {valid_fraction})")
    block_size = _default(DataConfig, "block_size")
    parser.add_argument("--block-size", type=positive_int, default=block_size,
                        help=f"tokens per sequence (default {block_size})")
    parser.add_argument("--activation-checkpointing", action="store_true", help="recompute blocks in backward")
    parser.add_argument("--dropout-keys", choices=DROPOUT_KEYS, default=_default(ModelSettings, "dropout_keys"),
                        help="sample (default): dropout masks keyed by (seed, sample, site), the same on any number "
                             "of processes; rank: each process's own RNG stream (as before)")
    parser.add_argument("--num-workers", type=non_negative_int,
                        help="DataLoader worker processes (default: 2 on a GPU, so that batches are ready before "
                             "the step needs them; 0 on CPU, where the cores are the model's)")
    parser.add_argument("--peak-tflops", type=float, help="device peak for MFU (default: from the GPU's name)")
    timeout = _default(PolicySettings, "dist_timeout_minutes")
    parser.add_argument("--dist-timeout-minutes", type=positive_float, default=timeout, metavar="M",
                        help=f"a process that makes no progress for M minutes (a collective waiting on a dead or hung "
                             f"peer) exits, so the job ends instead of hanging (default {timeout:g}; fractions "
                             f"allowed)")
    parser.add_argument("--nonfinite-loss", choices=NONFINITE_POLICIES,
                        default=_default(PolicySettings, "nonfinite_loss"),
                        help="a NaN/inf loss: stop the job naming the step (default), or skip the step and count it "
                             "in metrics; the model is never updated from it (with fp16 the loss scaler skips)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also show the libraries' warnings and info lines (or set XLMR_DS_VERBOSE=1)")
    parser.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)),
                        help=argparse.SUPPRESS)  # added by the deepspeed launcher


def run_config(args: argparse.Namespace) -> RunConfig:
    """The RunConfig the flags describe."""
    if args.steps is None and args.recipe is None:
        raise XLMRDSError("--steps is required (or a --recipe, whose phases give the run's length)")
    if args.branch_from and not args.save:
        raise XLMRDSError("--branch-from needs --save: a branch is a run of its own, in a directory of its own")
    if args.branch_from and args.resume != "auto":
        raise XLMRDSError(f"--branch-from and --resume {args.resume} both say where to start; give one")
    return RunConfig(
        data=DataConfig(args.data, block_size=args.block_size, seed=args.seed, valid_fraction=args.valid_fraction,
                        recipe=args.recipe),
        optimization=OptimizationSettings(args.deepspeed_config, args.steps, args.exit_at_step),
        model=ModelSettings(args.model or (None if args.init_from else _default(ModelSettings, "preset")),
                            args.model_config, args.init_from,
                            args.activation_checkpointing, args.dropout_keys),
        checkpointing=CheckpointSettings(args.save, args.save_every, args.keep, args.resume, args.branch_from),
        logging=LoggingSettings(args.metrics_file, args.eval_every, args.eval_samples, args.peak_tflops),
        policies=PolicySettings(args.dist_timeout_minutes, args.nonfinite_loss),
        loader_workers=args.num_workers,
    )


def register(commands) -> None:
    parser = commands.add_parser("train", help="train with DeepSpeed (one process here; launchers: "
                                               "deepspeed --module xlmr_ds.train)")
    add_arguments(parser)
    parser.set_defaults(run=run, exits_without_finalizing=True)


def run(args: argparse.Namespace) -> int:
    placed = launcher_placement()
    configure_logging(rank=placed[0] if placed else 0, verbose=args.verbose)
    if placed:
        # The only record of which host each rank of a multi-node job landed on.
        whole_line(f"[xlmr-ds] rank {placed[0]} of {placed[1]} on {socket.gethostname()}")
    from torch.distributed import DistNetworkError, DistStoreError

    from xlmr_ds.engine.trainer import run as run_training

    prefix = f"[rank {placed[0]}] " if placed else ""
    try:
        if args.recipe:
            load_recipe(args.recipe)  # a bad recipe is refused before any process group starts
        return run_training(run_config(args))
    except XLMRDSError as error:
        error_line(f"{prefix}{PROG}: error: {error}")
        return 1
    except (DistStoreError, DistNetworkError) as error:
        # Raised while the processes meet (rendezvous), typically because a host never started its ranks.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        error_line(f"{prefix}{PROG}: error: the job's processes did not all connect within "
                   f"--dist-timeout-minutes={args.dist_timeout_minutes}: {first_line}; if a host never started its "
                   f"ranks, the launcher printed why above (`xlmr-ds launch check --hostfile FILE` finds such hosts "
                   f"in seconds)")
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = OneLineErrorParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                help_command=f"python -m {MODULE}")
    add_arguments(parser)
    return run(parser.parse_args(argv))
