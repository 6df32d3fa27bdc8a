"""A block-index build removes the staging directories of killed builds, and only those."""

import fcntl

import pytest

from xlmr_ds.dataset.block_index import BUILD_LOCK, _remove_abandoned_staging

KEY = "0123456789abcdef0123"


@pytest.mark.parametrize("case,removed", [
    ("its builder was killed (the lock is free)", True),
    ("its builder is running (the lock is held)", False),
    ("it was just created (no lock file yet)", False),
    ("it belongs to another cache", False),
])
def test_only_staging_whose_builder_is_gone_is_removed(tmp_path, case, removed):
    cache_dir = tmp_path / ".index" / KEY
    cache_dir.parent.mkdir()
    key = "fedcba9876543210fedc" if case == "it belongs to another cache" else KEY
    staging = cache_dir.parent / f".{key}.k2j3h4"
    staging.mkdir()
    (staging / "en.train.npy").write_bytes(b"partial")
    if case != "it was just created (no lock file yet)":
        (staging / BUILD_LOCK).touch()
    with open(staging / BUILD_LOCK if (staging / BUILD_LOCK).exists() else staging / "en.train.npy") as held:
        if case == "its builder is running (the lock is held)":
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file: conflicts like another process
        _remove_abandoned_staging(cache_dir)
    assert staging.exists() is not removed
