"""Which strings are language codes, for the places that must tell a language from a word or a path: `LANG=FILE`
and `LANG=SRC:TGT` on the command line, a language in a task file's name (multinli.train.de.tsv).

A code is an ISO 639 language that the Unicode CLDR names (as Babel ships it; `xlmr-ds task demo` reads the
same data), optionally followed by script or region subtags: `de`, `zh-Hans`, `pt_BR`, `sr-Latn`. CLDR's
names rather than the languages of one's corpus, because a task's languages need not be the corpus's; its
names rather than its locales, because they cover every ISO 639-1 code, including XTREME languages such as
Tagalog (`tl`) that have no CLDR locale of their own. Words that file names hold (dev, test, all, train, src,
tgt, raw) are not codes there.
"""

from __future__ import annotations

import re
from functools import cache

_TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{2,8})*$")
_NOT_LANGUAGES = frozenset({"mul", "und", "zxx", "mis"})
"""ISO 639's codes for several, an undetermined, no, and an uncoded language: CLDR names them, none is one."""


@cache
def _cldr_languages() -> frozenset[str]:
    from babel import Locale

    return frozenset(code for code in Locale("en").languages if "_" not in code) - _NOT_LANGUAGES


def is_language_code(text: str) -> bool:
    """`text` is a language code: a language CLDR names, with any script or region subtags."""
    match = _TAG.match(text)
    return bool(match) and match.group(1).lower() in _cldr_languages()
