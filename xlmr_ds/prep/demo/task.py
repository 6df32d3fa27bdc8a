"""The demo's cross-lingual task and parallel strings, made offline from the Unicode CLDR locale data that
Babel ships (babel.Locale: the names every locale gives to countries, languages and currencies).

CLDR's data is under the Unicode License v3 (unicode.org/license.txt), Babel under the BSD 3-Clause licence;
both allow this use. The text is real: each locale's own translators wrote these names.

    OUT/names/train.en.tsv       `name<TAB>label`: the task, English only (the source language)
    OUT/names/dev.<lang>.tsv     the dev and test sets, in every task language
    OUT/names/test.<lang>.tsv
    OUT/parallel/en-<lang>.en    line i: a country's English name ...
    OUT/parallel/en-<lang>.<lang>   ... and line i: its name in <lang> (names spelled exactly as in English
                                    left out, so that retrieval is not string matching)
    OUT/names.json, OUT/retrieval.json   the same as `xlmr-ds eval transfer` task files
    OUT/README.md                what this is, where it comes from, its licence

The task: is a name a country's, a language's or a currency's (labels country, language, currency)? The
entities (CLDR codes) are split once into train / dev / test, so that a test name is never the translation of
a name trained on. Fine-tuned on English and tested on other languages, it is a smoke-level zero-shot
transfer signal for a tiny model, not XNLI.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from xlmr_ds.dataset.sampling import stable_seed
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.outputs import replaced_directory

SOURCE = "en"
DEFAULT_LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "ru")
"""Task languages: the demo corpus's languages with the most text in a script of their own or Latin."""
PER_LABEL = 150
"""Entities per label (the smallest class, two-letter language codes, has about 180 in every locale)."""
SPLITS = {"train": 0.6, "dev": 0.2, "test": 0.2}


def _names(language: str) -> dict[str, dict[str, str]]:
    """label -> {CLDR code: the locale's name for it}: countries and languages by two-letter code."""
    from babel import Locale, UnknownLocaleError

    try:
        locale = Locale.parse(language)
    except (UnknownLocaleError, ValueError):
        raise XLMRDSError(f"--languages: {language!r} is not a CLDR locale Babel knows") from None
    return {
        "country": {code: name for code, name in locale.territories.items() if len(code) == 2 and code.isalpha()},
        "language": {code: name for code, name in locale.languages.items() if len(code) == 2},
        "currency": dict(locale.currencies),
    }


def _split_codes(names: dict[str, dict[str, dict[str, str]]], seed: int) -> dict[str, dict[str, list[str]]]:
    """label -> split -> codes: codes named in every language, PER_LABEL per label, split once."""
    splits = {}
    for label in names[SOURCE]:
        shared = sorted(set.intersection(*(set(by_label[label]) for by_label in names.values())))
        rng = random.Random(stable_seed(seed, "demo-task", label))
        chosen = rng.sample(shared, k=min(PER_LABEL, len(shared)))
        train_end = round(len(chosen) * SPLITS["train"])
        dev_end = train_end + round(len(chosen) * SPLITS["dev"])
        splits[label] = {"train": chosen[:train_end], "dev": chosen[train_end:dev_end], "test": chosen[dev_end:]}
    return splits


def _rows(names: dict[str, dict[str, str]], splits: dict, split: str, seed: int, language: str) -> str:
    rows = [(names[label][code], label) for label in splits for code in splits[label][split]]
    random.Random(stable_seed(seed, "demo-task-order", split, language)).shuffle(rows)
    return "".join(f"{name}\t{label}\n" for name, label in rows)


def write_demo_task(out_dir: str | Path, languages: tuple[str, ...] = DEFAULT_LANGUAGES, seed: int = 0) -> dict:
    """Write the task and parallel files into out_dir (replaced whole, atomically); returns counts."""
    if SOURCE not in languages:
        raise XLMRDSError(f"--languages must include the source language {SOURCE!r}")
    names = {language: _names(language) for language in languages}
    splits = _split_codes(names, seed)
    counts = {"train": sum(len(s["train"]) for s in splits.values()), "parallel": {}}
    own = {"names", "parallel", "names.json", "retrieval.json", "README.md"}
    with replaced_directory(out_dir, lambda entry: entry.name in own, "xlmr-ds task demo") as staging:
        (staging / "names").mkdir()
        (staging / "parallel").mkdir()
        (staging / "names" / f"train.{SOURCE}.tsv").write_text(_rows(names[SOURCE], splits, "train", seed, SOURCE),
                                                              encoding="utf-8")
        for language in languages:
            for split in ("dev", "test"):
                (staging / "names" / f"{split}.{language}.tsv").write_text(
                    _rows(names[language], splits, split, seed, language), encoding="utf-8")
        pairs = []
        for language in languages:
            if language == SOURCE:
                continue
            ours, theirs = names[SOURCE]["country"], names[language]["country"]
            codes = [c for c in sorted(ours) if c in theirs and theirs[c] != ours[c]]
            stem = staging / "parallel" / f"{SOURCE}-{language}"
            Path(f"{stem}.{SOURCE}").write_text("".join(ours[c] + "\n" for c in codes), encoding="utf-8")
            Path(f"{stem}.{language}").write_text("".join(theirs[c] + "\n" for c in codes), encoding="utf-8")
            pairs.append(f"{language}=parallel/{SOURCE}-{language}.{SOURCE}:parallel/{SOURCE}-{language}.{language}")
            counts["parallel"][language] = len(codes)
        task = {"task": "sequence-classification", "train": [f"names/train.{SOURCE}.tsv"],
                "valid": [f"{SOURCE}=names/dev.{SOURCE}.tsv"],
                "test": [f"{language}=names/test.{language}.tsv" for language in languages]}
        (staging / "names.json").write_text(json.dumps(task, indent=2) + "\n")
        (staging / "retrieval.json").write_text(json.dumps({"task": "retrieval", "pairs": pairs}, indent=2) + "\n")
        (staging / "README.md").write_text(_readme(languages, counts))
    counts["test"] = {label: len(s["test"]) for label, s in splits.items()}
    return counts


def _readme(languages: tuple[str, ...], counts: dict) -> str:
    import babel

    return (
        "# The xlmr-ds demo task (smoke level, not XNLI)\n\n"
        f"Made by `xlmr-ds task demo` from the Unicode CLDR locale data shipped in Babel {babel.__version__} "
        "(CLDR: Unicode License v3, https://www.unicode.org/license.txt; Babel: BSD 3-Clause).\n\n"
        "- `names/`: is a name a country's, a language's or a currency's? Train on English "
        f"({counts['train']} names), test on {', '.join(languages)}; the entities of the test sets are never "
        "trained on, in any language.\n"
        "- `parallel/`: country names, English and each other language, line by line "
        f"({', '.join(f'{k}: {v}' for k, v in counts['parallel'].items())} pairs), for `xlmr-ds eval retrieval`.\n\n"
        "A tiny model pretrained for minutes on a few MB gives a signal above chance here, no more: the tables "
        "show that the pipeline measures zero-shot transfer, not what a real model reaches on XNLI.\n"
    )
