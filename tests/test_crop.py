"""The invertible crop: exact round trip, margins, clipping, affine, border flags."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sct_lesion_classify.cord.crop import CropBox, crop_box_around, margins_in_voxels
from sct_lesion_classify.errors import ProcessingError


def _random_affine(rng: np.random.Generator) -> np.ndarray:
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(rng.uniform(0.3, 4.0, size=3))
    affine[:3, 3] = rng.uniform(-100, 100, size=3)
    return affine


@st.composite
def masks(draw):
    shape = tuple(draw(st.integers(2, 12)) for _ in range(3))
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.floats(0.01, 0.5))
    mask = np.random.default_rng(seed).random(shape) < density
    if not mask.any():
        mask[tuple(n // 2 for n in shape)] = True
    return mask


@settings(max_examples=60, deadline=None)
@given(
    mask=masks(),
    margins=st.tuples(*(st.floats(0, 20) for _ in range(3))),
    zooms=st.tuples(*(st.floats(0.3, 5) for _ in range(3))),
    seed=st.integers(0, 2**32 - 1),
)
def test_crop_then_invert_is_exact(mask, margins, zooms, seed):
    rng = np.random.default_rng(seed)
    volume = rng.normal(size=mask.shape).astype(np.float32)
    box = crop_box_around(mask, zooms, margins)
    cropped = box.apply(volume)
    assert cropped.shape == box.shape
    # the box holds every cord voxel
    assert box.apply(mask).sum() == mask.sum()
    restored = box.invert(cropped, fill=np.nan)
    inside = box.to_mask()
    assert restored.shape == volume.shape and restored.dtype == volume.dtype
    np.testing.assert_array_equal(restored[inside], volume[inside])
    assert np.isnan(restored[~inside]).all()
    # bool masks round-trip exactly too
    np.testing.assert_array_equal(box.invert(box.apply(mask)), mask & inside)
    np.testing.assert_array_equal(box.invert(box.apply(mask)), mask)


@settings(max_examples=30, deadline=None)
@given(mask=masks(), seed=st.integers(0, 2**32 - 1))
def test_affine_of_crop_maps_origin_to_start(mask, seed):
    rng = np.random.default_rng(seed)
    full_affine = _random_affine(rng)
    box = crop_box_around(mask, (1.0, 1.0, 1.0), (1.0, 2.0, 0.0))
    cropped_affine = box.affine(full_affine)
    np.testing.assert_allclose(cropped_affine @ [0, 0, 0, 1], full_affine @ [*box.start, 1])
    # and every voxel of the crop lands where the full-image voxel is
    ijk = np.array([rng.integers(0, n) for n in box.shape])
    np.testing.assert_allclose(
        cropped_affine @ [*ijk, 1], full_affine @ [*(ijk + np.array(box.start)), 1], atol=1e-9
    )
    np.testing.assert_array_equal(cropped_affine[:3, :3], full_affine[:3, :3])


def test_margins_are_converted_to_voxels_rounding_up():
    assert margins_in_voxels((0.5, 0.5, 3.0), (10.0, 10.0, 10.0)) == (20, 20, 4)
    assert margins_in_voxels((0.7, 1.0, 3.0), (1.0, 0.0, 3.0)) == (2, 0, 1)
    with pytest.raises(ValueError):
        margins_in_voxels((0.5, 0.5, 3.0), (-1.0, 0.0, 0.0))


def test_box_is_bounding_box_plus_margins_inside_image():
    mask = np.zeros((20, 40, 60), dtype=bool)
    mask[8:12, 15:25, 20:40] = True
    box = crop_box_around(mask, (3.0, 0.5, 0.5), (3.0, 2.0, 5.0))  # 1, 4, 10 voxels
    assert box.start == (7, 11, 10)
    assert box.stop == (13, 29, 50)
    assert box.shape == (6, 18, 40)
    assert box.cord_at_border == ()
    assert box.warnings == ()
    assert box.to_mask().sum() == 6 * 18 * 40


def test_box_is_clipped_at_image_borders_and_flags_sides():
    mask = np.zeros((10, 30, 50), dtype=bool)
    mask[4:6, 12:18, :] = True  # cord through the whole S-I field of view
    box = crop_box_around(mask, (1.0, 1.0, 1.0), (2.0, 5.0, 10.0))
    assert box.start == (2, 7, 0) and box.stop == (8, 23, 50)
    assert box.cord_at_border == ("inferior", "superior")
    (message,) = box.warnings
    assert "expected" in message and "inferior and superior" in message


def test_cord_touching_anterior_or_lateral_edge_is_suspicious():
    mask = np.zeros((10, 30, 50), dtype=bool)
    mask[0:3, 25:30, 10:20] = True
    box = crop_box_around(mask, (1.0, 1.0, 1.0), (5.0, 5.0, 5.0))
    assert box.start == (0, 20, 5) and box.stop == (8, 30, 25)
    assert set(box.cord_at_border) == {"left", "anterior"}
    assert any("check the cord mask" in w for w in box.warnings)


def test_empty_cord_mask_is_a_processing_error():
    with pytest.raises(ProcessingError, match="cord mask is empty"):
        crop_box_around(np.zeros((5, 6, 7), dtype=bool), (1, 1, 1), (1, 1, 1))


def test_apply_and_invert_on_4d_arrays():
    mask = np.zeros((6, 7, 8), dtype=bool)
    mask[2:4, 3, 1:5] = True
    box = crop_box_around(mask, (1, 1, 1), (1, 1, 1))
    channels = np.random.default_rng(0).random((6, 7, 8, 3))
    cropped = box.apply(channels)
    assert cropped.shape == box.shape + (3,)
    restored = box.invert(cropped)
    np.testing.assert_array_equal(restored[box.slices], channels[box.slices])
    assert restored.shape == channels.shape


def test_apply_returns_a_copy_and_checks_shapes():
    volume = np.zeros((4, 5, 6))
    box = CropBox((1, 1, 1), (3, 4, 5), (4, 5, 6))
    cropped = box.apply(volume)
    cropped[...] = 7
    assert volume.sum() == 0
    with pytest.raises(ProcessingError):
        box.apply(np.zeros((4, 5, 7)))
    with pytest.raises(ProcessingError):
        box.invert(np.zeros((2, 3, 3)))


def test_full_box_is_identity():
    box = CropBox.full((4, 5, 6))
    volume = np.arange(120.0).reshape(4, 5, 6)
    assert box.is_full
    np.testing.assert_array_equal(box.invert(box.apply(volume)), volume)
    np.testing.assert_array_equal(box.affine(np.eye(4)), np.eye(4))


def test_invalid_boxes_are_refused():
    with pytest.raises(ValueError):
        CropBox((0, 0, 0), (0, 1, 1), (2, 2, 2))
    with pytest.raises(ValueError):
        CropBox((0, 0, 0), (3, 1, 1), (2, 2, 2))
