"""Fill-mask on held-out text, as training goes: one whole word masked in a held-out block of each probed
language, the model's rank for it and its top answers at every evaluation.

The blocks and words are chosen by a seeded rule, never by hand: per language, the held-out blocks in an order
drawn from (seed, "word-probe", language), the first that holds a whole word (`xlmr_ds.tokenizer.is_whole_word`:
a piece of letters that the next piece does not continue), and one of its whole words drawn from the same
generator. Nothing else in the block is masked, and the block is read at the length training reads it. The same
probes are asked at step 0 and at the end, so the report shows what training changed on text the model never saw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from xlmr_ds.dataset.loader import PretrainingData, collate
from xlmr_ds.dataset.sampling import stable_seed
from xlmr_ds.tokenizer import WORD_START, Tokenizer, is_whole_word
from xlmr_ds.vocab import IGNORE_INDEX

PROBE_LANGUAGES = 4
"""Languages probed when the run names none: the ones with the most training tokens."""

BLOCKS_TRIED = 64
"""Held-out blocks looked at per language before the language is left without a probe."""

TOP_ANSWERS = 3


@dataclass(frozen=True)
class WordProbe:
    language: str
    block: int
    """Index of the held-out block."""
    position: int
    """Position of the masked piece in the block (<s> is position 0)."""
    target: int
    """The masked piece's XLM-R id."""


def default_probe_languages(data: PretrainingData, count: int = PROBE_LANGUAGES) -> list[str]:
    """The `count` languages with the most tokens, largest first (ties by name)."""
    tokens = {language: int(dataset.num_tokens) for language, dataset in data.datasets.items()}
    return sorted(data.languages, key=lambda language: (-tokens[language], language))[:count]


def choose_word_probes(data: PretrainingData, tokenizer: Tokenizer, languages: list[str],
                       seed: int) -> list[WordProbe]:
    """One probe per language that has a held-out block with a whole word among its first BLOCKS_TRIED."""
    probes = []
    for language in languages:
        rng = np.random.default_rng(stable_seed(seed, "word-probe", language))
        for block in rng.permutation(len(data.blocks[language][1]))[:BLOCKS_TRIED].tolist():
            tokens = data.block_tokens(language, 1, block)
            pieces = [tokenizer.id_to_piece(int(token)) for token in tokens]
            words = [position for position in range(1, len(pieces)) if is_whole_word(pieces, position)]
            if words:
                position = int(rng.choice(words))
                probes.append(WordProbe(language, block, position, int(tokens[position])))
                break
    return probes


def masked_text(pieces: list[str], position: int) -> str:
    """The block as text with <mask> where the probed piece is; a document's end (</s>) shows as ¶."""
    shown = [(WORD_START if piece.startswith(WORD_START) else "") + "<mask>" if index == position else
             WORD_START + "¶" + WORD_START if piece == "</s>" else piece
             for index, piece in enumerate(pieces) if piece not in ("<s>", "<pad>")]
    return " ".join("".join(shown).replace(WORD_START, " ").split()).removesuffix(" ¶").removesuffix("¶")


@torch.no_grad()
def ask_word_probes(forward: Callable, data: PretrainingData, tokenizer: Tokenizer, probes: list[WordProbe],
                    device: torch.device) -> list[dict]:
    """Each probe's text, word, the model's rank for the word (1 = its top answer) and its top answers with their
    probabilities. `forward` maps (input_ids, attention_mask, labels) to logits of the labelled positions."""
    if not probes:
        return []
    samples = []
    for probe in probes:
        input_ids = data.block_tokens(probe.language, 1, probe.block)
        labels = np.full_like(input_ids, IGNORE_INDEX)
        labels[probe.position], input_ids[probe.position] = probe.target, tokenizer.mask_id
        samples.append({"input_ids": input_ids, "labels": labels, "language": 0, "sample_index": probe.block})
    batch = collate(samples)
    logits = forward(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                     labels=batch["labels"].to(device)).logits.float().cpu()  # one row per probe, in order
    answers = []
    for probe, row in zip(probes, logits):
        probabilities = torch.softmax(row, dim=-1)
        top = torch.topk(probabilities, TOP_ANSWERS)
        pieces = [tokenizer.id_to_piece(int(token)) for token in data.block_tokens(probe.language, 1, probe.block)]
        answers.append({"language": probe.language, "block": probe.block, "text": masked_text(pieces, probe.position),
                        "word": pieces[probe.position], "rank": 1 + int((row > row[probe.target]).sum()),
                        "top": [[tokenizer.id_to_piece(int(i)), round(float(p), 4)]
                                for p, i in zip(top.values, top.indices)]})
    return answers
