import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from xlmr_ds.dataset.loader import (
    DataConfig,
    DataParallelBatchSampler,
    PretrainingData,
    TrainLoader,
    build_train_loader,
)
from xlmr_ds.errors import XLMRDSError

GLOBAL_BATCH = 8


@pytest.fixture(scope="module")
def data(binarized_dir):
    return PretrainingData(DataConfig(str(binarized_dir), block_size=64, seed=5))


def _global_order(data, batches):
    """Sample indices of the first `batches` global batches, as a 1-rank run sees them."""
    loader = build_train_loader(data, GLOBAL_BATCH, GLOBAL_BATCH, rank=0, world_size=1)
    out = []
    for _, batch in zip(range(batches), loader):
        out.append(batch)
    return out


def _rank_batches(data, world_size, micro, consumed, batches):
    """For each global batch from `consumed` on, the samples of all ranks concatenated in rank order."""
    accumulation = GLOBAL_BATCH // (micro * world_size)
    iterators = [iter(build_train_loader(data, GLOBAL_BATCH, micro, r, world_size, consumed))
                 for r in range(world_size)]
    result = []
    for _ in range(batches):
        parts = []
        for iterator in iterators:
            for _ in range(accumulation):
                parts.append(next(iterator))
        result.append({key: torch.cat([p[key] for p in parts]) if key in ("sample_index", "language") else
                       [row for p in parts for row in p[key]] for key in parts[0]})
    return result


@pytest.mark.parametrize("world_size,micro", [(1, 2), (2, 4), (2, 1), (4, 2)])
def test_ranks_together_see_exactly_the_global_order(data, world_size, micro):
    reference = _global_order(data, 3)
    combined = _rank_batches(data, world_size, micro, 0, 3)
    for expected, actual in zip(reference, combined):
        assert actual["sample_index"].tolist() == expected["sample_index"].tolist()
        for row_expected, row_actual in zip(expected["input_ids"], actual["input_ids"]):
            n = int((row_expected != 1).sum())
            assert torch.equal(row_expected[:n], row_actual[:n])


@pytest.mark.parametrize("before,after", [(2, 2), (2, 1), (1, 2), (4, 2)])
def test_resume_with_same_or_other_world_size_continues_without_repeat_or_skip(data, before, after):
    unbroken = [b["sample_index"].tolist() for b in _global_order(data, 6)]
    first = [b["sample_index"].tolist() for b in _rank_batches(data, before, 1, 0, 3)]
    saved = TrainLoader(data, GLOBAL_BATCH, 1, 0, before)
    for _ in range(3):
        saved.step_done()
    position = TrainLoader(data, GLOBAL_BATCH, 1, 0, after)
    position.load_state_dict(saved.state_dict())
    resumed = [b["sample_index"].tolist() for b in _rank_batches(data, after, 1, position.consumed_samples, 3)]
    assert first + resumed == unbroken


def test_samples_are_masked_blocks_and_workers_change_nothing(data):
    plain = build_train_loader(data, GLOBAL_BATCH, 4, 0, 1)
    with_workers = build_train_loader(data, GLOBAL_BATCH, 4, 0, 1, num_workers=2)
    for _, a, b in zip(range(3), plain, with_workers):
        for key in a:
            assert torch.equal(a[key], b[key]), key
        assert a["input_ids"].shape[1] <= 64
        assert torch.all(a["input_ids"][:, 0] == 0)
        real = a["attention_mask"].bool()
        assert torch.all(a["input_ids"][~real] == 1) and torch.all(a["labels"][~real] == -100)
        assert (a["labels"] != -100).any()


def test_validation_blocks_are_held_out_documents_with_fixed_masks(data):
    for language in data.languages:
        first = list(data.validation_samples(language))
        again = list(data.validation_samples(language))
        assert first and len(first) == len(again)
        for a, b in zip(first, again):
            assert np.array_equal(a["input_ids"], b["input_ids"]) and np.array_equal(a["labels"], b["labels"])


def test_sampling_follows_alpha_over_manifest_tokens(data):
    tokens = {lang: data.manifest["languages"][lang]["tokens"] for lang in data.languages}
    total = sum(tokens.values())
    weights = {lang: (n / total) ** 0.3 for lang, n in tokens.items()}
    for lang in data.languages:
        assert data.probabilities[lang] == pytest.approx(weights[lang] / sum(weights.values()))
    languages = np.array([data.order[g][0] for g in range(30_000)])
    shares = np.bincount(languages, minlength=len(data.languages)) / len(languages)
    np.testing.assert_allclose(shares, [data.probabilities[lang] for lang in data.languages], atol=0.012)


def test_loader_state_errors(data):
    with pytest.raises(XLMRDSError, match="the checkpoint's data seed is 9 but --seed is 5"):
        TrainLoader(data, GLOBAL_BATCH, 1, 0, 1).load_state_dict({"consumed_samples": 8, "seed": 9})
    with pytest.raises(XLMRDSError, match="global batch 8 is not a multiple of micro batch 3 x 2"):
        DataParallelBatchSampler(8, 3, 0, 2)
    with pytest.raises(XLMRDSError, match="consumed_samples=5 is not at a global batch boundary"):
        DataParallelBatchSampler(8, 2, 0, 2, consumed_samples=5)


def test_block_index_is_cached_once_next_to_the_data(binarized_dir):
    config = DataConfig(str(binarized_dir), block_size=48, seed=0)
    PretrainingData(config)
    caches = [p for p in (binarized_dir / ".index").iterdir() if (p / "complete.json").exists()]
    stamps = {p: p.stat().st_mtime_ns for p in caches}
    PretrainingData(config)
    assert {p: p.stat().st_mtime_ns for p in caches} == stamps
    assert not [p for p in (binarized_dir / ".index").iterdir() if p.name.startswith(".")]


def test_a_dataset_changed_after_binarization_is_refused(binarized_dir, tmp_path):
    import shutil

    copy = tmp_path / "bin"
    shutil.copytree(binarized_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["languages"]["en"]["tokens"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(XLMRDSError, match=r"en.idx: \d+ tokens, but manifest.json says"):
        PretrainingData(DataConfig(str(copy)))


@pytest.mark.multiprocess
def test_index_built_under_mpi_is_one_cache_every_rank_reads(binarized_dir, tmp_path):
    import shutil

    copy = tmp_path / "bin"
    shutil.copytree(binarized_dir, copy, ignore=shutil.ignore_patterns(".index"))
    script = ("import sys; from xlmr_ds.dataset.loader import DataConfig, PretrainingData; "
              "d = PretrainingData(DataConfig(sys.argv[1], block_size=32)); "
              "sys.stdout.write(f\"{d.train_sample(3)['input_ids'].sum()}\\n\")")  # one write: the ranks interleave
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    result = subprocess.run([mpiexec, "-n", "2", sys.executable, "-c", script, str(copy)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    sums = result.stdout.split()
    assert len(sums) == 2 and sums[0] == sums[1]
    assert len(list((copy / ".index").iterdir())) == 1
