"""Reading the JSON files users hand us (configs, manifests), with one-line errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path

from xlmr_ds.errors import XLMRDSError


def read_json_object(path: str | Path, what: str) -> dict:
    """The JSON object in `path`; `what` names the file's role in errors ("DeepSpeed config", ...). A byte-order
    mark before it (editors on Windows write one) is not part of the JSON."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise XLMRDSError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise XLMRDSError(f"{path}: is a directory, expected a {what} (a JSON file)") from None
    except UnicodeDecodeError as error:
        raise XLMRDSError(f"{path}: not UTF-8 text (byte {error.start}); expected a {what} in JSON") from None
    except json.JSONDecodeError as error:
        raise XLMRDSError(f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    if not isinstance(value, dict):
        raise XLMRDSError(f"{path}: a {what} must be a JSON object")
    return value
