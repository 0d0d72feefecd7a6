"""Operations on boolean masks that several stages share (cord, lesion, trust checks).

Each works inside the mask's bounding box, so its cost follows the mask, not the image: a lesion
of a few thousand voxels in a 512 x 512 x 15 volume is labelled in a box of a few thousand voxels
instead of 3.9 million. The results are those of the same operation on the whole array.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: 3x3x3 structuring element of 26-connectivity.
CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def bounding_box(mask: np.ndarray, pad: tuple[int, ...] | None = None) -> tuple[slice, ...] | None:
    """Smallest box holding every nonzero voxel of ``mask`` (``None`` when it is empty).

    Parameters
    ----------
    mask
        Any array; nonzero voxels count.
    pad
        Voxels added on both sides along each axis, clipped to the array.
    """
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(np.any(mask, axis=others))
        if present.size == 0:
            return None
        margin = 0 if pad is None else int(pad[axis])
        box.append(slice(max(int(present[0]) - margin, 0), min(int(present[-1]) + 1 + margin, mask.shape[axis])))
    return tuple(box)


def count_components(mask: np.ndarray) -> int:
    """Number of 26-connected pieces of a boolean mask (0 when it is empty)."""
    box = bounding_box(mask)
    if box is None:
        return 0
    _, count = ndimage.label(np.asarray(mask[box], dtype=bool), structure=CONNECTIVITY_26)
    return int(count)


def dilate_along(mask: np.ndarray, axis: int, iterations: int) -> np.ndarray:
    """``mask`` dilated by ``iterations`` voxels both ways along one axis (a line element),
    zero outside the array, as ``ndimage.binary_dilation`` on the whole array gives it."""
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros(mask.shape, dtype=bool)
    pad = tuple(iterations if a == axis else 0 for a in range(mask.ndim))
    box = bounding_box(mask, pad)
    if box is None:
        return out
    element = np.zeros((3,) * mask.ndim, dtype=bool)
    element[tuple(slice(None) if a == axis else 1 for a in range(mask.ndim))] = True
    out[box] = ndimage.binary_dilation(mask[box], element, iterations=iterations)
    return out
