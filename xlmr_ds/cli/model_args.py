"""The --model / --model-config pair shared by every command that builds a model."""

from __future__ import annotations

import argparse

from xlmr_ds.model import PRESETS, XLMRConfig, preset


def add_model_arguments(parser: argparse.ArgumentParser, default: str | None = "tiny") -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--model", choices=list(PRESETS), default=default, help=f"preset (default: {default})")
    group.add_argument("--model-config", metavar="FILE", help="JSON file of XLMRConfig fields instead of a preset")


def model_config_from_args(args: argparse.Namespace) -> tuple[str, XLMRConfig]:
    """(a display name, the config) from --model or --model-config."""
    if args.model_config:
        return args.model_config, XLMRConfig.from_json(args.model_config)
    return args.model, preset(args.model)
