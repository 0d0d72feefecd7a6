"""runtime.preprocess: one choice of the network's grid for every card, and volumes that carry
their voxel size into the classifier input and back out of Grad-CAM."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sct_lesion_classify.classify.gradcam import cam_volume
from sct_lesion_classify.classify.inputs import build_classifier_slices
from sct_lesion_classify.errors import InputError, ModelError
from sct_lesion_classify.modelpkg.card import InputSpec
from sct_lesion_classify.modelpkg.testing import tiny_card
from sct_lesion_classify.runtime.preprocess import Volume, input_resampler

VOLUME = Volume(np.zeros((3, 40, 90), np.float32), (3.0, 1.0, 0.8))  # slices of 40 x 72 mm


def spec(task: str, **changes) -> InputSpec:
    return replace(InputSpec.from_json(tiny_card("x", task, spatial_size=(32, 32))["input"]),
                   **changes)


def test_fixed_size_keeps_the_aspect():
    resampler = input_resampler(spec("classification", spacing_mm=None), VOLUME)
    assert resampler.out_shape == (32, 32) and resampler.in_shape == (40, 90)
    assert resampler.out_spacing_mm == (72 / 32, 72 / 32)  # the long side fills the grid
    assert resampler.padding[1] == (0, 0) and sum(resampler.padding[0]) > 0


def test_spacing_only_pads_to_the_divisor():
    card_input = spec("lesion_segmentation", spatial_size=None, spacing_mm=(0.5, 0.5),
                      size_divisible_by=16)
    resampler = input_resampler(card_input, VOLUME)
    assert resampler.out_spacing_mm == (0.5, 0.5)
    assert resampler.out_shape == (80, 144)  # 40 mm / 0.5 = 80; 72 mm / 0.5 = 144 (both x 16)


def test_size_and_spacing_give_that_grid_for_every_task():
    for task in ("classification", "lesion_segmentation"):
        resampler = input_resampler(spec(task, spatial_size=(32, 64), spacing_mm=(2.0, 2.0),
                                         size_divisible_by=16), VOLUME)
        assert resampler.out_shape == (32, 64) and resampler.out_spacing_mm == (2.0, 2.0)


def test_a_card_without_size_or_spacing_is_refused():
    with pytest.raises(ModelError, match="neither"):
        input_resampler(spec("lesion_segmentation", spatial_size=None, spacing_mm=None), VOLUME)


def test_classifier_slices_carry_their_geometry_back_through_cam_volume():
    t2w = Volume(np.random.default_rng(0).normal(100, 20, (4, 40, 90)).astype(np.float32),
                 (3.0, 1.0, 0.8))
    lesion = np.zeros(t2w.data.shape, bool)
    lesion[2, 10:30, 20:70] = True
    slices = build_classifier_slices(t2w, lesion, spec("classification"))
    assert slices.volume_shape == (4, 40, 90)
    assert slices.resampler == input_resampler(spec("classification"), t2w)
    volume = cam_volume(np.ones((1, 1, 1), np.float32), slices)
    assert volume.shape == (4, 40, 90) and not volume[[0, 1, 3]].any()
    assert np.allclose(volume[2], 1.0)


def test_ct1w_on_another_voxel_size_is_refused():
    t2w = Volume(np.ones((3, 20, 20), np.float32), (3.0, 1.0, 1.0))
    lesion = np.zeros(t2w.data.shape, bool)
    t1c = Volume(np.ones((3, 20, 20), np.float32), (3.0, 1.0, 1.2))
    with pytest.raises(InputError, match="voxel size"):
        build_classifier_slices(t2w, lesion, spec("classification"), t1c=t1c)
