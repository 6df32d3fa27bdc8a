"""The MLM masking kernel equals the data path's NumPy masking bit for bit; the dispatch and the loader agree."""

import numpy as np
import pytest
import torch
from cases import device

from xlmr_ds.dataset.loader import DataConfig, PretrainingData, build_train_loader
from xlmr_ds.kernels import mlm_mask
from xlmr_ds.kernels.mlm_masking import mlm_mask as triton_mlm_mask
from xlmr_ds.kernels.mlm_masking_reference import MaskingConfig, mask_tokens
from xlmr_ds.vocab import IGNORE_INDEX

CONFIG = MaskingConfig(vocab_size=1002, special_ids=(0, 1, 2, 3, 1001))


def _tokens(batch, seq, seed=0):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, 1001, (batch, seq), generator=generator)
    tokens[:, 0] = 0
    tokens[-1, seq // 2:] = 1  # a padded row
    return tokens


@pytest.mark.parametrize("seed", [0, 17, 2**40 + 3, 2**64 - 1])
@pytest.mark.parametrize("seq", [1, 37, 512, 1500])
@pytest.mark.parametrize("sample_index", [[0, 1, 2], [5, 2**32 - 1, 2**32], [2**50 + 9, 123456789012, 7]],
                         ids=["small", "word_boundary", "large"])
def test_kernel_equals_the_numpy_reference_bit_for_bit(seed, seq, sample_index):
    tokens = _tokens(3, seq, seed % 97)
    index = torch.tensor(sample_index, dtype=torch.int64)
    input_ids, labels = triton_mlm_mask(tokens.to(device()), index.to(device()), CONFIG, seed)
    for row in range(3):
        expected_ids, expected_labels = mask_tokens(tokens[row].numpy(), CONFIG, seed, sample_index[row])
        assert np.array_equal(input_ids[row].cpu().numpy(), expected_ids)
        assert np.array_equal(labels[row].cpu().numpy(), expected_labels)


def test_kernel_rates_follow_the_rule_and_specials_are_never_chosen():
    tokens = _tokens(64, 512, 1)
    input_ids, labels = triton_mlm_mask(tokens.to(device()), torch.arange(64, device=device()), CONFIG, 3)
    input_ids, labels, tokens = input_ids.cpu(), labels.cpu(), tokens
    special = torch.isin(tokens, torch.tensor(CONFIG.special_ids))
    chosen = labels != IGNORE_INDEX
    assert not (chosen & special).any()
    assert torch.equal(input_ids[~chosen], tokens[~chosen])
    rate = chosen.sum().item() / (~special).sum().item()
    assert abs(rate - 0.15) < 0.01
    masked = (input_ids[chosen] == CONFIG.mask_id).float().mean().item()
    kept = (input_ids[chosen] == tokens[chosen]).float().mean().item()
    assert abs(masked - 0.8) < 0.02 and abs(kept - 0.1) < 0.02
    randomised = input_ids[chosen & (input_ids != CONFIG.mask_id)]
    assert randomised.min() >= CONFIG.first_regular_id and randomised.max() < CONFIG.mask_id


@pytest.mark.parametrize("backend", ["numpy", "triton"])
def test_dispatch_backends_agree(backend):
    tokens, index = _tokens(2, 40), torch.tensor([10, 11])
    reference = mlm_mask(tokens, index, CONFIG, 5, backend="numpy")
    result = mlm_mask(tokens.to(device()), index.to(device()), CONFIG, 5, backend=backend)
    assert all(torch.equal(a.cpu(), b) for a, b in zip(result, reference))


def test_loader_batches_masked_on_the_device_equal_the_loaders_own_masking(binarized_dir):
    data = PretrainingData(DataConfig(str(binarized_dir), block_size=64, seed=3))
    masked = build_train_loader(data, 8, 4, rank=0, world_size=1, masked=True)
    plain = build_train_loader(data, 8, 4, rank=0, world_size=1, masked=False)
    for _, expected, batch in zip(range(3), masked, plain):
        assert (batch["labels"] == IGNORE_INDEX).all()
        input_ids, labels = mlm_mask(batch["input_ids"].to(device()), batch["sample_index"].to(device()),
                                     data.masking, data.config.seed, backend="triton")
        assert torch.equal(input_ids.cpu(), expected["input_ids"])
        assert torch.equal(labels.cpu(), expected["labels"])
