"""Postprocessing of the lesion network's probability map, as ``sct_deepseg`` does it.

The steps and their order follow SCT's ``sct_deepseg`` (``-thr``, ``-largest``, ``-fill-holes``,
``-remove-small``):

1. **threshold**: voxels with probability ``> threshold`` are lesion (strictly greater, as
   ivadomed/SCT binarise). ``threshold == 0`` keeps the soft map: the float32 probabilities are
   returned unchanged and every other step is skipped (they need a binary mask).
2. **largest**: keep only the largest connected component (ties: the first in scan order).
3. **fill_holes**: fill background regions enclosed by lesion *within their sagittal slice*
   (canonical ``mask[i]``, 4-connected background in 2D). The network predicts sagittal slices and
   clinical sagittal T2w slices are thick (3-4 mm in R-L), so a hole in a lesion seen on one
   slice is open to the neighbouring slices and a 3D fill (``scipy.ndimage.binary_fill_holes``
   in 3D, what SCT uses) would leave it; the per-slice fill also fills every hole that the 3D
   fill fills (a background region enclosed in 3D is enclosed in each of its slices).
4. **remove_small**: remove connected components smaller than a size given as ``"20mm3"``
   (volume in mm3, compared in mm3: ``n_voxels * voxel_volume < 20``) or ``"5vox"`` (voxels:
   ``n_voxels < 5``). With several sizes, a component is removed when it is smaller than any.
   (SCT converts mm3 to a rounded number of voxels first; comparing volumes avoids that rounding.)

Connected components use **26-connectivity** in 3D (voxels touching by a face, an edge or a
corner belong to the same component), the same rule as :mod:`.morphometry`, so a lesion kept
here is one lesion there. (SCT's ``-remove-small`` uses 18-connectivity; the difference only
matters for components touching by a corner.)

An empty result is a result: an all-False mask, never an error (SPEC section 2).

The settings, :class:`Postprocessing`, are the model card's ``postprocessing`` section
(:mod:`sct_lesion_classify.modelpkg.card`; the commands override the card's defaults with their
flags); :func:`parse_size` reads a ``-remove-small`` size. Both are importable from here.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy import ndimage

from sct_lesion_classify.errors import ProcessingError
from sct_lesion_classify.masks import CONNECTIVITY_26, bounding_box
from sct_lesion_classify.modelpkg.card import SIZE_UNITS, Postprocessing, parse_size  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

#: Background connectivity of the per-sagittal-slice hole filling: 4-connected within ``mask[i]``,
#: nothing across slices.
_SAGITTAL_CROSS = np.zeros((3, 3, 3), dtype=bool)
_SAGITTAL_CROSS[1] = ndimage.generate_binary_structure(2, 1)


def postprocess(
    prob: np.ndarray, zooms_mm: tuple[float, float, float], settings: Postprocessing
) -> np.ndarray:
    """Apply ``settings`` to a 3D probability map (canonical orientation).

    Parameters
    ----------
    prob
        Lesion probabilities in [0, 1], shape ``(X, Y, Z)``.
    zooms_mm
        Voxel size in mm (for ``remove_small`` sizes in mm3).
    settings
        What to do; see the module documentation for the order and the rules.

    Returns
    -------
    numpy.ndarray
        A bool mask, or the float32 probability map unchanged when ``settings.threshold == 0``.
    """
    prob = np.asarray(prob)
    if prob.ndim != 3:
        raise ProcessingError(f"lesion probabilities must be a 3D array, got shape {prob.shape}")
    if len(zooms_mm) != 3 or not all(math.isfinite(z) and z > 0 for z in zooms_mm):
        raise ProcessingError(f"invalid voxel size {tuple(zooms_mm)!r}")
    if settings.soft:
        logger.debug("threshold 0: keeping the soft probability map")
        return np.array(prob, dtype=np.float32, copy=True)

    mask = prob > settings.threshold
    box = bounding_box(mask)
    if box is None:
        logger.debug("no voxel above the threshold %g", settings.threshold)
        return mask
    # every step depends only on the mask inside its bounding box (holes are enclosed by it)
    local = mask[box]
    if settings.largest:
        local = keep_largest(local)
    if settings.fill_holes:
        local = fill_holes_sagittal(local)
    if settings.remove_small:
        local = remove_small_objects(local, zooms_mm, settings.remove_small)
    mask = np.zeros(prob.shape, dtype=bool)
    mask[box] = local
    if not local.any():
        logger.debug("postprocessing left no lesion voxel")
    return mask


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components of a bool mask with 26-connectivity: ``(labels, count)``."""
    labels, count = ndimage.label(np.asarray(mask, dtype=bool), structure=CONNECTIVITY_26)
    return labels, int(count)


def keep_largest(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest 26-connected component (the first one in scan order on ties)."""
    labels, count = label_components(mask)
    if count <= 1:
        return np.asarray(mask, dtype=bool).copy()
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    largest = int(np.argmax(sizes))
    logger.debug("keeping the largest of %d components (%d voxels)", count, sizes[largest])
    return labels == largest


def fill_holes_sagittal(mask: np.ndarray) -> np.ndarray:
    """Fill background regions enclosed by the mask within each sagittal slice ``mask[i]``."""
    return ndimage.binary_fill_holes(np.asarray(mask, dtype=bool), structure=_SAGITTAL_CROSS)


def remove_small_objects(
    mask: np.ndarray, zooms_mm: tuple[float, float, float], sizes: tuple[str, ...]
) -> np.ndarray:
    """Remove 26-connected components smaller than any of ``sizes`` (``"20mm3"``, ``"5vox"``)."""
    min_voxels = 0.0
    voxel_mm3 = float(np.prod(np.asarray(zooms_mm, dtype=np.float64)))
    for text in sizes:
        value, unit = parse_size(text)
        # components with n_voxels < this are removed; mm3 compared as volumes (tolerance for
        # float rounding of voxel sizes, e.g. 0.1 mm zooms)
        limit = value if unit == "vox" else value / voxel_mm3 * (1 - 1e-9)
        min_voxels = max(min_voxels, limit)
    labels, count = label_components(mask)
    if count == 0 or min_voxels <= 0:
        return np.asarray(mask, dtype=bool).copy()
    sizes_vox = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes_vox >= min_voxels
    keep[0] = False
    removed = int(count - keep[1:].sum())
    if removed:
        logger.debug("removed %d of %d components smaller than %s", removed, count, ", ".join(sizes))
    return keep[labels]
