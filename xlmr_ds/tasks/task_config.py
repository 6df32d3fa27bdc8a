"""The task file of `xlmr-ds eval transfer`: one JSON object saying what to run on every checkpoint.

A fine-tuning task (the keys are `xlmr-ds finetune`'s flags; paths relative to the task file's folder):

    {"task": "pair-classification",            required: a finetune --task, or "retrieval"
     "train": ["multinli.train.en.tsv"],         required: [LANG=]FILE, one or more
     "valid": ["en=xnli.dev.tsv"],               optional
     "test": ["de=xnli.test.tsv", "fr=xnli.test.tsv"],   required: LANG=FILE, one or more
     "epochs": 2, "lr": 2e-5, "batch_size": 32, "max_length": 128, "seed": 42, "select_on": "source",
     "warmup_fraction": 0.1, "eval_batch_size": 64, "deepspeed_config": "finetune.json",
     "doc_stride": 128}                          all optional; doc_stride: question-answering only

A retrieval task:

    {"task": "retrieval", "pairs": ["de=tatoeba.de-en.en:tatoeba.de-en.de"], "layer": 6, "max_length": 128,
     "batch_size": 64}                           pairs required (LANG=SRC:TGT), the rest optional
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.jsonfile import read_json_object
from xlmr_ds.tasks.formats import TASKS, TaskFile
from xlmr_ds.tasks.language_codes import is_language_code
from xlmr_ds.tasks.settings import SELECT_ON, FinetuneSettings, RetrievalPair, RetrievalSettings

RETRIEVAL = "retrieval"
_FINETUNE_KEYS = {"task", "train", "valid", "test", "epochs", "lr", "batch_size", "max_length", "seed", "select_on",
                  "warmup_fraction", "eval_batch_size", "deepspeed_config", "doc_stride"}
_RETRIEVAL_KEYS = {"task", "pairs", "layer", "max_length", "batch_size"}
# key -> (the JSON types allowed, what to say is expected)
_TYPES = {
    "epochs": ((int,), "a positive integer"), "batch_size": ((int,), "a positive integer"),
    "max_length": ((int,), "a positive integer"), "eval_batch_size": ((int,), "a positive integer"),
    "doc_stride": ((int,), "a positive integer"),
    "seed": ((int,), "an integer"), "layer": ((int,), "an integer"),
    "lr": ((int, float), "a positive number"), "warmup_fraction": ((int, float), "a number in [0, 1)"),
    "select_on": ((str,), f"one of {', '.join(SELECT_ON)}"), "deepspeed_config": ((str,), "a file name"),
}


def parse_pair(spec: str, where: str, base: Path | None = None) -> RetrievalPair:
    """LANG=SRC:TGT: LANG a language code before the first `=`; SRC:TGT parted at its only `:`, or, where the
    paths hold `:` too (run_10:30/en.txt), at the one `:` whose sides are both files (relative to `base`)."""
    language, sep, files = spec.partition("=")
    splits = [(files[:i], files[i + 1:]) for i, c in enumerate(files) if c == ":" and 0 < i < len(files) - 1]
    if not (sep and is_language_code(language) and splits):
        why = f"; {language!r} is not a language code CLDR names" if sep and language else ""
        raise XLMRDSError(f"{where} {spec!r}: expected LANG=SRC:TGT (two parallel files, line by line){why}")
    if len(splits) == 1:
        return RetrievalPair(language, *splits[0])  # whether they exist is said when they are read
    base = base or Path(".")
    existing = [(s, t) for s, t in splits if (base / s).is_file() and (base / t).is_file()]
    if len(existing) != 1:
        parts = f" ({', '.join(f'{s} | {t}' for s, t in existing)})" if existing else ""
        raise XLMRDSError(f"{where} {spec!r}: {'more than one' if existing else 'no'} ':' in it parts two existing "
                          f"files{parts}; expected LANG=SRC:TGT")
    return RetrievalPair(language, *existing[0])


def _files(values, key: str, source: str, required: bool, language_required: bool = False) -> tuple[TaskFile, ...]:
    if values is None:
        if required:
            raise XLMRDSError(f"{source}: {key!r} is missing; expected a list of file names")
        return ()
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values) or (required and not values):
        raise XLMRDSError(f"{source}: {key!r} must be a non-empty list of strings ([LANG=]FILE)")
    return tuple(TaskFile.parse(v, f"{source}: {key}", language_required) for v in values)


def _resolve(file: TaskFile, base: Path) -> TaskFile:
    return dataclasses.replace(file, path=file.path if file.path.is_absolute() else base / file.path)


def _check_values(values: dict, valid: set[str], source: str) -> None:
    for key, value in values.items():
        if key not in valid:
            match = difflib.get_close_matches(key, sorted(valid), n=1)
            hint = f"; did you mean {match[0]!r}?" if match else f"; valid keys: {', '.join(sorted(valid))}"
            raise XLMRDSError(f"{source}: unknown key {key!r}{hint}")
        if key in _TYPES:
            types, expected = _TYPES[key]
            if isinstance(value, bool) or not isinstance(value, types):
                raise XLMRDSError(f"{source}: {key}={value!r} must be {expected}")
    for key in ("epochs", "batch_size", "max_length", "eval_batch_size", "doc_stride"):
        if key in values and values[key] < 1:
            raise XLMRDSError(f"{source}: {key}={values[key]} must be a positive integer")
    if "lr" in values and values["lr"] <= 0:
        raise XLMRDSError(f"{source}: lr={values['lr']} must be a positive number")
    if "warmup_fraction" in values and not 0 <= values["warmup_fraction"] < 1:
        raise XLMRDSError(f"{source}: warmup_fraction={values['warmup_fraction']} must be a number in [0, 1)")
    if "select_on" in values and values["select_on"] not in SELECT_ON:
        raise XLMRDSError(f"{source}: select_on={values['select_on']!r} must be one of {', '.join(SELECT_ON)}")


def read_task_config(path: str | Path, model: str, out: str) -> FinetuneSettings | RetrievalSettings:
    """The settings for one checkpoint (`model`), writing into `out`."""
    path = Path(path)
    values = read_json_object(path, "task file")
    source = str(path)
    task = values.get("task")
    if task not in (*TASKS, RETRIEVAL):
        raise XLMRDSError(f"{source}: task={task!r}; expected one of {', '.join((*TASKS, RETRIEVAL))}")
    base = path.resolve().parent
    if task == RETRIEVAL:
        _check_values(values, _RETRIEVAL_KEYS, source)
        pairs = values.get("pairs")
        if not isinstance(pairs, list) or not pairs or not all(isinstance(p, str) for p in pairs):
            raise XLMRDSError(f"{source}: 'pairs' must be a non-empty list of \"LANG=SRC:TGT\" strings")
        resolved = []
        for spec in pairs:
            pair = parse_pair(spec, f"{source}: pairs", base)
            resolved.append(RetrievalPair(pair.language, str(base / pair.source), str(base / pair.target)))
        options = {k: values[k] for k in ("layer", "max_length", "batch_size") if k in values}
        return RetrievalSettings(model, tuple(resolved), out, **options)
    _check_values(values, _FINETUNE_KEYS, source)
    train = tuple(_resolve(f, base) for f in _files(values.get("train"), "train", source, True))
    valid = tuple(_resolve(f, base) for f in _files(values.get("valid"), "valid", source, False))
    test = tuple(_resolve(f, base) for f in _files(values.get("test"), "test", source, True, language_required=True))
    options = {k: values[k] for k in _FINETUNE_KEYS - {"task", "train", "valid", "test"} if k in values}
    if "deepspeed_config" in options and not Path(options["deepspeed_config"]).is_absolute():
        options["deepspeed_config"] = str(base / options["deepspeed_config"])
    return FinetuneSettings(task, model, train, test, out, valid=valid, **options)
