"""Morphometry of an inserted lesion, measured from its truth mask and the painted image.

The same features as the phantoms' ``phantom.measure.LesionStats`` (and the ``difficult`` rule of
``phantom.cohort`` that uses them), measured along the real cord: the extent is the length along
the centreline (``cord_frame``) converted to vertebral segments with the plan's ``segment_mm``;
the eccentricity is the mean offset, per axial slice, of the lesion's centroid from the cord's
centre as a fraction of the cord's radii, weighted by lesion voxels. ``t2_ratio`` is the median,
over the lesion, of the painted image divided by the slice's cord reference (``paint``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sct_lesion_classify.insertion.cord_frame import CordFrame
from sct_lesion_classify.phantom.measure import count_components


@dataclass(frozen=True)
class InsertedLesionStats:
    """Measured features of one inserted lesion (0 everywhere for an empty mask)."""

    volume_ml: float
    count: int
    extent_mm: float
    extent_segments: float
    eccentricity: float
    t2_ratio: float


def measure_inserted(lesion_mask: np.ndarray, t2w: np.ndarray, cord_reference: np.ndarray,
                     frame: CordFrame, segment_mm: float) -> InsertedLesionStats:
    """Measure :class:`InsertedLesionStats` (canonical arrays; ``cord_reference`` per z slice)."""
    voxel_mm3 = float(np.prod(frame.zooms_mm))
    voxels = np.nonzero(lesion_mask)
    if voxels[0].size == 0:
        return InsertedLesionStats(0.0, 0, 0.0, 0.0, 0.0, 0.0)
    count = count_components(lesion_mask, voxel_mm3)
    half = frame.zooms_mm[2] / 2
    low, high = frame.arc_of_z(np.array([voxels[2].min() * frame.zooms_mm[2] - half,
                                         voxels[2].max() * frame.zooms_mm[2] + half]))
    extent_mm = float(high - low)

    slices, per_slice = np.unique(voxels[2], return_counts=True)
    lesion_x = np.bincount(voxels[2], weights=voxels[0] * frame.zooms_mm[0])[slices] / per_slice
    lesion_y = np.bincount(voxels[2], weights=voxels[1] * frame.zooms_mm[1])[slices] / per_slice
    z_mm = slices * frame.zooms_mm[2]
    center_x, center_y = frame.center_at(z_mm)
    radius_x, radius_y = frame.radii_at_arc(frame.arc_of_z(z_mm))
    offset = np.hypot((lesion_x - center_x) / np.maximum(radius_x, 1e-3),
                      (lesion_y - center_y) / np.maximum(radius_y, 1e-3))
    eccentricity = float(np.sum(offset * per_slice) / per_slice.sum())
    ratio = float(np.median(t2w[voxels] / cord_reference[voxels[2]]))
    return InsertedLesionStats(round(voxels[0].size * voxel_mm3 / 1000.0, 4), count,
                               round(extent_mm, 2), round(extent_mm / segment_mm, 3),
                               round(min(eccentricity, 1.5), 3), round(ratio, 3))
