"""What one host reports to `xlmr-ds launch check`: run there over ssh as `python -m xlmr_ds.launch.probe`.

It prints one line, PROBE_PREFIX followed by JSON: host name, Python and package versions, devices, and
what it sees of the data and checkpoint directories. It only reads, except for one temporary file that
proves the checkpoint directory is writable. It must stay quick and must not start DeepSpeed or CUDA work.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import socket
import tempfile
from importlib import metadata
from pathlib import Path

from xlmr_ds.dataset.manifest import MANIFEST

PROBE_PREFIX = "XLMR_DS_PROBE "


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _devices() -> dict:
    try:
        import torch

        gpus = torch.cuda.device_count()  # counts without creating a CUDA context
    except Exception as error:  # a broken torch install is exactly what the check is for
        return {"gpus": None, "cpus": os.cpu_count(), "error": f"import torch failed: {error}"}
    return {"gpus": gpus, "cpus": os.cpu_count()}


def data_state(data: str) -> dict:
    manifest = Path(data) / MANIFEST
    if not Path(data).is_dir():
        return {"ok": False, "detail": "not found"}
    try:
        digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    except FileNotFoundError:
        return {"ok": False, "detail": f"no {MANIFEST} (not a complete `xlmr-ds binarize` output)"}
    except OSError as error:
        return {"ok": False, "detail": f"cannot read {MANIFEST}: {error.strerror}"}
    return {"ok": True, "manifest_sha256": digest}


def save_state(save: str, token: str | None) -> dict:
    directory = Path(save)
    if not directory.is_dir():
        return {"ok": False, "detail": "not found"}
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".xlmr-ds-write-test-"):
            pass
    except OSError as error:
        return {"ok": False, "detail": f"not writable: {error.strerror}"}
    return {"ok": True, "token_seen": bool(token) and (directory / token).exists()}


def probe(data: str | None, save: str | None, token: str | None) -> dict:
    from xlmr_ds import __version__

    report = {
        "hostname": socket.gethostname(), "python": platform.python_version(), "xlmr_ds": __version__,
        "torch": _version("torch"), "deepspeed": _version("deepspeed"), "devices": _devices(),
    }
    if data:
        report["data"] = data_state(data)
    if save:
        report["save"] = save_state(save, token)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xlmr_ds.launch.probe")
    parser.add_argument("--data")
    parser.add_argument("--save")
    parser.add_argument("--token", help="a file name in --save that the checking machine wrote")
    args = parser.parse_args(argv)
    print(PROBE_PREFIX + json.dumps(probe(args.data, args.save, args.token)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
