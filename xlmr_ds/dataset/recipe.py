"""Training recipes: a run as a list of phases, each changing what the data and the optimizer do.

A recipe file (`xlmr-ds train --recipe FILE`) is a JSON object:

    {
      "description": "mmBERT-like: anneal alpha, add languages, lower the mask rate",   (optional)
      "phases": [
        {"name": "base", "steps": 400, "alpha": 0.7, "languages": ["en", "de", "fr"], "mask_prob": 0.3,
         "block_size": 128, "batch_size": {"start": 16, "end": 32, "multiple": 16},
         "lr": {"shape": "warmup", "start": 0.0, "end": 0.001}},
        {"name": "mid", "steps": 400, "alpha": {"start": 0.5, "end": 0.3}, "languages": ["en", "de", "fr", "sw"],
         "mask_prob": 0.15, "lr": {"shape": "stable"}},
        {"name": "decay", "tokens": 2000000, "alpha": 0.3, "mask_prob": 0.05, "lr": {"shape": "1-sqrt", "end": 0}}
      ]
    }

Each phase has exactly one length: `steps` (optimizer steps) or `tokens` (samples x block size; the phase
ends with the first step that reaches it). Every other key is optional and, when left out, keeps the value of
the phase before (the first phase takes the run's flags: --block-size, the DataConfig's alpha and mask_prob,
the DeepSpeed config's train_batch_size):

- alpha: the language-sampling exponent, a number in (0, 1] or {"start", "end"} changing linearly over the
  phase.
- languages: the languages taking part (a non-empty list of the dataset's languages); they keep the dataset's
  order whatever order the list has, so a language that joins does not move the others.
- mask_prob: the share of tokens chosen for prediction, in (0, 1).
- block_size: tokens per sequence, at least 8 and at most the model's max_sequence_length.
- batch_size: the global batch in samples, an integer or {"start", "end", "multiple"} growing linearly over the
  phase and rounded down to a multiple of `multiple` (default: the greatest common divisor of start and end).
  Every value must be a multiple of micro batch x processes; choose multiples of the largest world size the
  run will use, so that it can resume on any of them.
- lr: the phase's piece of the learning-rate curve, {"shape", "start", "end"} with shape one of
  "warmup" (linear, start default 0, end default the optimizer's lr in the DeepSpeed config), "stable"
  (constant at start), "linear" (linear decay, end default 0), "1-sqrt" (end + (start - end) (1 - sqrt(t/T)),
  end default 0). start defaults to where the phase before ended. Either every phase has an lr piece and they
  replace the DeepSpeed config's scheduler, or none has and that scheduler runs over the whole recipe.
- train: what the phase trains, "all" (the default) or "new_embeddings": only the embedding rows (and LM-head
  bias entries) that `xlmr-ds model extend-vocab` added, the rest frozen bit for bit (engine/new_rows.py;
  needs --init-from the grown model). Unlike the other keys it does not carry over: a phase without it trains
  everything. new_embeddings phases must come first (the optimizer's moments are still zero there).

Validation names the file, the key path (phases[1].alpha.start) and what was expected, one problem per line,
the first one raised. Which languages exist and the model's length limit are checked when the data is loaded
(`check_against`).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.jsonfile import read_json_object

RECIPE_KEYS = ("description", "phases")
PHASE_KEYS = ("name", "steps", "tokens", "alpha", "languages", "mask_prob", "block_size", "batch_size", "lr",
              "train")
TRAIN_CHOICES = ("all", "new_embeddings")
RAMP_KEYS = ("start", "end")
BATCH_RAMP_KEYS = ("start", "end", "multiple")
LR_KEYS = ("shape", "start", "end")
LR_SHAPES = ("warmup", "stable", "linear", "1-sqrt")


@dataclass(frozen=True)
class Ramp:
    """A value that changes linearly from `start` to `end` over a phase (equal for a constant)."""

    start: float
    """The value at the phase's first step."""

    end: float
    """The value the phase reaches at its end."""

    def at(self, fraction: float) -> float:
        """The value a share `fraction` in [0, 1] into the phase."""
        return self.start + (self.end - self.start) * fraction


