"""Mask operations done inside the bounding box give what the same operation gives on the whole array."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sct_lesion_classify.masks import bounding_box, count_components, dilate_along


def random_masks():
    """Sparse blobs anywhere (touching the edges too), single voxels, an empty and a full mask."""
    rng = np.random.default_rng(7)
    masks = []
    for shape in ((9, 40, 30), (1, 17, 5), (12, 12, 12)):
        for density in (0.002, 0.02, 0.2):
            masks.append(ndimage.binary_dilation(rng.uniform(size=shape) < density, iterations=int(rng.integers(0, 2))))
        corner = np.zeros(shape, bool)
        corner[0, 0, 0] = corner[-1, -1, -1] = True
        masks += [corner, np.zeros(shape, bool), np.ones(shape, bool)]
    return masks


@pytest.mark.parametrize("index", range(len(random_masks())))
def test_count_and_dilation_in_the_box_equal_the_whole_array(index):
    mask = random_masks()[index]
    _, expected = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    assert count_components(mask) == expected
    for axis in range(3):
        line = np.zeros((3, 3, 3), bool)
        line[tuple(slice(None) if a == axis else 1 for a in range(3))] = True
        for iterations in (1, 2, 5):
            np.testing.assert_array_equal(dilate_along(mask, axis, iterations),
                                          ndimage.binary_dilation(mask, line, iterations=iterations))


def test_bounding_box_is_tight_and_padding_is_clipped():
    mask = np.zeros((10, 10, 10), bool)
    mask[2, 3:6, 9] = True
    assert bounding_box(mask) == (slice(2, 3), slice(3, 6), slice(9, 10))
    assert bounding_box(mask, (1, 5, 2)) == (slice(1, 4), slice(0, 10), slice(7, 10))
    assert bounding_box(np.zeros((3, 3, 3), bool)) is None


@pytest.mark.parametrize("seed", range(6))
def test_cord_from_probabilities_keeps_the_piece_the_whole_volume_labelling_keeps(seed):
    from types import SimpleNamespace

    from sct_lesion_classify.cord.localize import cord_from_probabilities

    rng = np.random.default_rng(seed)
    probabilities = ndimage.gaussian_filter(rng.uniform(size=(8, 30, 40)), 1.5).astype(np.float32)
    threshold = float(np.quantile(probabilities, 0.9 + 0.01 * seed))
    result = cord_from_probabilities(probabilities, SimpleNamespace(path="x.nii.gz"), threshold=threshold)
    labels, count = ndimage.label(probabilities > threshold, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())[1:]
    assert result.pieces == count > 1
    np.testing.assert_array_equal(result.mask, labels == int(np.argmax(sizes)) + 1)
    assert result.kept_share == pytest.approx(sizes.max() / sizes.sum())
