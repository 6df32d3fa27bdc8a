import unicodedata

from xlmr_ds.prep.corpus.shards import discover_corpus
from xlmr_ds.prep.demo.corpus import write_demo_corpus

SCRIPTS = ["LATIN", "CYRILLIC", "ARABIC", "DEVANAGARI", "CJK", "HANGUL", "GREEK", "BENGALI", "THAI", "ARMENIAN"]


def _scripts(text: str) -> set[str]:
    found = set()
    for char in text[:5000]:
        if char.isalpha():
            name = unicodedata.name(char, "")
            found.update(script for script in SCRIPTS if name.startswith(script) or f" {script}" in name)
    return found


def test_demo_corpus_has_many_languages_and_scripts_and_is_deterministic(tmp_path):
    sizes = write_demo_corpus(tmp_path / "a", seed=0, scale=0.2)
    assert len(sizes) >= 15
    languages = {f.language for f in discover_corpus(tmp_path / "a")}
    assert languages == set(sizes)
    scripts = set()
    for language in languages:
        scripts |= _scripts((tmp_path / "a" / f"{language}.txt").read_text(encoding="utf-8"))
    assert {"LATIN", "CYRILLIC", "ARABIC", "DEVANAGARI", "CJK"} <= scripts
    assert len(scripts) >= 8
    write_demo_corpus(tmp_path / "b", seed=0, scale=0.2)
    write_demo_corpus(tmp_path / "c", seed=1, scale=0.2)
    for language in languages:
        a, b, c = ((tmp_path / d / f"{language}.txt").read_bytes() for d in "abc")
        assert a == b
        assert a != c
    assert max(sizes.values()) > 10 * min(sizes.values())  # sizes differ: alpha sampling matters


def test_documents_are_blank_line_separated(tmp_path):
    write_demo_corpus(tmp_path, seed=0, scale=0.1)
    text = (tmp_path / "en.txt").read_text(encoding="utf-8")
    documents = text.strip("\n").split("\n\n")
    assert len(documents) > 5
    assert all(document.strip() and "\n\n" not in document for document in documents)
