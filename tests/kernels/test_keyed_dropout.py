"""Dropout keyed by sample (kernels/keyed_dropout.py): a sample's masks depend on (seed, sample index, site) only,
so its hidden states and gradients are the same whichever batch, row or padding it comes in, on every backend
(the Triton kernels in the interpreter on CPU), with activation checkpointing too."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from cases import device

from xlmr_ds.kernels import BatchDropoutSeeds, DropoutKeys
from xlmr_ds.kernels.keyed_dropout import keep_mask, sample_seeds
from xlmr_ds.model.config import preset
from xlmr_ds.model.modeling import XLMRForMaskedLM

LENGTHS = [24, 11, 20, 7]  # 26 of 96 tokens are padding: the Triton backend takes its unpadded path


def test_seeds_differ_by_sample_and_site_and_follow_the_run_seed():
    table = sample_seeds(3, np.array([0, 1, 2**33 + 1]), sites=7)
    assert table.shape == (7, 3) and table.dtype == np.int64 and (table >= 0).all()
    assert len(set(table.flatten().tolist())) == table.size
    assert np.array_equal(table, sample_seeds(3, np.array([0, 1, 2**33 + 1]), sites=7))
    assert np.array_equal(table[:, 1], sample_seeds(3, np.array([1]), sites=7)[:, 0])
    assert not np.array_equal(table, sample_seeds(4, np.array([0, 1, 2**33 + 1]), sites=7))


@pytest.mark.parametrize("kind,shape", [("tokens", (24, 64)), ("attention", (2, 24, 24))])
def test_masks_keep_1_minus_p_of_the_real_tokens_and_all_of_the_padding(kind, shape):
    seeds = BatchDropoutSeeds(DropoutKeys(1, torch.arange(4)), LENGTHS, sites=1, device=torch.device("cpu")).site(0)
    keep = keep_mask(seeds, 0.25, shape, kind, torch.device("cpu"))
    real = torch.zeros_like(keep)
    for b, n in enumerate(LENGTHS):
        if kind == "tokens":
            real[b, :n] = True
        else:
            real[b, :, :n, :n] = True
    assert keep[~real].all()
    assert abs(keep[real].float().mean().item() - 0.75) < 0.03
    # Padded further, every sample keeps the same mask over its real tokens.
    padded = (32, shape[1]) if kind == "tokens" else (2, 32, 32)
    longer = keep_mask(seeds, 0.25, padded, kind, torch.device("cpu"))
    assert torch.equal(longer[:, :24] if kind == "tokens" else longer[:, :, :24, :24], keep)


def _batch(vocab_size: int):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab_size - 1, (len(LENGTHS), max(LENGTHS)), generator=generator)
    mask = (torch.arange(max(LENGTHS))[None, :] < torch.tensor(LENGTHS)[:, None]).long()
    return ids.masked_fill(mask == 0, 1).to(device()), mask.to(device())


# (backend, activation checkpointing). Recomputation is the same on every backend: checked once, on the
# quickest; the Triton interpreter is slow, so its model has one layer.
CASES = [("torch", False), ("torch", True), ("eager", False), ("triton", False)]


@pytest.mark.parametrize("backend,checkpointing", CASES, ids=lambda v: str(v))
def test_a_samples_states_and_gradients_do_not_depend_on_its_batch(backend, checkpointing):
    torch.manual_seed(0)
    config = replace(preset("tiny"), hidden_dropout=0.2, attention_dropout=0.2,
                     num_layers=1 if backend == "triton" else 2)
    model = XLMRForMaskedLM(config, kernel_backend=backend).to(device()).train()
    model.activation_checkpointing = checkpointing
    ids, mask = _batch(config.vocab_size)
    index = torch.tensor([40, 41, 42, 43])

    def run(rows, seq, rng_seed):
        """Hidden states of samples `rows`, padded to `seq`, and the gradient of their sum w.r.t. the weights."""
        torch.manual_seed(rng_seed)  # keyed dropout must not read torch's RNG
        model.zero_grad()
        hidden = model.encode(ids[rows, :seq], mask[rows, :seq], dropout_keys=DropoutKeys(9, index[rows]))
        (hidden * mask[rows, :seq, None]).sum().backward()
        return hidden.detach(), model.layers[0].attention.query.weight.grad.clone()

    whole, whole_grad = run([0, 1, 2, 3], 24, rng_seed=1)
    again, _ = run([0, 1, 2, 3], 24, rng_seed=2)
    assert torch.equal(whole, again)
    # Sample 41 (11 tokens) alone without padding, and sample 43 (7 tokens) first in a batch of two.
    alone, _ = run([1], 11, rng_seed=3)
    torch.testing.assert_close(alone[0], whole[1, :11], rtol=0, atol=2e-5)
    pair, _ = run([3, 2], 20, rng_seed=4)
    torch.testing.assert_close(pair[0, :7], whole[3, :7], rtol=0, atol=2e-5)
    torch.testing.assert_close(pair[1], whole[2, :20], rtol=0, atol=2e-5)
    # Gradients add up over a split batch as over the whole one (what data parallelism relies on).
    _, first = run([0, 1], 24, rng_seed=5)
    _, second = run([2, 3], 20, rng_seed=6)
    torch.testing.assert_close(first + second, whole_grad, rtol=1e-4, atol=1e-5)
    # Another seed, other masks.
    model.zero_grad()
    other = model.encode(ids, mask, dropout_keys=DropoutKeys(10, index)).detach()
    assert (other - whole).abs().max() > 1e-2
