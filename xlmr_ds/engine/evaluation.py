"""Per-language masked-LM loss, perplexity and accuracy on held-out blocks (deterministic masks), and the
accuracy of the best guess that ignores the context, measured on the same masked tokens.

`forward` is anything that maps (input_ids, attention_mask, labels) to an output with .loss and .logits
of the labelled positions: our model, or a DeepSpeed engine wrapping it. `on_batch`, if given, is called
after each batch (the trainer's progress watchdog).

With `shuffle_seed`, every block's tokens after <s> are put in a random order first, each label moving with its
token: the same masked tokens to predict, without word order. The rise of the loss is what the model takes from
order; a model that has only learned which pieces a language uses (the first plateau of masked-LM training)
shows none.

The context-free guess of a language is its most frequent piece in its training blocks: with the masked positions
drawn uniformly, no prediction that ignores the context is right more often (a unigram model's top-1 answer is
that piece at every position). A model's accuracy above it is what it took from the context.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from xlmr_ds.dataset.loader import PretrainingData, collate
from xlmr_ds.dataset.sampling import stable_seed
from xlmr_ds.vocab import IGNORE_INDEX

CONTEXT_FREE_BLOCKS = 2000
"""Training blocks per language whose pieces are counted for the context-free guess, evenly spaced over the
split: a bounded read at any corpus size, and a few thousand blocks name the most frequent piece of a language."""


def context_free_guesses(data: PretrainingData, blocks: int = CONTEXT_FREE_BLOCKS) -> dict[str, int]:
    """Each language's most frequent piece (never a special id) in `blocks` of its training blocks."""
    special = np.asarray(data.masking.special_ids)
    guesses = {}
    for language in data.languages:
        available = len(data.blocks[language][0])
        # Spread over the whole split: a corpus's first blocks can be one source or one topic.
        chosen = np.unique(np.linspace(0, available - 1, min(blocks, available)).astype(np.int64)) if available else []
        tokens = [data.block_tokens(language, 0, int(block)) for block in chosen]
        counts = np.bincount(np.concatenate(tokens), minlength=data.vocab_size) if tokens else \
            np.zeros(data.vocab_size, dtype=np.int64)
        counts[special] = -1
        guesses[language] = int(counts.argmax())
    return guesses


@torch.no_grad()
def evaluate_languages(forward: Callable, data: PretrainingData, samples_per_language: int, batch_size: int,
                       device: torch.device, on_batch: Callable[[], None] | None = None,
                       shuffle_seed: int | None = None, guesses: dict[str, int] | None = None) -> dict[str, dict]:
    """Per language: loss, perplexity, top-1 accuracy and the number of masked tokens; with `guesses` (a piece
    per language), also the accuracy of always answering that piece, `accuracy_context_free`."""
    results = {}
    for language in data.languages:
        samples = list(data.validation_samples(language, limit=samples_per_language))
        if shuffle_seed is not None:
            samples = [shuffled_order(s, stable_seed(shuffle_seed, "shuffled-order", language, s["sample_index"]))
                       for s in samples]
        loss_sum, correct, guessed, count = 0.0, 0, 0, 0
        guess = guesses.get(language) if guesses else None
        for start in range(0, len(samples), batch_size):
            batch = collate(samples[start:start + batch_size])
            labels = batch["labels"]
            labelled = labels.ne(IGNORE_INDEX)
            n = int(labelled.sum())
            if not n:
                continue
            output = forward(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                             labels=labels.to(device))
            loss_sum += float(output.loss) * n
            correct += int((output.logits.argmax(dim=-1).cpu() == labels[labelled]).sum())
            if guess is not None:
                guessed += int((labels[labelled] == guess).sum())
            count += n
            if on_batch is not None:
                on_batch()
        if count:
            loss = loss_sum / count
            results[language] = {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "accuracy": correct / count,
                                 "tokens": count}
            if guess is not None:
                results[language].update(accuracy_context_free=guessed / count, context_free_id=guess)
    return results


def shuffled_order(sample: dict, seed: int) -> dict:
    """The sample with its tokens after <s> in a random order, each label moving with its token."""
    order = np.concatenate([[0], 1 + np.random.default_rng(seed).permutation(len(sample["input_ids"]) - 1)])
    return {**sample, "input_ids": sample["input_ids"][order], "labels": sample["labels"][order]}
