"""The model with the Triton kernel backend (interpreter on CPU, tiny config) matches the torch backend,
on the padded path and on the unpadded (variable-length) path the model takes when a batch has enough padding."""

from dataclasses import replace

import pytest
import torch
from cases import device

from xlmr_ds.model.config import preset
from xlmr_ds.model.modeling import UNPAD_MIN_PADDING, XLMRForMaskedLM


def _batch(padding: str, vocab_size: int):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab_size - 1, (3, 24), generator=generator)
    mask = torch.ones_like(ids)
    if padding == "unpadded":  # 13 of 72 tokens are padding: above UNPAD_MIN_PADDING, the unpadded path
        mask[1, 15:], mask[2, 20:] = 0, 0
    elif padding == "padded":  # 2 of 72: below it, the padded kernel with a key mask
        mask[1, 22:] = 0
    ids = ids.masked_fill(mask == 0, 1)
    labels = torch.full_like(ids, -100)
    labels[:, 3:9] = ids[:, 3:9]
    return ids.to(device()), mask.to(device()), labels.to(device())


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "activation_checkpointing"])
@pytest.mark.parametrize("padding", ["none", "padded", "unpadded"])
def test_triton_backend_matches_torch_backend_in_loss_logits_and_gradients(padding, checkpointing):
    torch.manual_seed(0)
    # Training mode (activation checkpointing runs only there) without dropout, so the backends compare.
    model = XLMRForMaskedLM(replace(preset("tiny"), attention_dropout=0.0, hidden_dropout=0.0)).to(device()).train()
    model.activation_checkpointing = checkpointing
    ids, mask, labels = _batch(padding, model.config.vocab_size)
    if padding == "unpadded":
        assert model._unpadding(mask) is None  # the torch backend never unpads
    results = {}
    for backend in ("torch", "triton"):
        model.set_kernel_backend(backend)
        model.zero_grad()
        output = model(ids, mask, labels=labels)
        output.loss.backward()
        results[backend] = (output.loss.detach(), output.logits.detach(),
                            [p.grad.clone() for p in model.parameters()])
    unpadded = model._unpadding(mask)
    assert (unpadded is not None) == (padding == "unpadded"), UNPAD_MIN_PADDING
    torch.testing.assert_close(results["triton"][0], results["torch"][0], rtol=0, atol=1e-5)
    torch.testing.assert_close(results["triton"][1], results["torch"][1], rtol=0, atol=1e-4)
    for ours, theirs in zip(results["triton"][2], results["torch"][2]):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_attention_dropout_in_the_triton_backend_follows_the_torch_seed():
    model = XLMRForMaskedLM(preset("tiny")).to(device()).train()
    model.set_kernel_backend("triton")
    ids, mask, labels = _batch("unpadded", model.config.vocab_size)
    losses = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        losses.append(model(ids, mask, labels=labels).loss.item())
    assert losses[0] == losses[1] != losses[2]


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "activation_checkpointing"])
@pytest.mark.parametrize("padding", ["none", "padded", "unpadded"])
def test_modernbert_on_the_triton_backend_matches_the_torch_backend(padding, checkpointing):
    """ModernBERT's global and sliding-window layers (window 8 on each side, 24-token rows) through the fused
    attention kernel, against PyTorch's attention with the window as a mask: loss, logits and gradients."""
    from xlmr_ds.model.modern_config import MODERN_PRESETS
    from xlmr_ds.model.modern_modeling import ModernBertForMaskedLM

    torch.manual_seed(0)
    model = ModernBertForMaskedLM(MODERN_PRESETS["modern-tiny"].replace(num_layers=2, global_attn_every_n_layers=2))
    model = model.to(device()).train()
    model.activation_checkpointing = checkpointing
    ids, mask, labels = _batch(padding, model.config.vocab_size)
    results = {}
    for backend in ("torch", "triton"):
        model.set_kernel_backend(backend)
        model.zero_grad()
        output = model(ids, mask, labels=labels)
        output.loss.backward()
        results[backend] = (output.loss.detach(), output.logits.detach(), [p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(results["triton"][0], results["torch"][0], rtol=0, atol=1e-5)
    torch.testing.assert_close(results["triton"][1], results["torch"][1], rtol=0, atol=1e-4)
    for ours, theirs in zip(results["triton"][2], results["torch"][2]):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
