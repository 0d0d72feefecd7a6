"""The classifier input built by classify.inputs (shared by training and inference)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sct_lesion_classify.classify.inputs import build_classifier_slices, lesion_slices
from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.runtime.preprocess import Volume

ZOOMS = (3.0, 0.5, 0.5)


def card_input(first="zeros", size=(64, 64), min_area=5.0):
    return SimpleNamespace(
        channels=tuple(SimpleNamespace(name=n) for n in (first, "T2w", "lesion_mask")),
        spatial_size=size, spacing_mm=None, min_lesion_area_mm2=min_area,
        normalization=SimpleNamespace(method="zscore", clip=(-5.0, 5.0), rescale=(0.0, 1.0)))


def volume(rng, shape=(6, 40, 80)):
    t2w = rng.normal(100, 20, shape).astype(np.float32)
    mask = np.zeros(shape, bool)
    mask[2, 10:20, 30:50] = True   # 200 px
    mask[3, 12:14, 35:37] = True   # 4 px
    return t2w, mask


def test_slices_channels_and_ranges():
    rng = np.random.default_rng(0)
    t2w, mask = volume(rng)
    out = build_classifier_slices(Volume(t2w, ZOOMS), mask, card_input(min_area=5.0))
    # slice 2: 200 * 0.25 = 50 mm2; slice 3: 1 mm2 < 5
    assert out.slice_indices == (2,) and not out.fallback
    assert out.batch.shape == (1, 3, 64, 64) and out.batch.dtype == np.float32
    assert np.all(out.batch[:, 0] == 0)                         # zeros channel
    assert 0.0 <= out.batch[:, 1].min() and out.batch[:, 1].max() <= 1.0
    assert set(np.unique(out.batch[:, 2])) <= {0.0, 1.0} and out.batch[:, 2].sum() > 0
    # aspect kept: 40 x 80 px of 0.5 mm -> square FOV of 40 mm, the A-P half is padding (0)
    assert np.all(out.batch[0, 1, :8] == 0.0) and np.all(out.batch[0, 1, -8:] == 0.0)


def test_fallback_to_largest_slice_and_empty_mask():
    rng = np.random.default_rng(1)
    t2w, mask = volume(rng)
    out = build_classifier_slices(Volume(t2w, ZOOMS), mask, card_input(min_area=1000.0))
    assert out.fallback and out.slice_indices == (2,)
    empty = build_classifier_slices(Volume(t2w, ZOOMS), np.zeros_like(mask), card_input())
    assert empty.empty and empty.batch.shape == (0, 3, 64, 64)


def test_t1c_channel_only_for_ct1w_cards():
    rng = np.random.default_rng(2)
    t2w, mask = volume(rng)
    t1c = rng.normal(50, 5, t2w.shape).astype(np.float32)
    zeros = build_classifier_slices(Volume(t2w, ZOOMS), mask, card_input("zeros"), t1c=Volume(t1c, ZOOMS))
    used = build_classifier_slices(Volume(t2w, ZOOMS), mask, card_input("cT1w"), t1c=Volume(t1c, ZOOMS))
    assert np.all(zeros.batch[:, 0] == 0) and used.batch[:, 0].max() > 0
    np.testing.assert_array_equal(zeros.batch[:, 1:], used.batch[:, 1:])


def test_bad_card_channels_refused():
    rng = np.random.default_rng(3)
    t2w, mask = volume(rng)
    bad = card_input()
    bad.channels = (SimpleNamespace(name="T2w"),)
    with pytest.raises(ModelError):
        build_classifier_slices(Volume(t2w, ZOOMS), mask, bad)


def test_lesion_slices_areas():
    mask = np.zeros((3, 4, 4), bool)
    mask[1, :2, :2] = True
    indices, areas, fallback = lesion_slices(mask, (1.0, 2.0, 3.0), 10.0)
    assert indices == (1,) and areas == (24.0,) and not fallback
