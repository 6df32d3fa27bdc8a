"""Train an XLM-R masked language model with DeepSpeed: `xlmr-ds train`, and the launchers' module.

    # one machine, 2 processes (on CPU: DS_ACCELERATOR=cpu, chosen automatically without a GPU)
    deepspeed --num_gpus 2 --module xlmr_ds.train --deepspeed_config ds_configs/tiny_cpu_zero2.json \\
        --data runs/demo/data --model tiny --steps 100 --save runs/demo/ckpt
    # several nodes
    deepspeed --hostfile hostfiles/two_nodes --module xlmr_ds.train --deepspeed_config ... --data ... --save ...
    # MPI, or a single process
    mpiexec -n 2 python -m xlmr_ds.train --deepspeed_config ... --data ...
    python -m xlmr_ds.train --deepspeed_config ... --data ...      # the same as: xlmr-ds train ...

The flags map one to one onto xlmr_ds.config.RunConfig, built here and nowhere else: `FLAGS` names each
flag's field, whose default, docstring (the flag's help) and Literal type (its choices) are the flag's, and
RunConfig refuses values that are wrong alone or together (the error lines below come from it).
"""

from __future__ import annotations

import argparse
import os
import socket

from xlmr_ds.cli.arguments import (
    OneLineErrorParser,
    SettingFlag,
    add_setting_flags,
    field_default,
    non_negative_int,
    output_directory,
    output_file,
    positive_float,
    positive_int,
    setting_values,
)
from xlmr_ds.config import (
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
from xlmr_ds.model.architectures import ALL_ARCHITECTURES, preset_names
from xlmr_ds.world import launcher_placement

PROG = "xlmr-ds train"
"""How the job names itself in its errors, however it was started: as every other command does."""
MODULE = "xlmr_ds.train"


FLAGS = (
    SettingFlag("--deepspeed_config", OptimizationSettings, "deepspeed_config", required=True, metavar="FILE"),
    SettingFlag("--data", DataConfig, "data_dir", required=True, metavar="OUT"),
    # Not given is kept apart from the default preset (default=None): with --init-from the shape is the directory's,
    # and only a --model the user gave must agree with it (run_config puts the default in otherwise).
    SettingFlag("--model", ModelSettings, "preset", exclusive="shape", choices=preset_names(ALL_ARCHITECTURES),
                default=None),
    SettingFlag("--model-config", ModelSettings, "config_file", exclusive="shape", metavar="FILE"),
    SettingFlag("--steps", OptimizationSettings, "steps", type=positive_int),
    SettingFlag("--recipe", DataConfig, "recipe", metavar="FILE"),
    SettingFlag("--exit-at-step", OptimizationSettings, "exit_at_step", type=positive_int, metavar="K"),
    SettingFlag("--save", CheckpointSettings, "save_dir", type=output_directory, metavar="DIR"),
    SettingFlag("--metrics-file", LoggingSettings, "metrics_file", type=output_file, metavar="FILE"),
    SettingFlag("--save-every", CheckpointSettings, "save_every", type=non_negative_int, metavar="K"),
    SettingFlag("--eval-every", LoggingSettings, "eval_every", type=non_negative_int, metavar="K"),
    SettingFlag("--eval-samples", LoggingSettings, "eval_samples", type=positive_int),
    SettingFlag("--probe-languages", LoggingSettings, "probe_languages", nargs="+", metavar="LANG"),
    SettingFlag("--keep", CheckpointSettings, "keep", type=non_negative_int, metavar="K"),
    SettingFlag("--seed", DataConfig, "seed", type=int),
    SettingFlag("--init-from", ModelSettings, "init_from", metavar="HF_DIR"),
    SettingFlag("--resume", CheckpointSettings, "resume", metavar="auto|none|PATH"),
    SettingFlag("--branch-from", CheckpointSettings, "branch_from", metavar="CKPT"),
    SettingFlag("--valid-fraction", DataConfig, "valid_fraction", type=float),
    SettingFlag("--block-size", DataConfig, "block_size", type=positive_int),
    SettingFlag("--activation-checkpointing", ModelSettings, "activation_checkpointing", action="store_true"),
    SettingFlag("--dropout-keys", ModelSettings, "dropout_keys"),
    SettingFlag("--num-workers", RunConfig, "loader_workers", type=non_negative_int),
    SettingFlag("--peak-tflops", LoggingSettings, "peak_tflops", type=positive_float),
    SettingFlag("--dist-timeout-minutes", PolicySettings, "dist_timeout_minutes", type=positive_float, metavar="M"),
    SettingFlag("--nonfinite-loss", PolicySettings, "nonfinite_loss"),
)
"""Every flag that sets a field of RunConfig, in --help's order."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_flags(parser, FLAGS)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also show the libraries' warnings and info lines (or set XLMR_DS_VERBOSE=1)")
    parser.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)),
                        help=argparse.SUPPRESS)  # added by the deepspeed launcher


def run_config(args: argparse.Namespace) -> RunConfig:
    """The RunConfig the flags describe; it checks its values itself (config.py), so this only builds it."""
    def settings(kind: type, **given):
        return kind(**{**setting_values(kind, FLAGS, args), **given})

    return RunConfig(
        data=settings(DataConfig),
        optimization=settings(OptimizationSettings),
        model=settings(ModelSettings, preset=_preset(args)),
        checkpointing=settings(CheckpointSettings),
        logging=settings(LoggingSettings),
        policies=settings(PolicySettings),
        **setting_values(RunConfig, FLAGS, args),
    )


def _preset(args: argparse.Namespace) -> str | None:
    """The --model given; else the default preset, unless --init-from's directory gives the shape."""
    if args.model or args.init_from:
        return args.model
    return field_default(ModelSettings, "preset")


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
