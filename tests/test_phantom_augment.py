"""On-the-fly randomisation of (image, cord mask, lesion mask) records (``phantom.augment``)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("monai")

from sct_lesion_classify.phantom import generate_subject  # noqa: E402
from sct_lesion_classify.phantom.augment import randomise_record  # noqa: E402
from sct_lesion_classify.phantom.measure import cord_axis_angles  # noqa: E402
from sct_lesion_classify.phantom.style import HELD_OUT, RANDOMISED  # noqa: E402


@pytest.fixture(scope="module")
def record():
    s = generate_subject(3, "ependymoma", shape=(9, 120, 160))
    zooms = tuple(float(z) for z in np.abs(np.diag(s.affine))[:3])
    return s.t2w, s.cord_mask, s.lesion_mask, zooms


def test_masks_stay_consistent_and_the_draws_in_range(record):
    image, cord, lesion, zooms = record
    for seed in range(6):
        out = randomise_record(image, cord, lesion, zooms, seed)
        assert out.image.shape == out.cord_mask.shape == out.lesion_mask.shape == image.shape
        assert out.image.dtype == np.float32 and out.image.min() >= 0
        assert out.cord_mask.dtype == bool and out.cord_mask.any()
        assert not (out.lesion_mask & ~out.cord_mask).any()
        assert RANDOMISED.violations(out.params) == []
        assert not HELD_OUT.csf_to_cord[0] <= out.csf_to_cord <= HELD_OUT.csf_to_cord[1]
    np.testing.assert_array_equal(image, record[0])   # the input is not modified


def test_same_seed_same_record(record):
    a = randomise_record(*record, seed=4)
    b = randomise_record(*record, seed=4)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.lesion_mask, b.lesion_mask)
    assert not np.array_equal(a.image, randomise_record(*record, seed=5).image)


def test_rotation_tilts_image_and_masks_together(record):
    image, cord, lesion, zooms = record
    before, _ = cord_axis_angles(cord, zooms)
    out = randomise_record(image, cord, lesion, zooms, seed=2)
    after, _ = cord_axis_angles(out.cord_mask, zooms)
    assert abs(abs(after - before) - abs(out.params.posture.pitch_deg)) < 3.0
    still = randomise_record(image, cord, lesion, zooms, seed=2, rotate=False)
    np.testing.assert_array_equal(still.cord_mask, cord)
    np.testing.assert_array_equal(still.lesion_mask, lesion)
    # the lesion keeps its sign: brighter than the cord around it (the gamma is monotonic)
    assert np.median(still.image[lesion]) > np.median(still.image[cord & ~lesion])


def test_bad_records_are_refused(record):
    image, cord, lesion, zooms = record
    with pytest.raises(ValueError, match="one shape"):
        randomise_record(image[:-1], cord, lesion, zooms, 0)
    with pytest.raises(ValueError, match="empty"):
        randomise_record(image, np.zeros_like(cord), lesion, zooms, 0)
