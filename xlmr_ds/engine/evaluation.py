"""Per-language masked-LM loss, perplexity and accuracy on held-out blocks (deterministic masks).

`forward` is anything that maps (input_ids, attention_mask, labels) to an output with .loss and .logits
of the labelled positions: our model, or a DeepSpeed engine wrapping it. `on_batch`, if given, is called
after each batch (the trainer's progress watchdog).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from xlmr_ds.dataset.loader import PretrainingData, collate
from xlmr_ds.vocab import IGNORE_INDEX


@torch.no_grad()
def evaluate_languages(forward: Callable, data: PretrainingData, samples_per_language: int, batch_size: int,
                       device: torch.device, on_batch: Callable[[], None] | None = None) -> dict[str, dict]:
    results = {}
    for language in data.languages:
        samples = list(data.validation_samples(language, limit=samples_per_language))
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
