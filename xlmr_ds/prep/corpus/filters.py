"""Document quality filters of `corpus build`, each with its threshold as a flag (0 turns a filter off).

- min_chars: characters of the document after deduplication (CCNet classifies only documents of 300 or
  more; off by default, since a corpus of short documents loses everything);
- min_script_share: the share of the document's letters written in its language's script (a Russian
  document that is mostly Latin is a menu, a list of product names or mislabelled); languages this table
  does not name are not checked;
- max_repeated_line_share: the share of the document's lines that repeat an earlier line of the same
  document, counted before deduplication (Gopher's duplicate-line filter; template and spam pages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import regex

# lid.176 / GlotLID language -> the Unicode scripts its text is written in. Latin-script languages are
# most of lid.176 and are checked too: a text in them that is mostly another script is not theirs.
_NON_LATIN = {
    "Cyrillic": "ru uk bg sr mk be kk ky tg mn tt ba cv ce os sah av kv mhr mrj myv xal udm krc lez bxr tyv",
    "Greek": "el",
    "Arabic": "ar fa ur ps ckb sd ug arz azb mzn pnb ks",
    "Hebrew": "he yi",
    "Armenian": "hy",
    "Georgian": "ka xmf",
    "Devanagari": "hi mr ne sa new mai bh gom",
    "Bengali": "bn as bpy",
    "Gurmukhi": "pa",
    "Gujarati": "gu",
    "Oriya": "or",
    "Tamil": "ta",
    "Telugu": "te",
    "Kannada": "kn",
    "Malayalam": "ml",
    "Sinhala": "si",
    "Thai": "th",
    "Lao": "lo",
    "Myanmar": "my",
    "Khmer": "km",
    "Tibetan": "bo",
    "Ethiopic": "am",
    "Thaana": "dv",
    "Han": "zh wuu yue",
}
_MULTI_SCRIPT = {"ja": ("Han", "Hiragana", "Katakana"), "ko": ("Hangul", "Han")}
LATIN_LANGUAGES = frozenset(
    "af als an ast az bar bcl br bs ca cbk ceb co cs cy da de diq dsb dty en eo es et eu fi fr frr fy ga gd gl "
    "gn gv hr hsb ht hu ia id ie ilo io is it jbo jv kw la lb li lmo lrc lt lv mg min mt mwl nah nap nds nl nn "
    "no oc pam pfl pl pms pt qu rm ro rue sc scn sco sh sk sl so sq su sv sw tk tl tr uz vec vep vi vls vo wa war "
    "yo zh-classical tet hif nv lg".split())


@cache
def language_scripts(language: str) -> tuple[str, ...] | None:
    """The scripts a language is written in, or None if the table does not know it (not checked)."""
    base = language.split("_")[0]
    if "_" in language and len(language.split("_")[1]) == 4:  # GlotLID's eng_Latn: the script is in the name
        return (language.split("_")[1],)
    if base in _MULTI_SCRIPT:
        return _MULTI_SCRIPT[base]
    for script, languages in _NON_LATIN.items():
        if base in languages.split():
            return (script,)
    return ("Latin",) if base in LATIN_LANGUAGES else None


@cache
def _script_pattern(scripts: tuple[str, ...]) -> regex.Pattern:
    return regex.compile("[" + "".join(f"\\p{{Script={s}}}" for s in scripts) + "]+", regex.V1)


_LETTERS = regex.compile(r"[\p{L}\p{M}]+")
_ASCII_LETTER = re.compile("[A-Za-z]")


def _characters_matching(pattern: regex.Pattern, text: str) -> int:
    # Deleting the matches and measuring what is left runs in C; findall would make a string per word.
    return len(text) - len(pattern.sub("", text))


def script_share(text: str, language: str) -> float | None:
    """Share of the letters of `text` in the language's scripts (None: not checked, or no letters)."""
    scripts = language_scripts(language)
    if scripts is None:
        return None
    if text.isascii():  # CPython knows this without a scan: ASCII letters are all Latin
        if not _ASCII_LETTER.search(text):
            return None
        return 1.0 if "Latin" in scripts or "Latn" in scripts else 0.0
    letters = _characters_matching(_LETTERS, text)
    if not letters:
        return None
    return min(_characters_matching(_script_pattern(scripts), text) / letters, 1.0)


def repeated_line_share(lines: list[str]) -> float:
    """Share of lines that repeat an earlier line of the same document (exact text)."""
    return 1.0 - len(set(lines)) / len(lines) if lines else 0.0


@dataclass(frozen=True)
class FilterSettings:
    """Thresholds of the document filters; 0 turns a filter off."""

    min_chars: int = 0
    """A document with fewer characters (after deduplication, newlines not counted) is removed."""
    min_script_share: float = 0.5
    """A document with a smaller share of its letters in its language's script is removed."""
    max_repeated_line_share: float = 0.3
    """A document with a larger share of lines repeating an earlier line of its own is removed (1 is off)."""


FILTERS = ("min_chars", "script_share", "repeated_lines")
"""The filters in the order they are applied; a document is counted under the first that removes it."""


def failed_filter(settings: FilterSettings, original_lines: list[str], kept_lines: list[str],
                  language: str) -> str | None:
    """The first filter that removes the document, or None if it passes them all."""
    if settings.min_chars and sum(map(len, kept_lines)) < settings.min_chars:
        return "min_chars"
    if settings.min_script_share:
        share = script_share("".join(kept_lines), language)
        if share is not None and share < settings.min_script_share:
            return "script_share"
    limit = settings.max_repeated_line_share
    if limit < 1.0 and repeated_line_share(original_lines) > limit:
        return "repeated_lines"
    return None
