"""The bundled demo corpus: a few MB of real words and sentences in 21 languages, made offline.

Text comes from the locale data that two well-kept packages ship: mimesis (sentences, quotes and word
lists for European, Cyrillic, Greek, Arabic and CJK locales) and Faker (Devanagari names and places, and
Bengali, Thai and Armenian word lists). Lines are real sentences or runs of real words drawn with Zipf
frequencies; documents are 1-6 lines separated by blank lines, as in CC-100. Languages get very different
sizes so that alpha sampling matters. Everything is a function of the seed.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

from xlmr_ds.dataset.sampling import stable_seed
from xlmr_ds.outputs import replaced_directory

# language -> (mimesis locale, lines at scale 1.0). Sizes fall off like real web crawls.
MIMESIS_LANGUAGES = {
    "en": ("en", 6000), "de": ("de", 3500), "fr": ("fr", 3000), "ru": ("ru", 3000), "es": ("es", 2500),
    "ja": ("ja", 2000), "zh": ("zh", 2000), "it": ("it", 1500), "nl": ("nl", 1200), "pl": ("pl", 1000),
    "tr": ("tr", 800), "ar": ("ar-ae", 800), "ko": ("ko", 700), "uk": ("uk", 600), "el": ("el", 500),
    "sv": ("sv", 400), "fi": ("fi", 300),
}
# language -> (Faker locale, lines at scale 1.0, how lines are made).
FAKER_LANGUAGES = {"hi": ("hi_IN", 500, "places"), "bn": ("bn_BD", 400, "words"),
                   "th": ("th_TH", 300, "words"), "hy": ("hy_AM", 200, "words")}
NO_SPACES = {"zh", "ja", "th"}


def _mimesis_text(locale: str) -> tuple[list[str], list[str]]:
    """(sentences, words) from mimesis's locale data."""
    import mimesis

    data = json.loads((Path(mimesis.__file__).parent / "datasets" / locale / "text.json").read_text(encoding="utf-8"))
    sentences = [s.strip() for s in data.get("text", []) + data.get("quotes", []) if len(s.strip()) > 3]
    words = [w.strip() for w in data.get("words", []) if w.strip()]
    return sentences, words


def _zipf_cumulative_weights(size: int) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank + 1) ** 1.1 for rank in range(size)))


def _mimesis_lines(language: str, locale: str, count: int, seed: int) -> list[str]:
    rng = random.Random(stable_seed(seed, "demo-corpus", language))
    sentences, words = _mimesis_text(locale)
    words = words[:]
    rng.shuffle(words)  # which words are frequent is part of the seeded draw
    separator = "" if language in NO_SPACES else " "
    cumulative = _zipf_cumulative_weights(len(words))
    lines = []
    for _ in range(count):
        if sentences and rng.random() < 0.4:
            lines.append(" ".join(rng.sample(sentences, k=min(len(sentences), rng.randint(1, 3)))))
        else:
            line = separator.join(rng.choices(words, cum_weights=cumulative, k=rng.randint(6, 24)))
            lines.append(line[0].upper() + line[1:] + ("。" if language in {"zh", "ja"} else "."))
    return lines


def _faker_lines(language: str, locale: str, count: int, kind: str, seed: int) -> list[str]:
    from faker import Faker

    fake = Faker(locale)
    fake.seed_instance(stable_seed(seed, "demo-corpus", language))
    rng = random.Random(stable_seed(seed, "demo-corpus-lines", language))
    lines = []
    for _ in range(count):
        if kind == "places":
            parts = [fake.name(), fake.city(), fake.address().replace("\n", ", ")]
            lines.append(" ".join(rng.sample(parts, k=len(parts))))
        else:
            line = fake.sentence(nb_words=rng.randint(6, 18))
            lines.append(line.replace(" ", "") if language in NO_SPACES else line)
    return lines


def _documents(lines: list[str], rng: random.Random) -> str:
    out, i = [], 0
    while i < len(lines):
        size = rng.randint(1, 6)
        out.append("\n".join(lines[i:i + size]))
        i += size
    return "\n\n".join(out) + "\n"


def write_demo_corpus(out_dir: str | Path, seed: int = 0, scale: float = 1.0) -> dict[str, int]:
    """Write <lang>.txt files into out_dir (replaced whole, atomically); returns bytes per language."""
    sizes = {}
    own = {f"{language}.txt" for language in (*MIMESIS_LANGUAGES, *FAKER_LANGUAGES)}
    with replaced_directory(out_dir, lambda entry: entry.name in own, "xlmr-ds corpus demo") as staging:
        for language, (locale, lines) in MIMESIS_LANGUAGES.items():
            text = _mimesis_lines(language, locale, max(20, round(lines * scale)), seed)
            sizes[language] = _write(staging, language, text, seed)
        for language, (locale, lines, kind) in FAKER_LANGUAGES.items():
            text = _faker_lines(language, locale, max(20, round(lines * scale)), kind, seed)
            sizes[language] = _write(staging, language, text, seed)
    return sizes


def _write(directory: Path, language: str, lines: list[str], seed: int) -> int:
    text = _documents(lines, random.Random(stable_seed(seed, "demo-corpus-docs", language)))
    path = directory / f"{language}.txt"
    path.write_text(text, encoding="utf-8")
    return path.stat().st_size
