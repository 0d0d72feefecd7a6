"""The training input cache: keyed by contract and source files, atomic, rebuilt when stale."""

from __future__ import annotations

import os

import numpy as np

from sct_lesion_classify.train.data import SubjectSplit, join_splits
from sct_lesion_classify.train.input_cache import InputCache


def test_key_follows_contract_and_source_files(tmp_path):
    source = tmp_path / "sub-01_T2w.nii.gz"
    source.write_bytes(b"abc")
    key = InputCache.key({"spatial_size": [64, 192]}, [source, None], "t1c=False")
    assert key == InputCache.key({"spatial_size": [64, 192]}, [source, None], "t1c=False")
    assert key != InputCache.key({"spatial_size": [256, 256]}, [source, None], "t1c=False")
    assert key != InputCache.key({"spatial_size": [64, 192]}, [source, None], "t1c=True")
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a regenerated file
    assert key != InputCache.key({"spatial_size": [64, 192]}, [source, None], "t1c=False")


def test_store_load_and_unreadable_entry(tmp_path):
    cache = InputCache(tmp_path / "cache")
    assert cache.load("ab" * 32) is None and cache.misses == 1
    slices = np.random.default_rng(0).random((3, 3, 8, 16)).astype(np.float16)
    cache.store("ab" * 32, {"slices": slices, "slice_indices": np.array([2, 3, 4])})
    loaded = cache.load("ab" * 32)
    assert cache.hits == 1 and loaded["slices"].dtype == np.float16
    np.testing.assert_array_equal(loaded["slices"], slices)
    assert not list((tmp_path / "cache").rglob(".tmp-*"))  # nothing half-written left behind
    path = next((tmp_path / "cache").rglob("*.npz"))
    path.write_bytes(b"truncated")
    assert cache.load("ab" * 32) is None  # rebuilt by the caller, not a crash


def test_join_splits_keeps_each_dataset_split():
    a = SubjectSplit(("a1", "a2"), ("a3",), (), "participants.tsv split column")
    b = SubjectSplit(("b1",), ("b2",), ("b3",), "deterministic")
    joined = join_splits([a, b])
    assert joined.train == ("a1", "a2", "b1") and joined.val == ("a3", "b2") and joined.test == ("b3",)
    assert joined.source == "dataset 1: participants.tsv split column; dataset 2: deterministic"
    assert join_splits([a]) is a
