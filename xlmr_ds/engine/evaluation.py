"""Per-language masked-LM loss, perplexity and accuracy on held-out blocks (deterministic masks).

`forward` is anything that maps (input_ids, attention_mask, labels) to an output with .loss and .logits
of the labelled positions: our model, or a DeepSpeed engine wrapping it. `on_batch`, if given, is called
after each batch (the trainer's progress watchdog).

With `shuffle_seed`, every block's tokens after <s> are put in a random order first, each label moving with its
token: the same masked tokens to predict, without word order. The rise of the loss is what the model takes from
order; a model that has only learned which pieces a language uses (the first plateau of masked-LM training)
shows none.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from xlmr_ds.dataset.loader import PretrainingData, collate
from xlmr_ds.dataset.sampling import stable_seed
from xlmr_ds.vocab import IGNORE_INDEX


@torch.no_grad()
def evaluate_languages(forward: Callable, data: PretrainingData, samples_per_language: int, batch_size: int,
                       device: torch.device, on_batch: Callable[[], None] | None = None,
                       shuffle_seed: int | None = None) -> dict[str, dict]:
    results = {}
    for language in data.languages:
        samples = list(data.validation_samples(language, limit=samples_per_language))
        if shuffle_seed is not None:
            samples = [shuffled_order(s, stable_seed(shuffle_seed, "shuffled-order", language, s["sample_index"]))
                       for s in samples]
        loss_sum, correct, count = 0.0, 0, 0
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
            count += n
            if on_batch is not None:
                on_batch()
        if count:
            loss = loss_sum / count
            results[language] = {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "accuracy": correct / count,
                                 "tokens": count}
    return results


def shuffled_order(sample: dict, seed: int) -> dict:
    """The sample with its tokens after <s> in a random order, each label moving with its token."""
    order = np.concatenate([[0], 1 + np.random.default_rng(seed).permutation(len(sample["input_ids"]) - 1)])
    return {**sample, "input_ids": sample["input_ids"][order], "labels": sample["labels"][order]}
