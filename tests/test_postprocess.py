"""sct_deepseg-style postprocessing: each flag does what the documentation says."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sct_lesion_classify.errors import InputError
from sct_lesion_classify.lesion.postprocess import (
    Postprocessing,
    fill_holes_sagittal,
    keep_largest,
    label_components,
    parse_size,
    postprocess,
    remove_small_objects,
)

ZOOMS = (1.0, 1.0, 1.0)
NOTHING = Postprocessing(fill_holes=False)


def _volume(shape=(8, 30, 40)) -> np.ndarray:
    return np.zeros(shape, dtype=np.float32)


@pytest.mark.parametrize(
    "text, expected",
    [("20mm3", (20.0, "mm3")), ("5vox", (5.0, "vox")), (" 0.5 MM3 ", (0.5, "mm3")), ("1e2vox", (100.0, "vox"))],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "20", "mm3", "-5vox", "20 cm3", "5voxels", "nanvox", "2mm"])
def test_parse_size_refuses_bad_text(text):
    with pytest.raises(InputError, match="remove-small"):
        parse_size(text)


def test_invalid_settings_are_input_errors():
    with pytest.raises(InputError, match="thr"):
        Postprocessing(threshold=1.5)
    with pytest.raises(InputError, match="remove-small"):
        Postprocessing(remove_small=("20",))
    assert Postprocessing(remove_small="5vox").remove_small == ("5vox",)


def test_threshold_zero_returns_the_soft_map_untouched():
    prob = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    prob[2, 3, :] = 0.0  # would be "holes" and "small objects" for a binary mask
    out = postprocess(prob, ZOOMS, Postprocessing(threshold=0, fill_holes=True, largest=True, remove_small=("100vox",)))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, prob)
    assert out is not prob


def test_threshold_changes_the_mask():
    prob = _volume()
    prob[4, 5:25, 10:30] = 0.5
    prob[4, 10:20, 15:25] = 0.8
    high = postprocess(prob, ZOOMS, Postprocessing(threshold=0.7, fill_holes=False))
    low = postprocess(prob, ZOOMS, Postprocessing(threshold=0.3, fill_holes=False))
    assert high.dtype == bool and low.dtype == bool
    assert high.sum() == 10 * 10
    assert low.sum() == 20 * 20
    # strictly greater than the threshold, as SCT/ivadomed binarise
    assert postprocess(prob, ZOOMS, Postprocessing(threshold=0.5, fill_holes=False)).sum() == 100


def test_fill_holes_fills_a_hole_in_a_sagittal_slice():
    prob = _volume()
    prob[4, 5:15, 10:20] = 1.0
    prob[4, 8:12, 13:17] = 0.0  # a hole in one (thick) sagittal slice: open in 3D
    filled = postprocess(prob, ZOOMS, Postprocessing(fill_holes=True))
    unfilled = postprocess(prob, ZOOMS, NOTHING)
    assert unfilled.sum() == 100 - 16
    assert filled.sum() == 100
    assert filled[4, 8:12, 13:17].all()


def test_fill_holes_fills_a_hole_enclosed_in_3d():
    prob = _volume()
    prob[2:7, 5:15, 10:20] = 1.0
    prob[3:6, 8:12, 13:17] = 0.0  # a cavity enclosed on every side
    filled = postprocess(prob, ZOOMS, Postprocessing(fill_holes=True))
    assert filled.sum() == 5 * 10 * 10


def test_fill_holes_does_not_fill_open_notches_or_other_slices():
    prob = _volume()
    prob[4, 5:15, 10:20] = 1.0
    prob[4, 8:12, 10:17] = 0.0  # a notch open to the slice's background: not a hole
    out = postprocess(prob, ZOOMS, Postprocessing(fill_holes=True))
    assert out.sum() == 100 - 28
    assert not out[3].any() and not out[5].any()


def test_remove_small_by_mm3_and_by_vox():
    prob = _volume()
    prob[4, 5:15, 5:15] = 1.0  # 100 voxels
    prob[1, 20:23, 30:33] = 1.0  # 9 voxels
    zooms = (3.0, 0.5, 0.5)  # 0.75 mm3 voxels: 75 mm3 and 6.75 mm3
    by_mm3 = postprocess(prob, zooms, Postprocessing(fill_holes=False, remove_small=("7mm3",)))
    assert by_mm3.sum() == 100
    kept_mm3 = postprocess(prob, zooms, Postprocessing(fill_holes=False, remove_small=("6.75mm3",)))
    assert kept_mm3.sum() == 109  # not smaller than 6.75 mm3: kept
    by_vox = postprocess(prob, zooms, Postprocessing(fill_holes=False, remove_small=("10vox",)))
    assert by_vox.sum() == 100
    kept_vox = postprocess(prob, zooms, Postprocessing(fill_holes=False, remove_small=("9vox",)))
    assert kept_vox.sum() == 109
    # several sizes: smaller than any is removed
    both = postprocess(prob, zooms, Postprocessing(fill_holes=False, remove_small=("1vox", "80mm3")))
    assert both.sum() == 0


def test_remove_small_uses_26_connectivity():
    prob = _volume()
    prob[2, 2, 2] = 1.0
    prob[3, 3, 3] = 1.0  # touches the first only at a corner: one component of 2 voxels
    out = postprocess(prob, ZOOMS, Postprocessing(fill_holes=False, remove_small=("2vox",)))
    assert out.sum() == 2
    assert label_components(out)[1] == 1


def test_largest_keeps_one_component():
    prob = _volume()
    prob[4, 5:15, 5:15] = 0.9  # 100
    prob[1, 20:25, 30:35] = 0.9  # 25
    prob[7, 28, 38] = 0.9  # 1
    out = postprocess(prob, ZOOMS, Postprocessing(fill_holes=False, largest=True))
    assert out.sum() == 100 and out[4, 5:15, 5:15].all()
    without = postprocess(prob, ZOOMS, NOTHING)
    assert label_components(without)[1] == 3


def test_empty_prediction_is_an_empty_mask():
    out = postprocess(_volume(), ZOOMS, Postprocessing(largest=True, remove_small=("20mm3",)))
    assert out.dtype == bool and out.shape == (8, 30, 40) and not out.any()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 9), st.integers(1, 12), st.integers(1, 12)),
    largest=st.booleans(),
    fill=st.booleans(),
)
def test_working_in_the_bounding_box_changes_nothing(seed, shape, largest, fill):
    """postprocess works inside the mask's bounding box; the steps on the whole array agree."""
    prob = np.random.default_rng(seed).random(shape).astype(np.float32) ** 3
    settings_ = Postprocessing(threshold=0.5, fill_holes=fill, largest=largest, remove_small=("3vox",))
    expected = prob > 0.5
    if largest:
        expected = keep_largest(expected)
    if fill:
        expected = fill_holes_sagittal(expected)
    expected = remove_small_objects(expected, ZOOMS, ("3vox",))
    np.testing.assert_array_equal(postprocess(prob, ZOOMS, settings_), expected)
