"""Offline data preparation, run once before training; nothing here runs inside a training job. One subpackage a
stage: corpus/ (reading corpora as shipped, and `corpus build` from a raw crawl), spm/ (SentencePiece training and
extension), binarize.py (MPI-parallel binarization into indexed datasets, with shared_file.py), demo/ (the demo's
data). Writes what xlmr_ds.dataset reads; the run-time tokenizer is xlmr_ds/tokenizer.py."""
