"""2.5D segmentation packages: the sagittal neighbours of a slice as further input channels.

The card names the channels (``T2w``, ``T2w_sagittal-1``, ...); inference and training gather
them with the same :class:`~sct_lesion_classify.runtime.sagittal.SliceStack`. Checked here against
a hand-written reference, and the widening of a one-slice network's weights against the network
it came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sct_lesion_classify.errors import InputError, ModelError
from sct_lesion_classify.modelpkg.card import Channel, InputSpec, Normalization
from sct_lesion_classify.modelpkg.package import ModelPackage
from sct_lesion_classify.modelpkg.testing import write_tiny_package
from sct_lesion_classify.runtime.preprocess import Volume
from sct_lesion_classify.runtime.sagittal import (
    SagittalSegmenter, SliceStack, neighbour_channel_name, slice_offsets,
)
from sct_lesion_classify.runtime.session import Predictor

REPO = Path(__file__).resolve().parents[1]


def spec_with(*names: str) -> InputSpec:
    return InputSpec(tensor="input", layout="NCHW", channels=tuple(Channel(n, "") for n in names),
                     slicing="sagittal", spatial_size=None, size_divisible_by=8, spacing_mm=(0.5, 0.5),
                     normalization=Normalization("zscore", None, None), crop_margins_mm=None,
                     min_lesion_area_mm2=None)


def test_channel_names_give_the_sagittal_offsets():
    assert slice_offsets(spec_with("T2w")) == (0,)
    assert slice_offsets(spec_with("T2w_sagittal-1", "T2w", "T2w_sagittal+1")) == (-1, 0, 1)
    assert slice_offsets(spec_with("T2w", "T2w_sagittal+2")) == (0, 2)
    assert [neighbour_channel_name(k) for k in (-2, 0, 1)] == ["T2w_sagittal-2", "T2w", "T2w_sagittal+1"]


@pytest.mark.parametrize("names", [("T2w", "extra1"), ("T2w_sagittal-1", "T2w_sagittal+1"),
                                   ("T2w", "T2w"), ("T2w", "T2w_sagittal+0"), ("t2w",)])
def test_other_channels_are_refused(names):
    with pytest.raises(ModelError):
        slice_offsets(spec_with(*names))


def test_a_segmentation_package_with_other_channels_is_refused(tmp_path):
    folder = write_tiny_package(tmp_path, "tiny_seg", n_channels=2)  # T2w + "extra1"
    with pytest.raises(ModelError, match="tiny_seg.*extra1"):
        SagittalSegmenter(Predictor.create(ModelPackage.load(folder), threads=1))


def test_slice_stack_gathers_neighbours_and_fills_beyond_the_volume():
    slices = np.arange(4 * 2 * 3, dtype=np.float32).reshape(4, 2, 3) - 5.0
    stack = SliceStack(slices, (-1, 0, 1))
    assert stack.fill == -5.0
    np.testing.assert_array_equal(stack.channels(2), slices[[1, 2, 3]])
    first = stack.channels(0)
    np.testing.assert_array_equal(first[0], np.full((2, 3), -5.0))
    np.testing.assert_array_equal(first[1:], slices[[0, 1]])
    window = (slice(1, 2), slice(0, 2))
    np.testing.assert_array_equal(stack.channels(3, window)[2], np.full((1, 2), -5.0))
    np.testing.assert_array_equal(stack.channels(3, window)[:2], slices[2:4, 1:2, 0:2])
    batch = stack.batch([0, 3], [window, window])
    assert batch.shape == (2, 3, 1, 2)
    np.testing.assert_array_equal(batch[1], stack.channels(3, window))
    # one-slice packages: the slices themselves, one channel
    np.testing.assert_array_equal(SliceStack(slices).batch(range(1, 3)), slices[1:3, None])
    assert SliceStack(slices).batch([]).shape == (0, 1, 2, 3)


def _reference(volume: np.ndarray, weight: float, bias: float) -> np.ndarray:
    """sigmoid(w * (slice i-1 + slice i + slice i+1) + b) of the z-scored, clipped volume, with the
    smallest normalized value beyond the first and the last slice (written out, not the library's)."""
    normalized = np.clip((volume - volume.mean()) / volume.std(), -5, 5)
    padded = np.pad(normalized, ((1, 1), (0, 0), (0, 0)), constant_values=normalized.min())
    summed = padded[:-2] + padded[1:-1] + padded[2:]
    return 1.0 / (1.0 + np.exp(-(weight * summed + bias)))


@pytest.mark.parametrize("with_region", [False, True])
def test_a_2_5d_package_sees_each_slice_with_its_neighbours(tmp_path, with_region):
    rng = np.random.default_rng(0)
    volume = rng.normal(100.0, 20.0, size=(6, 32, 48)).astype(np.float32)
    # the tiny package: a 1x1 convolution over the channels (all weights 0.3) + sigmoid, on a
    # grid of 0.5 mm, so a volume of 0.5 mm voxels (sizes divisible by 8) is not resampled
    folder = write_tiny_package(tmp_path, "tiny_seg", n_channels=3, weight=0.3, bias=-0.2)
    package = ModelPackage.load(folder)
    assert [c.name for c in package.card.input.channels] == ["T2w_sagittal-1", "T2w", "T2w_sagittal+1"]
    segmenter = SagittalSegmenter(Predictor.create(package, threads=1))
    expected = _reference(volume.astype(np.float64), 0.3, -0.2)
    region = None
    if with_region:  # the tiled path (the lesion model's, around the cord)
        region = np.zeros(volume.shape, dtype=bool)
        region[1:5, 8:20, 10:30] = True
        expected = np.where(region, expected, 0.0)
    got = segmenter.probabilities(Volume(volume, (0.5, 0.5, 0.5)), region=region, context_mm=2.0)
    assert got.shape == volume.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_segmentation_recipes_take_neighbour_slices_and_classifiers_refuse_them():
    from sct_lesion_classify.train.recipes import RECIPES

    cord = RECIPES["cord"].with_neighbour_slices(1)
    spec = cord.input_spec()
    assert [c.name for c in spec.channels] == ["T2w_sagittal-1", "T2w", "T2w_sagittal+1"]
    assert slice_offsets(spec) == (-1, 0, 1)
    assert cord.architecture_details["in_channels"] == 3
    assert RECIPES["cord"].with_neighbour_slices(None) is RECIPES["cord"]
    assert [c.name for c in RECIPES["lesion"].with_neighbour_slices(2).input_spec().channels][0] == "T2w_sagittal-2"
    with pytest.raises(InputError, match="--neighbour-slices must be >= 0"):
        RECIPES["cord"].with_neighbour_slices(-1)
    with pytest.raises(InputError, match="--neighbour-slices applies"):
        RECIPES["ms_vs_nmosd"].with_neighbour_slices(1)
    assert RECIPES["ms_vs_nmosd"].with_neighbour_slices(None) is RECIPES["ms_vs_nmosd"]


def test_random_patches_cut_every_channel_alike():
    from sct_lesion_classify.train.objectives import random_patch

    rng = np.random.default_rng(3)
    channels = np.stack([np.arange(20 * 30, dtype=np.float32).reshape(20, 30) + 1000 * k for k in range(3)])
    label = np.zeros((20, 30), dtype=np.uint8)
    label[5, 7] = 1
    image, patch_label = random_patch(channels, label, (8, 16), rng)
    assert image.shape == (3, 8, 16) and patch_label.shape == (8, 16) and patch_label.sum() == 1
    np.testing.assert_array_equal(image[2] - image[0], np.full((8, 16), 2000.0))
    small, small_label = random_patch(channels[:, :4, :6], label[:4, :6], (8, 16), rng)  # padded
    assert small.shape == (3, 8, 16) and small_label.shape == (8, 16)
    assert float(small[1].sum()) == pytest.approx(float(channels[1, :4, :6].sum()))


def test_a_one_slice_network_widened_to_its_neighbours_computes_the_same():
    torch = pytest.importorskip("torch")
    pytest.importorskip("monai")
    pytest.importorskip("onnx")
    from sct_lesion_classify.train.package_weights import state_dict_from_onnx
    from sct_lesion_classify.train.recipes import RECIPES

    onnx_path = REPO / "models" / "cord_localizer" / "cord_localizer.onnx"
    flat = RECIPES["cord"].build_network().eval()
    flat.load_state_dict(state_dict_from_onnx(flat, onnx_path))
    wide = RECIPES["cord"].with_neighbour_slices(1).build_network().eval()
    wide.load_state_dict(state_dict_from_onnx(wide, onnx_path))
    generator = torch.Generator().manual_seed(0)
    centre = torch.randn(2, 1, 64, 64, generator=generator)
    neighbours = torch.randn(2, 2, 64, 64, generator=generator) * 3.0
    with torch.no_grad():
        expected = flat(centre)
        got = wide(torch.cat([neighbours[:, :1], centre, neighbours[:, 1:]], dim=1))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(InputError, match="not this family's architecture"):  # only 1 -> odd C widens
        state_dict_from_onnx(RECIPES["lesion"].build_network(), onnx_path)
