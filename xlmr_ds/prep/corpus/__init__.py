"""Corpus build: a raw crawl (WET files, JSON lines, text, parquet) into a CC-100-style corpus, and reading
corpora as they are shipped (shards.py, reader.py)."""
