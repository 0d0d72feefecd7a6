"""The classifier input built by classify.inputs (shared by training and inference)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sct_lesion_classify.classify.inputs import build_classifier_slices, lesion_centre_mm, lesion_slices
from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.runtime.preprocess import Volume

ZOOMS = (3.0, 0.5, 0.5)


def card_input(first="zeros", size=(64, 64), min_area=5.0, spacing=None, centred_on=None):
    return SimpleNamespace(
        channels=tuple(SimpleNamespace(name=n) for n in (first, "T2w", "lesion_mask")),
        spatial_size=size, spacing_mm=spacing, min_lesion_area_mm2=min_area, centred_on=centred_on,
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


def test_lesion_roi_is_centred_on_the_lesion_at_a_fixed_scale_and_maps_back_exactly():
    rng = np.random.default_rng(5)
    shape = (6, 120, 300)  # 60 x 150 mm at 0.5 mm
    t2w = rng.normal(100, 20, shape).astype(np.float32)
    mask = np.zeros(shape, bool)
    mask[2, 20:40, 200:260] = True  # A-P 10-20 mm, S-I 100-130 mm: far from the centre
    mask[3, 25:30, 210:220] = True
    assert lesion_centre_mm(mask, ZOOMS) == (15.0, 115.0)
    assert lesion_centre_mm(np.zeros_like(mask), ZOOMS) is None
    spec = card_input(size=(16, 48), spacing=(1.25, 1.25), centred_on="lesion", min_area=1.0)
    out = build_classifier_slices(Volume(t2w, ZOOMS), mask, spec)
    assert out.slice_indices == (2, 3) and out.batch.shape == (2, 3, 16, 48)
    lesion = out.batch[0, 2] > 0
    rows, cols = np.nonzero(lesion)
    # the lesion's box (10 x 30 mm = 8 x 24 pixels of 1.25 mm) sits in the middle of the grid
    assert (rows.min() + rows.max() + 1) / 2 == pytest.approx(8, abs=0.5)
    assert (cols.min() + cols.max() + 1) / 2 == pytest.approx(24, abs=0.5)
    assert lesion.sum() == pytest.approx(8 * 24, rel=0.15)
    # the grid is 20 x 60 mm whatever the field of view; beyond the image it is padding (0):
    # A-P 15 +- 10 mm lies inside the 60 mm image, so no padding there
    assert out.batch[0, 1].min() >= 0.0 and (out.batch[0, 1] == 0.0).mean() < 0.05
    # its inverse puts the mask back where it was
    back = out.resampler.backward(out.batch[:1, 2], order=1) >= 0.5
    assert (back[0] & mask[2]).sum() / mask[2].sum() > 0.9 and (back[0] & ~mask[2]).sum() < 0.1 * mask[2].sum()
    # a whole-slice card ignores the lesion's position
    whole = build_classifier_slices(Volume(t2w, ZOOMS), mask, card_input(size=(64, 64), min_area=1.0))
    assert whole.resampler.out_spacing_mm[0] == pytest.approx(150 / 64)


def test_lesion_roi_needs_a_spacing():
    rng = np.random.default_rng(6)
    t2w, mask = volume(rng)
    with pytest.raises(ModelError, match="centred on the lesion needs input.spacing_mm"):
        build_classifier_slices(Volume(t2w, ZOOMS), mask, card_input(centred_on="lesion"))
