"""Small deterministic multilingual corpora for tests, in the corpus format (<lang>.txt, blank-line documents).

Words are random syllables of each language's script, drawn with Zipf frequencies, so a tokenizer has real
structure to learn; nothing here is downloaded.
"""

from __future__ import annotations

import random
from pathlib import Path

SCRIPTS = {
    "en": ("abcdefghijklmnopqrstuvwxyz", " "),
    "ru": ("абвгдежзийклмнопрстуфхцчшщыэюя", " "),
    "el": ("αβγδεζηθικλμνξοπρστυφχψω", " "),
    "ar": ("ابتثجحخدذرزسشصضطظعغفقكلمنهوي", " "),
    "hi": ("कखगघचछजझटठडढणतथदधनपफबभमयरलवशसह", " "),
    "zh": ("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年", ""),
}


def _vocabulary(alphabet: str, rng: random.Random, size: int = 300) -> list[str]:
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7))) for _ in range(size)]


def write_corpus(directory: Path, lines_per_language: dict[str, int], seed: int = 0) -> Path:
    """Write <lang>.txt files with about the given number of non-blank lines each; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for language, line_count in lines_per_language.items():
        alphabet, separator = SCRIPTS[language]
        rng = random.Random(f"{seed}-{language}")
        words = _vocabulary(alphabet, rng)
        weights = [1.0 / (rank + 1) for rank in range(len(words))]
        out = []
        written = 0
        while written < line_count:
            for _ in range(min(rng.randint(1, 5), line_count - written)):
                out.append(separator.join(rng.choices(words, weights, k=rng.randint(3, 20))) + ".")
                written += 1
            out.append("")
        (directory / f"{language}.txt").write_text("\n".join(out) + "\n", encoding="utf-8")
    return directory
