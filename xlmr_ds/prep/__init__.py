"""Offline data preparation, run once before training: corpus reading, the demo corpus, SentencePiece training,
the tokenizer, and binarization into indexed datasets (MPI-parallel). Writes what xlmr_ds.dataset reads."""
