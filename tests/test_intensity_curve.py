"""The random intensity curve of training (``train --intensity-curve``).

It must change a sample's contrast (reverse it, at times) without moving its boundaries or its
label, keep the sample's mean and spread, follow the sample's seed, and leave the augmentation
of a recipe without it exactly as it was.
"""

from __future__ import annotations

import numpy as np
import pytest

from sct_lesion_classify.errors import InputError
from sct_lesion_classify.train.augment import AugmentConfig, RandIntensityCurved
from sct_lesion_classify.train.recipes import RECIPES
from sct_lesion_classify.train.family import card_skeleton


def tissues() -> tuple[np.ndarray, np.ndarray]:
    """A (1, 64, 64) image of three flat tissues (dark, middle, bright) and the middle one's mask."""
    image = np.full((1, 64, 64), 100.0, dtype=np.float32)        # dark: muscle-like
    image[:, :, 20:44] = 1000.0                                   # bright: CSF-like
    image[:, :, 26:38] = 400.0                                    # middle: the cord
    cord = np.zeros((1, 64, 64), dtype=np.float32)
    cord[:, :, 26:38] = 1.0
    return image, cord


def test_a_curve_keeps_boundaries_mean_and_spread_and_can_reverse_a_contrast():
    image, cord = tissues()
    reversed_seen = False
    for seed in range(40):
        curve = RandIntensityCurved(("image",), prob=1.0).set_random_state(seed)
        values = curve.draw()
        assert values is not None and 4 <= len(values) <= 8
        assert np.all((values >= 0) & (values <= 1))
        out = curve.apply(image, values)
        assert out.dtype == np.float32 and out.shape == image.shape
        # each tissue stays flat: the curve is a function of intensity, so boundaries do not move
        for level in (100.0, 400.0, 1000.0):
            assert np.ptp(out[image == level]) < 1e-3
        if np.ptp(out) > 1e-3:   # a flat curve over these three levels leaves the image as it was
            assert out.mean() == pytest.approx(image.mean(), rel=1e-4)
            assert out.std() == pytest.approx(image.std(), rel=1e-3)
        cord_value, csf_value = out[image == 400.0][0], out[image == 1000.0][0]
        reversed_seen |= bool(csf_value < cord_value)
    assert reversed_seen, "40 curves never made the CSF-like tissue darker than the cord-like one"


def test_the_curve_follows_the_sample_seed_and_its_probability():
    image, _ = tissues()
    draws = [RandIntensityCurved(("image",), prob=1.0).set_random_state(7).draw() for _ in range(2)]
    np.testing.assert_array_equal(draws[0], draws[1])
    never = RandIntensityCurved(("image",), prob=0.0).set_random_state(7)
    assert never.draw() is None
    half = RandIntensityCurved(("image",), prob=0.5)
    drawn = sum(half.set_random_state(seed).draw() is not None for seed in range(400))
    assert 150 < drawn < 250
    with pytest.raises(ValueError):
        RandIntensityCurved(("image",), prob=1.5)
    with pytest.raises(ValueError):
        RandIntensityCurved(("image",), prob=0.5, points=(1, 3))


def test_a_flat_image_is_left_as_it_is():
    flat = np.full((1, 8, 8), 3.0, dtype=np.float32)
    np.testing.assert_array_equal(RandIntensityCurved.apply(flat, np.array([0.0, 1.0, 0.2])), flat)


def test_augmenter_applies_the_curve_to_the_image_only_and_reproducibly():
    pytest.importorskip("monai")
    from sct_lesion_classify.train.augment import Augmenter

    image, cord = tissues()
    spatial_off = dict(affine_prob=0.0, elastic_prob=0.0, flip_prob=0.0, intensity_prob=0.0)
    with_curve = Augmenter(AugmentConfig(curve_prob=1.0, **spatial_off))
    first, label = with_curve(image, cord, seed=3)
    again, _ = with_curve(image, cord, seed=3)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(label, cord)
    assert not np.allclose(first, image)
    without = Augmenter(AugmentConfig(curve_prob=0.0, **spatial_off))
    np.testing.assert_array_equal(without(image, cord, seed=3)[0], image)


@pytest.mark.parametrize("family", sorted(RECIPES))
def test_every_family_takes_the_option_and_its_card_records_it(family):
    recipe = RECIPES[family]
    assert recipe.augment.curve_prob == 0.0
    assert "intensity_curve_prob" not in recipe.architecture_details
    assert recipe.with_intensity_curve(None) is recipe
    curved = recipe.with_intensity_curve(0.5)
    assert curved.augment.curve_prob == 0.5
    assert card_skeleton(curved, "1.0.0").architecture.details["intensity_curve_prob"] == 0.5
    with pytest.raises(InputError, match="intensity-curve"):
        recipe.with_intensity_curve(1.5)


def test_every_channel_gets_the_same_curve_and_a_constant_channel_stays_as_it_is():
    image, _ = tissues()
    neighbours = np.concatenate([image, image * 2.0, np.zeros_like(image)])  # (3, 64, 64)
    values = np.array([0.9, 0.1, 0.6, 0.3])
    out = RandIntensityCurved.apply(neighbours, values)
    assert out.shape == neighbours.shape
    # the same tissues in the same order of brightness on the two scaled copies
    np.testing.assert_allclose(out[1], out[0] * 2.0, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(out[2], 0.0)
