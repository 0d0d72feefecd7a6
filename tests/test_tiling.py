"""Tiles that follow the cord: the plan covers what is needed, and tiled inference equals whole slices.

The plan is checked on random masks (hypothesis) for the properties the segmenter relies on;
the inference with the tiny package (a 1x1 convolution, so every pixel's output depends on that
pixel only) must give the same probabilities with tiles as with whole slices inside the region,
and 0 outside it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sct_lesion_classify.cord.crop import crop_box_around, region_around
from sct_lesion_classify.modelpkg.package import ModelPackage
from sct_lesion_classify.modelpkg.testing import write_tiny_package
from sct_lesion_classify.runtime.preprocess import Volume
from sct_lesion_classify.runtime.sagittal import SagittalSegmenter
from sct_lesion_classify.runtime.session import Predictor
from sct_lesion_classify.runtime.tiling import plan_tiles


@st.composite
def needed_stacks(draw):
    divisor = draw(st.sampled_from([1, 4, 8, 16]))
    n = draw(st.integers(1, 4))
    height = divisor * draw(st.integers(1, max(1, 64 // divisor)))
    width = divisor * draw(st.integers(1, max(1, 128 // divisor)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    needed = np.zeros((n, height, width), dtype=bool)
    for index in range(n):
        for _ in range(rng.integers(0, 4)):  # a few random rectangles per slice, or none
            r0, c0 = rng.integers(0, height), rng.integers(0, width)
            needed[index, r0:r0 + rng.integers(1, height + 1), c0:c0 + rng.integers(1, width + 1)] = True
    return needed, divisor, draw(st.integers(0, 40))


@settings(max_examples=80, deadline=None)
@given(case=needed_stacks())
def test_plan_covers_every_needed_pixel_once_with_valid_windows(case):
    needed, divisor, context = case
    tiles = plan_tiles(needed, context_px=context, divisor=divisor)
    covered = np.zeros(needed.shape, dtype=np.int32)
    _, height, width = needed.shape
    for tile in tiles:
        (rows, cols), (core_rows, core_cols) = tile.window, tile.core
        covered[(tile.slice_index,) + tile.core] += 1
        assert 0 <= rows.start < rows.stop <= height and 0 <= cols.start < cols.stop <= width
        assert (rows.stop - rows.start) % divisor == 0 and (cols.stop - cols.start) % divisor == 0
        assert rows.start <= core_rows.start < core_rows.stop <= rows.stop
        assert cols.start <= core_cols.start < core_cols.stop <= cols.stop
        # the context above and below the core, as far as the slice goes
        assert core_cols.start - cols.start >= min(context, core_cols.start)
        assert cols.stop - core_cols.stop >= min(context, width - core_cols.stop)
    assert covered.max(initial=0) <= 1, "cores overlap"
    assert covered[needed].min(initial=1) == 1, "a needed pixel is in no core"
    assert {t.slice_index for t in tiles} == {i for i in range(needed.shape[0]) if needed[i].any()}


def test_a_curved_band_gets_several_tiles_and_fewer_pixels_than_its_box():
    height, width = 160, 640
    needed = np.zeros((1, height, width), dtype=bool)
    for col in range(width):  # a band 24 pixels wide whose centre drifts by 100 rows
        centre = 30 + int(100 * col / width)
        needed[0, centre - 12:centre + 12, col] = True
    tiles = plan_tiles(needed, context_px=40, divisor=16)
    assert len(tiles) > 1
    pixels = sum(t.window_shape[0] * t.window_shape[1] for t in tiles)
    rows = np.flatnonzero(needed[0].any(axis=1))
    box_pixels = (-(-(rows[-1] + 1 - rows[0]) // 16) * 16) * width
    assert pixels < 0.8 * box_pixels


def test_plan_of_a_rectangle_is_one_tile_equal_to_it():
    needed = np.zeros((2, 64, 96), dtype=bool)
    needed[1, 16:48, 32:80] = True
    (tile,) = plan_tiles(needed, context_px=8, divisor=16)
    assert tile.slice_index == 1
    assert tile.core == (slice(16, 48), slice(32, 80))
    assert tile.window == (slice(16, 48), slice(24, 88))
    assert tile.window_shape == (32, 64)
    assert tile.core_in_window == (slice(0, 32), slice(8, 56))


def test_plan_refuses_bad_arguments():
    with pytest.raises(ValueError, match="multiple"):
        plan_tiles(np.ones((1, 20, 32), bool), context_px=0, divisor=16)
    with pytest.raises(ValueError, match="N, H, W"):
        plan_tiles(np.ones((20, 32), bool), context_px=0)
    with pytest.raises(ValueError):
        plan_tiles(np.ones((1, 16, 16), bool), context_px=-1)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(3, 9), st.integers(10, 40), st.integers(20, 80)),
    margins=st.tuples(st.floats(0, 8), st.floats(0, 8), st.floats(0, 8)),
    zooms=st.tuples(st.floats(0.5, 4), st.floats(0.3, 2), st.floats(0.3, 2)),
    seed=st.integers(0, 2**32 - 1),
)
def test_region_is_the_cord_grown_by_the_margins_and_fills_the_crop_box(shape, margins, zooms, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < 0.02
    mask[shape[0] // 2, shape[1] // 2, shape[2] // 2] = True
    region = region_around(mask, zooms, margins)
    box = crop_box_around(mask, zooms, margins)
    assert region[mask].all()
    present = [np.flatnonzero(region.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    assert tuple(int(p[0]) for p in present) == box.start
    assert tuple(int(p[-1]) + 1 for p in present) == box.stop
    # brute force: a voxel is in the region iff a cord voxel lies within the margin on every axis
    from sct_lesion_classify.cord.crop import margins_in_voxels

    reach = np.array(margins_in_voxels(zooms, margins))
    cord = np.argwhere(mask)
    for voxel in np.argwhere(np.ones(shape, bool))[rng.choice(np.prod(shape), 200)]:
        near = (np.abs(cord - voxel) <= reach).all(axis=1).any()
        assert region[tuple(voxel)] == near


@pytest.fixture(scope="module")
def tiny_segmenter(tmp_path_factory):
    folder = write_tiny_package(tmp_path_factory.mktemp("models"), weight=1.5, bias=-0.5)
    return SagittalSegmenter(Predictor.create(ModelPackage.load(folder), threads=1))


def test_tiled_inference_equals_whole_slices_inside_the_region(tiny_segmenter):
    rng = np.random.default_rng(7)
    shape, zooms = (7, 60, 150), (3.0, 0.7, 0.7)
    volume = rng.normal(100, 20, size=shape).astype(np.float32)
    cord = np.zeros(shape, dtype=bool)
    for k in range(shape[2]):  # a curved cord, wide only in the middle slices at one level
        centre = 20 + int(20 * k / shape[2])
        cord[3, centre - 3:centre + 3, k] = True
        if 60 <= k < 90:
            cord[2:5, centre - 4:centre + 4, k] = True
    region = region_around(cord, zooms, (3.0, 5.0, 10.0))
    whole = tiny_segmenter.probabilities(Volume(volume, zooms))
    tiled = tiny_segmenter.probabilities(Volume(volume, zooms), region=region, context_mm=4.0)
    assert tiled.shape == shape and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled[region], whole[region], atol=1e-6)
    assert (tiled[~region] == 0).all()
    assert whole[~region].min() > 0  # so the zeros above are the tiling's, not the network's


def test_region_must_have_the_volume_shape(tiny_segmenter):
    volume = np.ones((3, 20, 30), np.float32)
    with pytest.raises(ValueError, match="region shape"):
        tiny_segmenter.probabilities(Volume(volume, (1.0, 1.0, 1.0)), region=np.ones((3, 20, 31), bool))


@pytest.mark.parametrize("batch_pixels", [1, 2 * 64 * 160, 10 ** 9])
def test_batches_follow_the_pixel_budget_and_change_nothing(tiny_segmenter, batch_pixels, monkeypatch):
    """One slice per call when a slice alone exceeds the budget, several when they fit; same output."""
    import dataclasses

    batches = []
    real = Predictor.predict

    def watched(self, batch):
        batches.append(batch.shape)
        return real(self, batch)

    rng = np.random.default_rng(2)
    volume = Volume(rng.normal(100, 20, size=(7, 60, 150)).astype(np.float32), (3.0, 0.7, 0.7))
    reference = tiny_segmenter.probabilities(volume)
    segmenter = dataclasses.replace(tiny_segmenter, batch_pixels=batch_pixels)
    monkeypatch.setattr(Predictor, "predict", watched)
    probabilities = segmenter.probabilities(volume)
    np.testing.assert_array_equal(probabilities, reference)
    assert sum(shape[0] for shape in batches) == 7
    pixels = batches[0][2] * batches[0][3]
    assert max(shape[0] for shape in batches) == max(1, min(7, batch_pixels // pixels))