@dataclass(frozen=True)
class BatchRamp:
    """The global batch size over a phase: linear from start to end, rounded down to a multiple."""

    start: int
    """Samples per optimizer step at the phase's first step."""

    end: int
    """Samples per optimizer step the phase grows to."""

    multiple: int
    """Every batch size of the phase is a multiple of this."""

    def at(self, step: int, steps: int) -> int:
        """The batch of the phase's step `step` (0-based) of `steps`."""
        if self.start == self.end:
            return self.start
        exact = self.start + (self.end - self.start) * step // max(1, steps - 1)
        return max(self.multiple, exact // self.multiple * self.multiple)


@dataclass(frozen=True)
class LearningRatePiece:
    """One phase's part of the learning-rate curve (None values are filled in when the recipe is resolved)."""

    shape: str
    """"warmup", "stable", "linear" or "1-sqrt"."""

    start: float | None = None
    """The rate at the phase's start (default: where the phase before ended; 0 for a first warmup)."""

    end: float | None = None
    """The rate at the phase's end (warmup: default the optimizer's lr; the decays: default 0)."""

    def at(self, step: int, steps: int) -> float:
        """The rate of the phase's step `step` (0-based) of `steps`; a warmup's first step is already above
        its start (step 1 of a warmup from 0 trains), a decay's first step is at its start."""
        start, end = float(self.start), float(self.end)
        if self.shape == "warmup":
            return start + (end - start) * (step + 1) / steps
        if self.shape == "stable":
            return start
        fraction = step / steps
        if self.shape == "linear":
            return start + (end - start) * fraction
        return end + (start - end) * (1.0 - math.sqrt(fraction))


@dataclass(frozen=True)
class Phase:
    """One phase of a recipe as written; None means: as in the phase before."""

    name: str
    """What reports call the phase (default: phase1, phase2, ...)."""

    steps: int | None = None
    """Optimizer steps of the phase (exactly one of steps and tokens)."""

    tokens: int | None = None
    """Tokens (samples x block size) of the phase; it ends with the first step that reaches them."""

    alpha: Ramp | None = None
    """The language-sampling exponent over the phase."""

    languages: tuple[str, ...] | None = None
    """The languages taking part."""

    mask_prob: float | None = None
    """The share of tokens chosen for prediction."""

    block_size: int | None = None
    """Tokens per sequence, <s> and </s> included."""

    batch_size: BatchRamp | None = None
    """The global batch in samples over the phase."""

    lr: LearningRatePiece | None = None
    """The phase's piece of the learning-rate curve."""

    train: str = "all"
    """What the phase trains: "all", or "new_embeddings" (the rows a vocabulary extension added)."""


@dataclass(frozen=True)
class Recipe:
    """A training run as phases, and the file it came from (None: the run's flags as one phase)."""

    phases: tuple[Phase, ...]
    """The phases in the order they run."""

    source: str | None = None
    """The recipe file, for errors and reports."""

    description: str = ""
    """What the recipe is for, in the author's words."""

    has_learning_rates: bool = field(init=False)
    """Whether the phases carry the learning-rate curve (else the DeepSpeed config's scheduler does)."""

    def __post_init__(self):
        object.__setattr__(self, "has_learning_rates", any(p.lr is not None for p in self.phases))

    @staticmethod
    def single_phase(steps: int) -> Recipe:
        """XLM-R's recipe: one phase of `steps` with the run's flags throughout."""
        return Recipe((Phase("xlmr", steps=steps),))

    def check_against(self, languages: list[str], max_sequence_length: int) -> None:
        """Refuse languages the dataset lacks and blocks longer than the model takes."""
        known = set(languages)
        for index, phase in enumerate(self.phases):
            for language in phase.languages or ():
                if language not in known:
                    raise XLMRDSError(f"{self.source}: phases[{index}].languages: {language!r} is not a language of "
                                      f"the dataset{_nearest(language, languages)}")
            if phase.block_size is not None and phase.block_size > max_sequence_length:
                raise XLMRDSError(f"{self.source}: phases[{index}].block_size={phase.block_size} is longer than the "
                                  f"model's max_sequence_length {max_sequence_length}")


def load_recipe(path: str | Path) -> Recipe:
    """The recipe in `path`, validated (see the module docstring); XLMRDSError names the first problem."""
    source = str(path)
    raw = read_json_object(path, "recipe")
    _check_keys(source, "", raw, RECIPE_KEYS)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise XLMRDSError(f"{source}: description must be a string (got {description!r})")
    phases = raw.get("phases")
    if not isinstance(phases, list) or not phases:
        raise XLMRDSError(f"{source}: phases must be a non-empty list of phase objects (got {phases!r})")
    parsed = tuple(_parse_phase(source, f"phases[{i}]", value, i) for i, value in enumerate(phases))
    with_lr = [p.lr is not None for p in parsed]
    if any(with_lr) and not all(with_lr):
        missing = with_lr.index(False)
        raise XLMRDSError(f"{source}: phases[{missing}] has no lr piece while phases[{with_lr.index(True)}] has one; "
                          f"give every phase an lr piece, or none to use the DeepSpeed config's scheduler")
    trains = [p.train for p in parsed]
    if "new_embeddings" in trains[trains.index("all") if "all" in trains else len(trains):]:
        late = trains.index("new_embeddings", trains.index("all"))
        raise XLMRDSError(f"{source}: phases[{late}].train is new_embeddings after phases[{trains.index('all')}] "
                          f"trained everything; new_embeddings phases must come first (frozen weights stay exactly "
                          f"as they were only while the optimizer's moments are zero)")
    return Recipe(parsed, source, description)


def _parse_phase(source: str, where: str, raw: object, index: int) -> Phase:
    if not isinstance(raw, dict):
        raise XLMRDSError(f"{source}: {where} must be a JSON object (got {raw!r})")
    _check_keys(source, where, raw, PHASE_KEYS)
    name = raw.get("name", f"phase{index + 1}")
    if not isinstance(name, str) or not name:
        raise XLMRDSError(f"{source}: {where}.name must be a non-empty string (got {name!r})")
    lengths = [key for key in ("steps", "tokens") if key in raw]
    if len(lengths) != 1:
        raise XLMRDSError(f"{source}: {where}: give exactly one of steps and tokens (got "
                          f"{' and '.join(lengths) or 'neither'})")
    length = _integer(source, f"{where}.{lengths[0]}", raw[lengths[0]], minimum=1,
                      why="a phase is at least one step")
    return Phase(
        name=name,
        steps=length if lengths[0] == "steps" else None,
        tokens=length if lengths[0] == "tokens" else None,
        alpha=_alpha(source, f"{where}.alpha", raw["alpha"]) if "alpha" in raw else None,
        languages=_languages(source, f"{where}.languages", raw["languages"]) if "languages" in raw else None,
        mask_prob=(_number(source, f"{where}.mask_prob", raw["mask_prob"], 0.0, 1.0, closed_high=False)
                   if "mask_prob" in raw else None),
        block_size=(_integer(source, f"{where}.block_size", raw["block_size"], minimum=8,
                             why="a block holds <s>, </s> and at least 6 tokens") if "block_size" in raw else None),
        batch_size=_batch(source, f"{where}.batch_size", raw["batch_size"]) if "batch_size" in raw else None,
        lr=_learning_rate(source, f"{where}.lr", raw["lr"]) if "lr" in raw else None,
        train=_train(source, f"{where}.train", raw.get("train", "all")),
    )


def _train(source: str, where: str, raw: object) -> str:
    if raw not in TRAIN_CHOICES:
        raise XLMRDSError(f"{source}: {where} must be one of {', '.join(TRAIN_CHOICES)} (got {raw!r})")
    return raw


def _alpha(source: str, where: str, raw: object) -> Ramp:
    if isinstance(raw, dict):
        _check_keys(source, where, raw, RAMP_KEYS)
        for key in RAMP_KEYS:
            if key not in raw:
                raise XLMRDSError(f"{source}: {where}.{key} is missing (a ramp has start and end)")
        return Ramp(*(_number(source, f"{where}.{key}", raw[key], 0.0, 1.0) for key in RAMP_KEYS))
    value = _number(source, where, raw, 0.0, 1.0)
    return Ramp(value, value)


def _languages(source: str, where: str, raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise XLMRDSError(f"{source}: {where} must be a non-empty list of language names (got {raw!r})")
    for item in raw:
        if not isinstance(item, str) or not item:
            raise XLMRDSError(f"{source}: {where}: {item!r} is not a language name (a string such as \"en\")")
    duplicates = sorted({item for item in raw if raw.count(item) > 1})
    if duplicates:
        raise XLMRDSError(f"{source}: {where}: {duplicates[0]!r} is listed twice")
    return tuple(raw)


def _batch(source: str, where: str, raw: object) -> BatchRamp:
    if isinstance(raw, dict):
        _check_keys(source, where, raw, BATCH_RAMP_KEYS)
        for key in RAMP_KEYS:
            if key not in raw:
                raise XLMRDSError(f"{source}: {where}.{key} is missing (a batch ramp has start and end)")
        start, end = (_integer(source, f"{where}.{key}", raw[key], minimum=1) for key in RAMP_KEYS)
        multiple = (_integer(source, f"{where}.multiple", raw["multiple"], minimum=1) if "multiple" in raw
                    else math.gcd(start, end))
        for key, value in (("start", start), ("end", end)):
            if value % multiple:
                raise XLMRDSError(f"{source}: {where}.{key}={value} is not a multiple of {where}.multiple={multiple}")
        return BatchRamp(start, end, multiple)
    value = _integer(source, where, raw, minimum=1)
    return BatchRamp(value, value, value)


def _learning_rate(source: str, where: str, raw: object) -> LearningRatePiece:
    if not isinstance(raw, dict):
        raise XLMRDSError(f"{source}: {where} must be an object such as {{\"shape\": \"warmup\", \"end\": 0.001}} "
                          f"(got {raw!r})")
    _check_keys(source, where, raw, LR_KEYS)
    shape = raw.get("shape")
    if shape not in LR_SHAPES:
        raise XLMRDSError(f"{source}: {where}.shape={shape!r} must be one of {', '.join(LR_SHAPES)}")
    if shape == "stable" and "end" in raw:
        raise XLMRDSError(f"{source}: {where}.end: a stable piece stays at its start; give start only")
    values = {key: _number(source, f"{where}.{key}", raw[key], 0.0, math.inf, closed_low=True)
              for key in ("start", "end") if key in raw}
    return LearningRatePiece(shape, values.get("start"), values.get("end"))


def _integer(source: str, where: str, value: object, minimum: int, why: str = "") -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise XLMRDSError(f"{source}: {where} must be an integer (got {value!r})")
    if value < minimum:
        raise XLMRDSError(f"{source}: {where}={value} must be at least {minimum}{f' ({why})' if why else ''}")
    return value


def _number(source: str, where: str, value: object, low: float, high: float, closed_low: bool = False,
            closed_high: bool = True) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise XLMRDSError(f"{source}: {where} must be a number (got {value!r})")
    above = value >= low if closed_low else value > low
    below = value <= high if closed_high else value < high
    if not (above and below):
        interval = f"{'[' if closed_low else '('}{low:g}, {high:g}{']' if closed_high else ')'}"
        raise XLMRDSError(f"{source}: {where}={value!r} must be in {interval}")
    return float(value)


def _check_keys(source: str, where: str, raw: dict, valid: tuple[str, ...]) -> None:
    for key in raw:
        if key not in valid:
            name = f"{where}.{key}" if where else key
            raise XLMRDSError(f"{source}: unknown key {name!r}{_nearest(key, valid)}")


def _nearest(key: str, valid) -> str:
    match = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else f"; expected one of {', '.join(sorted(valid))}"
