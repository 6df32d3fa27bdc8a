"""Tokenizer training: a SentencePiece model trained on an alpha-sampled corpus, and extended with new pieces."""
