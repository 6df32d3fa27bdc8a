"""A crawl made from a per-language corpus, for `corpus build` to turn back into one (the demo starts here).

The corpus's documents, shuffled across languages, become JSON-lines shards (gzip) the way mC4 and crawls ship
them: one record per document with its text, a made-up URL and the language it came from (`language`, which
a crawl does not have; `corpus build --known-language-field language` tables its LID against it). Crawls
repeat themselves, so some documents get boilerplate paragraphs (a copyright line, a cookie notice, a menu:
the same few lines on many pages, some differing only in digits or case) and some documents appear again,
whole, in a later shard (mirrors). Everything is a function of the seed.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path

from xlmr_ds.dataset.sampling import stable_seed
from xlmr_ds.outputs import replaced_directory
from xlmr_ds.prep.corpus.reader import iter_language_lines
from xlmr_ds.prep.corpus.shards import ReplacementCounter, discover_corpus

BOILERPLATE = (
    "Copyright © {year} All rights reserved.",
    "COPYRIGHT © {year} ALL RIGHTS RESERVED.",
    "This website uses cookies to improve your experience. Accept | Decline",
    "Home | About us | Contact | Privacy policy",
    "Share on Facebook Share on Twitter Share by e-mail",
)
BOILERPLATE_SHARE = 0.2
"""Share of documents given one or two boilerplate paragraphs."""
MIRRORED_SHARE = 0.05
"""Share of documents that appear a second time, whole, in a later shard."""


def _documents(corpus_dir: Path) -> list[tuple[str, list[str]]]:
    documents = []
    for source in discover_corpus(corpus_dir):
        current: list[str] = []
        for line in iter_language_lines(source, ReplacementCounter()):
            if line.strip():
                current.append(line)
            elif current:
                documents.append((source.language, current))
                current = []
        if current:
            documents.append((source.language, current))
    return documents


def write_demo_crawl(corpus_dir: str | Path, out_dir: str | Path, shards: int = 4, seed: int = 0) -> dict:
    """Write OUT/crawl-<i>.jsonl.gz; returns what was written (documents, boilerplate and mirrored counts)."""
    rng = random.Random(stable_seed(seed, "demo-crawl"))
    documents = _documents(Path(corpus_dir))
    rng.shuffle(documents)
    records = []
    boilerplate = mirrored = 0
    for number, (language, lines) in enumerate(documents):
        lines = list(lines)
        if rng.random() < BOILERPLATE_SHARE:
            for _ in range(rng.randint(1, 2)):
                lines.insert(rng.choice((0, len(lines))), rng.choice(BOILERPLATE).format(year=rng.randint(2019, 2024)))
            boilerplate += 1
        records.append({"url": f"https://{language}.example.org/page/{number}", "language": language,
                        "text": "\n".join(lines)})
    per_shard = -(-len(records) // shards)
    shard_records = [records[i * per_shard:(i + 1) * per_shard] for i in range(shards)]
    for i in range(shards - 1):  # mirrors: a page seen again, later in the crawl
        for record in shard_records[i]:
            if rng.random() < MIRRORED_SHARE:
                later = shard_records[rng.randint(i + 1, shards - 1)]
                later.insert(rng.randint(0, len(later)), dict(record))
                mirrored += 1
    with replaced_directory(out_dir, lambda entry: re.fullmatch(r"crawl-\d{3}\.jsonl\.gz", entry.name) is not None,
                            "xlmr-ds corpus demo-crawl") as staging:
        for i, chunk in enumerate(shard_records):
            text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in chunk)
            (staging / f"crawl-{i:03d}.jsonl.gz").write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    return {"documents": len(records), "with_boilerplate": boilerplate, "mirrored": mirrored, "shards": shards}
