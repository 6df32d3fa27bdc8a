"""xlmr-ds: pretraining XLM-RoBERTa-style multilingual masked language models with DeepSpeed."""

__version__ = "0.1.0"
