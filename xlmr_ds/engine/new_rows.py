"""A phase that trains only the embedding rows a vocabulary extension added (recipe key "train":
"new_embeddings"), the rest of the model frozen, as adaptation work commonly starts.

Backward hooks on every parameter zero the gradients of everything but the new rows of the word embeddings
(tied to the LM decoder) and the new entries of the LM-head bias, before DeepSpeed reduces or partitions
them, so it works under every ZeRO stage; weight decay is off while the phase runs, since AdamW's decay moves
a parameter even when its gradient is zero. With zero gradients and Adam's moments still zero a frozen
parameter's update is exactly zero, which is why such phases must come first (recipe.py checks it): after a
phase that trained everything the moments are not zero and would keep moving it.
"""

from __future__ import annotations

import torch
from torch import nn

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.jsonfile import read_json_object

EXTENSION_FILE = "vocab_extension.json"
"""Written by `xlmr-ds model extend-vocab` beside the grown model: which ids it added (new_rows)."""


def read_new_rows(model_dir: str | None, where: str) -> range:
    """The added ids of a model grown by extend-vocab (its vocab_extension.json)."""
    if not model_dir:
        raise XLMRDSError(f"{where}: \"train\": \"new_embeddings\" needs --init-from a model grown by "
                          f"`xlmr-ds model extend-vocab` (its {EXTENSION_FILE} names the new rows)")
    path = f"{model_dir}/{EXTENSION_FILE}"
    try:
        extension = read_json_object(path, "vocabulary extension")
    except XLMRDSError:
        raise XLMRDSError(f"{where}: \"train\": \"new_embeddings\" needs --init-from a model grown by "
                          f"`xlmr-ds model extend-vocab`; {path} is missing or unreadable") from None
    first, end = extension.get("new_rows", (None, None))
    if not (isinstance(first, int) and isinstance(end, int) and 0 < first < end):
        raise XLMRDSError(f"{path}: new_rows must be [first, end) ids with 0 < first < end (got "
                          f"{extension.get('new_rows')!r})")
    return range(first, end)


class NewRowsOnly:
    """The hooks; `set_active(phase trains new rows only, optimizer)` before each step."""

    def __init__(self, model: nn.Module, new_rows: range):
        embedding = model.embeddings.word.weight
        bias = model.lm_head.bias
        if new_rows.stop > embedding.shape[0]:
            raise XLMRDSError(f"new rows {new_rows.start}-{new_rows.stop - 1} are past the model's "
                              f"{embedding.shape[0]:,} ids: --init-from is not the grown model")
        self.active = False
        self._decay: list[float] | None = None
        keep = torch.zeros(embedding.shape[0], dtype=torch.bool)
        keep[new_rows.start:new_rows.stop] = True
        self._keep = keep
        seen = set()
        for parameter in model.parameters():
            if id(parameter) in seen:
                continue
            seen.add(id(parameter))
            if parameter is embedding:
                parameter.register_hook(lambda grad: self._rows(grad, 1))
            elif parameter is bias:
                parameter.register_hook(lambda grad: self._rows(grad, 0))
            else:
                parameter.register_hook(lambda grad: torch.zeros_like(grad) if self.active else grad)

    def _rows(self, grad: torch.Tensor, dims: int) -> torch.Tensor:
        if not self.active:
            return grad
        keep = self._keep.to(grad.device)
        return grad * (keep.view(-1, *([1] * dims)) if dims else keep).to(grad.dtype)

    def set_active(self, active: bool, optimizer) -> None:
        if active == self.active:
            return
        groups = optimizer.param_groups
        if active:
            self._decay = [group.get("weight_decay", 0.0) for group in groups]
            for group in groups:
                group["weight_decay"] = 0.0
        elif self._decay is not None:
            for group, decay in zip(groups, self._decay):
                group["weight_decay"] = decay
        self.active = active
