"""Lesion statistics measured from the generated masks (the ground truth of each subject)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scipy import ndimage

from sct_lesion_classify.lesion.postprocess import label_components
from sct_lesion_classify.phantom.anatomy import Anatomy, CordModel, Spine
from sct_lesion_classify.phantom.geometry import AcquisitionGeometry

#: Connected components smaller than this (mm3) are not counted as lesions (partial-volume specks).
MIN_COMPONENT_MM3 = 20.0


@dataclass(frozen=True)
class LesionStats:
    """Morphometry of a subject's whole-lesion mask.

    Attributes
    ----------
    total_volume_ml
        Volume of the lesion mask.
    count
        Connected components (26-connectivity) of at least :data:`MIN_COMPONENT_MM3`.
    extent_segments
        Superior-inferior extension, top of the highest to bottom of the lowest lesion, in vertebral
        segments (continuous: mm converted with the subject's own segment heights).
    levels
        Vertebral segments the lesions span, top to bottom (e.g. ``("C3", "C4", "C5")``).
    enhancing
        Whether the lesion enhances on cT1w (drawn from the class's enhancement rate).
    eccentricity
        Mean distance from the cord centre to the lesion voxels' centroid of each axial row, as a
        fraction of the cord radius (0 central, 1 at the surface), weighted by lesion voxels.
    span_levels
        Top and bottom of the whole lesion as level coordinates (continuous: 0 is the top of C1,
        7 the top of T1, 19 the top of L1; ``anatomy.Spine``); ``extent_segments`` is their difference.
    lesion_extents_segments
        Extension of each counted lesion (the ``count`` components), top to bottom.
    """

    total_volume_ml: float
    count: int
    extent_segments: float
    levels: tuple[str, ...]
    enhancing: bool
    eccentricity: float
    span_levels: tuple[float, float] = (0.0, 0.0)
    lesion_extents_segments: tuple[float, ...] = ()


def counted_lesions(mask: np.ndarray, voxel_mm3: float) -> tuple[np.ndarray, np.ndarray]:
    """Label image of the 26-connected components of ``mask`` (``lesion.postprocess.label_components``)
    and the labels of those of at least :data:`MIN_COMPONENT_MM3` (the lesions)."""
    labels, _ = label_components(mask)
    sizes_mm3 = np.bincount(labels.ravel())[1:] * voxel_mm3
    return labels, np.flatnonzero(sizes_mm3 >= MIN_COMPONENT_MM3) + 1


def count_components(mask: np.ndarray, voxel_mm3: float) -> int:
    """Lesions in ``mask``: the components :func:`counted_lesions` keeps."""
    return int(counted_lesions(mask, voxel_mm3)[1].size)


def measure_lesions(lesion_mask: np.ndarray, cord: CordModel, geometry: AcquisitionGeometry,
                    anatomy: Anatomy, enhancing: bool) -> LesionStats:
    """Measure :class:`LesionStats` from a canonical lesion mask."""
    voxel_mm3 = float(np.prod(geometry.zooms_mm))
    n_voxels = int(np.count_nonzero(lesion_mask))
    if n_voxels == 0:
        return LesionStats(0.0, 0, 0.0, (), enhancing, 0.0)
    labels, counted = counted_lesions(lesion_mask, voxel_mm3)
    rows = np.flatnonzero(lesion_mask.any(axis=(0, 1)))
    top, bottom = _row_levels(rows[0], rows[-1] + 1, geometry, anatomy)
    boxes = ndimage.find_objects(labels)
    spans = sorted(_row_levels(boxes[label - 1][2].start, boxes[label - 1][2].stop, geometry, anatomy)
                   for label in counted)
    levels = tuple(Spine.segment_name(level) for level in np.arange(np.floor(top), np.floor(bottom) + 1))
    # eccentricity per axial row
    x = geometry.x_centers().astype(np.float64)
    y = geometry.y_centers().astype(np.float64)
    per_row = lesion_mask.sum(axis=(0, 1)).astype(np.float64)
    sx = np.einsum("xyz,x->z", lesion_mask, x, dtype=np.float64)
    sy = np.einsum("xyz,y->z", lesion_mask, y, dtype=np.float64)
    ok = per_row > 0
    cx = sx[ok] / per_row[ok]
    cy = sy[ok] / per_row[ok]
    offset = np.sqrt(((cx - cord.center_x[ok]) / cord.radius_x[ok]) ** 2
                     + ((cy - cord.center_y[ok]) / cord.radius_y[ok]) ** 2)
    eccentricity = float(np.sum(offset * per_row[ok]) / per_row[ok].sum())
    return LesionStats(round(n_voxels * voxel_mm3 / 1000.0, 4), int(counted.size), round(bottom - top, 3),
                       levels, enhancing, round(min(eccentricity, 1.5), 3),
                       (round(top, 3), round(bottom, 3)),
                       tuple(round(low - high, 3) for high, low in spans))


def _row_levels(first_row: int, stop_row: int, geometry: AcquisitionGeometry,
                anatomy: Anatomy) -> tuple[float, float]:
    """Level coordinates of the top and the bottom of axial rows ``first_row ... stop_row - 1``
    (row edges, half a pixel beyond the centres; z grows upwards, levels downwards)."""
    z = geometry.z_centers().astype(np.float64)
    half = geometry.pixel_mm / 2
    return float(anatomy.level(z[stop_row - 1] + half)), float(anatomy.level(z[first_row] - half))


def cord_axis_angles(cord_mask: np.ndarray, zooms_mm: tuple[float, float, float]) -> tuple[float, float]:
    """Tilt (degrees) of a canonical cord mask in the sagittal and the coronal plane.

    A straight line is fitted (least squares, in mm) to the centroid of the mask in each axial row:
    the sagittal angle is ``atan(dy/dz)`` (positive: the cord runs anteriorly going up), the coronal
    one ``atan(dx/dz)`` (positive: to the right going up). NaN with fewer than two rows.
    """
    per_row = cord_mask.sum(axis=(0, 1)).astype(np.float64)
    rows = np.flatnonzero(per_row > 0)
    if rows.size < 2:
        return float("nan"), float("nan")
    x = np.arange(cord_mask.shape[0]) * zooms_mm[0]
    y = np.arange(cord_mask.shape[1]) * zooms_mm[1]
    cx = np.einsum("xyz,x->z", cord_mask, x, dtype=np.float64)[rows] / per_row[rows]
    cy = np.einsum("xyz,y->z", cord_mask, y, dtype=np.float64)[rows] / per_row[rows]
    z = rows * zooms_mm[2]
    sagittal = np.degrees(np.arctan(np.polyfit(z, cy, 1)[0]))
    coronal = np.degrees(np.arctan(np.polyfit(z, cx, 1)[0]))
    return float(sagittal), float(coronal)
