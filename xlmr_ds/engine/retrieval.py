"""Parallel sentence retrieval without fine-tuning (XTREME's Tatoeba and BUCC setting): each sentence is the
mean of one layer's hidden states over its tokens (<s> and </s> included, padding not), and its nearest
neighbour by cosine similarity among the other side's sentences is its retrieved translation. Accuracy@1 in
both directions; the table's metric is their mean.

Parallel files are plain UTF-8 text, one sentence per line, line i of the source translating line i of the
target; both must have the same number of lines and no empty line. Lines are read as task files' are
(tasks/formats.py): a leading byte-order mark dropped, split at "\\n" (or "\\r\\n") only, as `wc -l` counts them.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from xlmr_ds.engine.pretrained import Pretrained, load_pretrained
from xlmr_ds.errors import XLMRDSError
from xlmr_ds.logs import log
from xlmr_ds.model.modeling import XLMRModel
from xlmr_ds.tasks.encoding import Encoded, collate
from xlmr_ds.tasks.formats import read_lines
from xlmr_ds.tasks.results import ResultTable
from xlmr_ds.tasks.settings import RetrievalPair, RetrievalSettings
from xlmr_ds.tokenizer import Tokenizer
from xlmr_ds.vocab import BOS_ID, EOS_ID

DIRECTIONS = ("src->tgt", "tgt->src")


def default_layer(num_layers: int) -> int:
    """The middle block's output (XTREME reads a middle layer: the top ones are specialised to the MLM task)."""
    return max(1, num_layers // 2)


def read_parallel(pair: RetrievalPair) -> tuple[list[str], list[str]]:
    sides = []
    for path in (Path(pair.source), Path(pair.target)):
        if not path.is_file():
            raise XLMRDSError(f"{path}: not found (--pairs {pair.language}=SRC:TGT)")
        lines = read_lines(path)  # as every task file: a byte-order mark dropped, lines split at "\n" only
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                raise XLMRDSError(f"{path}:{number}: an empty line; parallel files hold one sentence per line")
            if "\r" in line:  # a sentence holds none: these are old Mac line ends, which would pair wrong lines
                raise XLMRDSError(f"{path}:{number}: a carriage return inside the line (old Mac line ends?); "
                                  f"parallel files end their lines with \\n or \\r\\n")
        if not lines:
            raise XLMRDSError(f"{path}: empty; expected one sentence per line")
        sides.append(lines)
    if len(sides[0]) != len(sides[1]):
        raise XLMRDSError(f"--pairs {pair.language}: {pair.source} has {len(sides[0])} lines but {pair.target} has "
                          f"{len(sides[1])}; line i of one must translate line i of the other")
    return sides[0], sides[1]


@torch.no_grad()
def sentence_embeddings(model: XLMRModel, tokenizer: Tokenizer, sentences: list[str], layer: int,
                        max_length: int, batch_size: int, device: torch.device) -> torch.Tensor:
    """(sentences, hidden): the mean of the hidden states after `layer` blocks over each sentence's tokens."""
    encoded = [Encoded((BOS_ID, *ids[: max_length - 2].tolist(), EOS_ID), 0)
               for ids in tokenizer.encode_batch(sentences)]
    out = []
    for start in range(0, len(encoded), batch_size):
        batch = collate(encoded[start:start + batch_size])
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        hidden = model.encode(ids, mask, num_layers=layer).float()
        weights = mask.unsqueeze(-1).float()
        out.append(((hidden * weights).sum(1) / weights.sum(1)).cpu())
    return torch.cat(out)


def retrieval_accuracy(source: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Accuracy@1 of finding row i of `target` from row i of `source` by cosine similarity, and back."""
    similarity = F.normalize(source, dim=-1) @ F.normalize(target, dim=-1).T
    gold = torch.arange(len(source))
    forward = similarity.argmax(dim=1).eq(gold).float().mean().item()
    backward = similarity.argmax(dim=0).eq(gold).float().mean().item()
    return forward, backward


def evaluate_retrieval(settings: RetrievalSettings, pretrained: Pretrained | None = None) -> ResultTable:
    pretrained = pretrained or load_pretrained(settings.model, settings.step)
    model = pretrained.model
    texts = {pair.language: read_parallel(pair) for pair in settings.pairs}  # every file checked first
    layers = model.config.num_layers
    layer = default_layer(layers) if settings.layer is None else settings.layer
    if not 0 <= layer <= layers:
        raise XLMRDSError(f"--layer={layer}: the model has {layers} blocks; choose 0 (the embeddings) to {layers}")
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    model = model.to(device).eval()
    max_length = min(settings.max_length, model.config.max_sequence_length)
    table = ResultTable("retrieval", "accuracy@1", (), details=DIRECTIONS)
    table.extra.update(layer=layer, model=pretrained.description, pretraining_step=pretrained.step)
    for pair in settings.pairs:
        source_lines, target_lines = texts[pair.language]
        source, target = (sentence_embeddings(model, pretrained.tokenizer, lines, layer, max_length,
                                              settings.batch_size, device) for lines in (source_lines, target_lines))
        forward, backward = retrieval_accuracy(source, target)
        table.add(pair.language, (forward + backward) / 2, len(source_lines),
                  **{DIRECTIONS[0]: forward, DIRECTIONS[1]: backward})
        log(f"retrieval {pair.language}: {forward:.4f} {DIRECTIONS[0]}, {backward:.4f} {DIRECTIONS[1]} over "
            f"{len(source_lines)} pairs (layer {layer})")
    return table
