"""OUT/manifest.json: what a binarized dataset holds, and the mark that it is complete.

`xlmr-ds binarize` writes it last (removing it first when it starts), so a directory with a manifest is a
complete dataset; the loader, `data inspect`, `eval` and `launch check` read it. Next to it lies
OUT/tokenizer.model, a copy of the SentencePiece model the ids come from: the dataset moves whole.

manifest.json is one JSON object:

    format_version      1
    index_format        "MMIDIDX v1" (dataset/indexed.py: OUT/<lang>.bin and OUT/<lang>.idx)
    dtype               the token dtype of every .bin, "uint16" or "int32"
    tokenizer           {"file": "tokenizer.model", "source": the path binarize was given, "sha256": of the
                        model file, "pieces": SentencePiece pieces, "vocab_size": XLM-R ids (pieces + 2)}
    languages           {lang: {"documents", "sequences", "tokens", "bytes_read", "replaced_characters",
                        "nul_characters"}} for each language with at least one line, in name order
    skipped_languages   [lang, ...]: languages whose file held no text (no dataset written)

This module reads and writes that file only; it knows nothing of SentencePiece (the tokenizer is checked by
the sha256 of its file).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.jsonfile import read_json_object
from xlmr_ds.outputs import replaced_file, write_json_atomically

MANIFEST = "manifest.json"
TOKENIZER_FILE = "tokenizer.model"
FORMAT_VERSION = 1


def write_manifest(out_dir: Path, tokenizer_model: Path, tokenizer: dict, dtype: np.dtype,
                   languages: dict[str, dict], skipped: list[str]) -> Path:
    """Copy the tokenizer into OUT, then write OUT/manifest.json (temporary name, then rename: last)."""
    manifest = {
        "format_version": FORMAT_VERSION,
        "index_format": "MMIDIDX v1",
        "dtype": np.dtype(dtype).name,
        "tokenizer": {"file": TOKENIZER_FILE, **tokenizer},
        "languages": dict(sorted(languages.items())),
        "skipped_languages": sorted(skipped),
    }
    with replaced_file(out_dir / TOKENIZER_FILE) as temporary:
        shutil.copyfile(tokenizer_model, temporary)
    write_json_atomically(out_dir / MANIFEST, manifest, indent=2)
    return out_dir / MANIFEST


def read_manifest(out_dir: str | Path) -> dict:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise XLMRDSError(f"{path}: not found; {out_dir} is not a complete `xlmr-ds binarize` output "
                          f"(a run that did not finish leaves no manifest)")
    manifest = read_json_object(path, "binarize manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise XLMRDSError(f"{path}: format_version {manifest.get('format_version')!r} is not supported; "
                          f"expected {FORMAT_VERSION}")
    return manifest


def tokenizer_file(out_dir: str | Path, manifest: dict, spm_model: str | Path | None = None) -> Path:
    """The SentencePiece model the dataset was written with: its copy in OUT, or `spm_model`, checked by sha256."""
    path = Path(spm_model) if spm_model else Path(out_dir) / manifest["tokenizer"]["file"]
    if not path.is_file():
        raise XLMRDSError(f"{path}: SentencePiece model not found")
    if hashlib.sha256(path.read_bytes()).hexdigest() != manifest["tokenizer"]["sha256"]:
        raise XLMRDSError(f"{path}: this SentencePiece model is not the one {out_dir} was binarized with "
                          f"(sha256 differs from {Path(out_dir) / MANIFEST}); use that model, or binarize again "
                          f"with this one")
    return path
