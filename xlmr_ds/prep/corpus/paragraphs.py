"""Paragraph normalization and hashing for exact deduplication, as CCNet does it for CC-100.

A paragraph (one line of a document) is normalized before hashing, so that copies differing only in case,
digits, punctuation or accents count as one: strip surrounding whitespace, lower-case, decompose (NFD) and
drop the combining diacritical marks (accents of Latin, Greek and Cyrillic letters; the vowel signs of
Indic and Southeast Asian scripts are letters of their words and are kept), replace every decimal digit by
0, delete punctuation and control characters. Its hash is the first 8 bytes of the SHA-1 of the normalized
text's UTF-8, read as a little-endian unsigned 64-bit integer (CCNet's choice; 2^64 values make a false
match unlikely below billions of distinct paragraphs).
"""

from __future__ import annotations

import hashlib
import unicodedata
from functools import lru_cache

import numpy as np

# The combining diacritical mark blocks: what "accents" are. Script-specific combining marks (Devanagari
# vowel signs, Thai tone marks, ...) are outside them and change a word, so they stay.
_DIACRITICAL_BLOCKS = ((0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F))


_PLANES_WITH_PUNCTUATION = 0x20000


@lru_cache(maxsize=1)
def _translation() -> dict[int, int | None]:
    """str.translate table: digits -> '0'; punctuation, control characters and diacritical marks deleted."""
    table: dict[int, int | None] = {}
    # Planes 2 and above hold ideographs, tags, variation selectors and private use: no punctuation, digit or
    # control character, so the scan stops at plane 1 (a tenth of the time: it runs once per process).
    for code in range(_PLANES_WITH_PUNCTUATION):
        category = unicodedata.category(chr(code))
        if category == "Nd":
            table[code] = ord("0")
        elif category[0] == "P" or category == "Cc":
            table[code] = None
    for low, high in _DIACRITICAL_BLOCKS:
        for code in range(low, high + 1):
            table[code] = None
    return table


def normalize_paragraph(line: str) -> str:
    """The form of a line that its copies share (see the module docstring)."""
    line = unicodedata.normalize("NFD", line.strip().lower())
    return line.translate(_translation())


def paragraph_hash(line: str) -> int:
    """The 64-bit dedup hash of a line."""
    digest = hashlib.sha1(normalize_paragraph(line).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def paragraph_hashes(lines: list[str]) -> np.ndarray:
    """paragraph_hash of every line, as uint64."""
    table = _translation()
    sha1 = hashlib.sha1
    digests = b"".join(sha1(unicodedata.normalize("NFD", line.strip().lower()).translate(table).encode()).digest()[:8]
                       for line in lines)
    return np.frombuffer(digests, dtype="<u8").copy() if lines else np.zeros(0, dtype="<u8")
