"""The demo's data, made offline from what installed packages ship: a multilingual corpus, a crawl of it, and a
cross-lingual task."""
