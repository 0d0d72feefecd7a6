"""Lesion morphometry: hand-computed values on synthetic masks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sct_lesion_classify.errors import ProcessingError
from sct_lesion_classify.lesion.morphometry import (
    ECCENTRIC_RATIO,
    label_lesions,
    measure_lesions,
)
from sct_lesion_classify.lesion.vertebrae import SEGMENT_HEIGHT_MM, level_name


def _affine(zooms, translation=(-10.0, 20.0, -30.0)) -> np.ndarray:
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = translation
    return affine


def _cord_cylinder(shape=(40, 40, 30), centre=(20, 20), radius=8.0) -> np.ndarray:
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    disc = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius**2
    return np.repeat(disc[:, :, None], shape[2], axis=2)


def _ball(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


def test_box_lesion_has_exact_volume_extent_and_centroid():
    zooms = (0.5, 0.5, 3.0)
    mask = np.zeros((30, 40, 50), dtype=bool)
    mask[5:15, 10:18, 4:24] = True  # 10 x 8 x 20 voxels
    result = measure_lesions(mask, zooms, _affine(zooms))
    assert result.count == 1
    (lesion,) = result.lesions
    assert lesion.label == 1 and lesion.n_voxels == 1600
    assert lesion.volume_mm3 == pytest.approx(1600 * 0.75) == result.total_volume_mm3
    assert lesion.length_si_mm == pytest.approx(60.0)
    assert lesion.width_ap_mm == pytest.approx(4.0)
    assert lesion.width_rl_mm == pytest.approx(5.0)
    assert lesion.max_equivalent_diameter_mm == pytest.approx(2 * math.sqrt(20.0 / math.pi))
    # centroid voxel (9.5, 13.5, 13.5) -> world through the affine
    assert lesion.centroid_mm == pytest.approx((9.5 * 0.5 - 10, 13.5 * 0.5 + 20, 13.5 * 3 - 30))
    assert lesion.slices_si == (4, 24)
    # no cord mask, no image, no labels
    assert lesion.eccentricity_ratio is None and lesion.position is None
    assert lesion.intensity_ratio is None and lesion.max_axial_damage_ratio is None
    assert lesion.vertebral_levels is None and lesion.levels_estimated
    assert lesion.n_segments_spanned == pytest.approx(60.0 / SEGMENT_HEIGHT_MM)


def test_centroid_uses_an_oblique_affine():
    zooms = (1.0, 1.0, 1.0)
    affine = np.array([[0, 0, 2.0, 5], [1.0, 0, 0, -1], [0, 1.5, 0, 3], [0, 0, 0, 1]])
    mask = np.zeros((5, 5, 5), dtype=bool)
    mask[1, 2, 3] = True
    (lesion,) = measure_lesions(mask, zooms, affine).lesions
    assert lesion.centroid_mm == pytest.approx((2 * 3 + 5, 1 - 1, 1.5 * 2 + 3))


def test_blobs_touching_at_a_corner_are_one_lesion():
    mask = np.zeros((10, 10, 10), dtype=bool)
    mask[1:3, 1:3, 1:3] = True
    mask[3:5, 3:5, 3:5] = True  # shares only the corner between (2,2,2) and (3,3,3)
    result = measure_lesions(mask, (1, 1, 1), np.eye(4))
    assert result.count == 1 and result.lesions[0].n_voxels == 16
    mask[3, 3, 3] = False  # now they no longer touch
    assert measure_lesions(mask, (1, 1, 1), np.eye(4)).count == 2


def test_lesions_are_numbered_by_decreasing_volume():
    mask = np.zeros((20, 20, 20), dtype=bool)
    mask[1, 1, 1] = True  # 1 voxel, first in scan order
    mask[10:13, 10:13, 10:13] = True  # 27
    mask[5:7, 15:17, 2:4] = True  # 8
    labels, count = label_lesions(mask)
    assert count == 3
    assert (labels == 1).sum() == 27 and (labels == 2).sum() == 8 and (labels == 3).sum() == 1
    result = measure_lesions(mask, (1, 1, 1), np.eye(4))
    assert [lesion.n_voxels for lesion in result.lesions] == [27, 8, 1]
    assert [lesion.label for lesion in result.lesions] == [1, 2, 3]
    assert result.total_volume_mm3 == 36


def test_empty_mask_has_no_lesion():
    result = measure_lesions(np.zeros((4, 5, 6), dtype=bool), (1, 1, 1), np.eye(4))
    assert result.count == 0 and result.lesions == () and result.total_volume_mm3 == 0
    assert result.to_json()["lesions"] == [] and result.to_json()["count"] == 0


def test_central_and_eccentric_lesions():
    cord = _cord_cylinder()
    cord_radius = math.sqrt(cord[:, :, 0].sum() / math.pi)
    central = _ball(cord.shape, (20, 20, 15), 3)
    eccentric = _ball(cord.shape, (25, 20, 15), 2)
    result = measure_lesions(central, (1, 1, 1), np.eye(4), cord_mask=cord)
    (lesion,) = result.lesions
    assert lesion.eccentricity_ratio == pytest.approx(0.0, abs=1e-9)
    assert lesion.position == "central"
    (lesion,) = measure_lesions(eccentric, (1, 1, 1), np.eye(4), cord_mask=cord).lesions
    assert lesion.eccentricity_ratio == pytest.approx(5.0 / cord_radius)
    assert lesion.eccentricity_ratio > ECCENTRIC_RATIO and lesion.position == "eccentric"


def test_eccentricity_follows_a_tilted_cord_and_anisotropic_voxels():
    # cord centre moves along A-P with S-I; the lesion sits on the centre line at each level
    shape, zooms = (12, 60, 30), (3.0, 0.5, 1.0)
    cord = np.zeros(shape, dtype=bool)
    lesion = np.zeros(shape, dtype=bool)
    for z in range(shape[2]):
        centre_y = 15 + z
        cord[4:8, centre_y - 8 : centre_y + 8, z] = True  # 12 mm R-L x 8 mm A-P
        if 10 <= z < 20:
            lesion[5:7, centre_y - 2 : centre_y + 2, z] = True
    (measure,) = measure_lesions(lesion, zooms, np.eye(4), cord_mask=cord).lesions
    assert measure.eccentricity_ratio == pytest.approx(0.0, abs=1e-9)
    # shifted by 2 voxels R-L (6 mm) it becomes eccentric: 6 mm over the radius sqrt(96 / pi)
    shifted = np.roll(lesion, 2, axis=0)
    (measure,) = measure_lesions(shifted, zooms, np.eye(4), cord_mask=cord).lesions
    assert measure.eccentricity_ratio == pytest.approx(6.0 / math.sqrt(12 * 8 / math.pi))
    assert measure.position == "eccentric"


def test_axial_damage_ratio():
    cord = _cord_cylinder()
    lesion = np.zeros_like(cord)
    lesion[17:23, 17:23, 10:12] = True  # 36 voxels per slice inside the cord
    lesion[18:22, 18:22, 12] = True  # 16 voxels
    (measure,) = measure_lesions(lesion, (1, 1, 1), np.eye(4), cord_mask=cord).lesions
    assert measure.max_axial_damage_ratio == pytest.approx(36 / cord[:, :, 0].sum())
    # a lesion sticking out of the cord mask counts with the cord: the ratio stays <= 1
    outside = np.zeros_like(cord)
    outside[0:3, 0:3, 5] = True
    (measure,) = measure_lesions(outside, (1, 1, 1), np.eye(4), cord_mask=cord).lesions
    assert 0 < measure.max_axial_damage_ratio <= 1


def test_intensity_ratio_of_a_lesion_twice_as_bright():
    cord = _cord_cylinder()
    lesion = _ball(cord.shape, (20, 20, 15), 3)
    image = np.full(cord.shape, 40.0, dtype=np.float32)  # outside the cord: ignored
    image[cord] = 100.0
    image[lesion] = 200.0
    (measure,) = measure_lesions(lesion, (1, 1, 1), np.eye(4), image=image, cord_mask=cord).lesions
    assert measure.intensity_ratio == pytest.approx(2.0)
    # no cord mask: no reference, no ratio
    (measure,) = measure_lesions(lesion, (1, 1, 1), np.eye(4), image=image).lesions
    assert measure.intensity_ratio is None


def test_lesion_outside_the_cord_levels_has_no_position():
    cord = _cord_cylinder()
    cord[:, :, 20:] = False
    lesion = np.zeros_like(cord)
    lesion[19:22, 19:22, 24:27] = True
    result = measure_lesions(lesion, (1, 1, 1), np.eye(4), cord_mask=cord)
    (measure,) = result.lesions
    assert measure.eccentricity_ratio is None and measure.position is None
    assert measure.max_axial_damage_ratio is None
    assert any("position unknown" in w for w in result.warnings)


def test_levels_from_a_vertebral_label_map():
    cord = _cord_cylinder()
    labels = np.zeros(cord.shape, dtype=np.uint8)
    labels[:, :, 0:10][cord[:, :, 0:10]] = 5  # C5 (inferior)
    labels[:, :, 10:20][cord[:, :, 10:20]] = 4  # C4
    labels[:, :, 20:30][cord[:, :, 20:30]] = 3  # C3 (superior)
    lesion = np.zeros_like(cord)
    lesion[20, 20, 5:25] = True  # half of C5, all of C4, half of C3
    (measure,) = measure_lesions(lesion, (1, 1, 1), np.eye(4), vertebral_labels=labels).lesions
    assert measure.vertebral_levels == ("C3", "C4", "C5")
    assert not measure.levels_estimated
    assert measure.n_segments_spanned == pytest.approx(2.0)
    # a lesion beyond the labelled levels: estimated, with a warning
    labels[:, :, 20:] = 0
    lesion = np.zeros_like(cord)
    lesion[20, 20, 22:28] = True
    result = measure_lesions(lesion, (1, 1, 2.0), np.eye(4), vertebral_labels=labels)
    (measure,) = result.lesions
    assert measure.vertebral_levels is None and measure.levels_estimated
    assert measure.n_segments_spanned == pytest.approx(12.0 / SEGMENT_HEIGHT_MM)
    assert any("vertebral label" in w for w in result.warnings)


@pytest.mark.parametrize(
    "value, name",
    [(1, "C1"), (7, "C7"), (8, "T1"), (19, "T12"), (20, "L1"), (24, "L5"), (25, "S1"), (30, "Co"), (31, "level31")],
)
def test_level_names_follow_sct(value, name):
    assert level_name(value) == name


def test_to_json_is_serialisable_and_complete():
    cord = _cord_cylinder()
    lesion = _ball(cord.shape, (24, 20, 15), 2) | _ball(cord.shape, (20, 20, 3), 1)
    image = np.where(cord, 100.0, 10.0).astype(np.float32)
    image[lesion] = 150.0
    result = measure_lesions(lesion, (0.5, 0.5, 3.0), _affine((0.5, 0.5, 3.0)), image=image, cord_mask=cord)
    document = json.loads(json.dumps(result.to_json()))
    assert document["count"] == 2 and len(document["lesions"]) == 2
    assert document["total_volume_mm3"] == pytest.approx(result.total_volume_mm3, abs=1e-4)
    first = document["lesions"][0]
    assert set(first) == {
        "label", "volume_mm3", "length_si_mm", "width_ap_mm", "width_rl_mm",
        "max_equivalent_diameter_mm", "centroid_mm", "eccentricity_ratio", "position",
        "max_axial_damage_ratio", "intensity_ratio", "vertebral_levels", "levels_estimated",
        "n_segments_spanned",
    }
    assert first["intensity_ratio"] == pytest.approx(1.5)
    assert first["vertebral_levels"] is None and first["levels_estimated"] is True
    assert len(first["centroid_mm"]) == 3


def test_arrays_on_another_grid_are_refused():
    mask = np.zeros((4, 5, 6), dtype=bool)
    mask[1, 1, 1] = True
    with pytest.raises(ProcessingError, match="cord mask"):
        measure_lesions(mask, (1, 1, 1), np.eye(4), cord_mask=np.zeros((4, 5, 7), dtype=bool))
    with pytest.raises(ProcessingError, match="3D"):
        measure_lesions(mask[0], (1, 1, 1), np.eye(4))
