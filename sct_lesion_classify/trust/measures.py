"""What the trust checks measure, from arrays the pipeline already has (canonical RAS+ axes:
0 = right-left, 1 = posterior-anterior, 2 = inferior-superior; zooms in mm).

Each function returns a frozen record of plain numbers, so the checks (:mod:`.checks`) and the
training-data ranges of the model cards (:mod:`.acquisition`) read the same measures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: The CSF ring around the cord for the cord/CSF intensity ratio: voxels 1-3 mm anterior or
#: posterior of the cord, in the same sagittal slice and S-I row (the sagittal plane is the
#: acquisition plane, where the A-P spacing is fine).
CSF_RING_MM = (1.0, 3.0)


#: Shortest S-I stretch of cord outside the lesion's extent whose size is judged (mm).
MIN_NORMAL_CORD_MM = 10.0
#: The quantiles of the cord's size along its length that the size check reads: the upper one
#: for "too small" (a tapering conus, or a thin tail of mask below it, may be most of the cord
#: that lies away from a long lesion), the lower one for "too large" (a stretch swollen beyond
#: the lesion mask).
SIZE_QUANTILES = (0.25, 0.75)


@dataclass(frozen=True)
class CordProfile:
    """The cord mask along its length (one value per S-I row that holds cord).

    Attributes
    ----------
    csa_low_mm2, csa_high_mm2
        Lower and upper quartile (:data:`SIZE_QUANTILES`) over the rows of the cross-sectional
        area (voxels of the row x R-L x A-P voxel size). With a lesion mask, over the rows outside
        the lesion's S-I extent only: a tumour may swell the cord it lies in far beyond an adult
        cord's size (a holocord ependymoma phantom reaches 300 mm2), and the cord's own size is
        what tells whether the mask is a cord. The quartiles, not the median: where a long lesion
        leaves only the conus and the thin mask below it (a held-out phantom: 140 rows of
        11 mm2 below the conus, 100 rows of a 50 mm2 cord above the lesion), the median is the
        tail's. NaN (no size check) when fewer than :data:`MIN_NORMAL_CORD_MM` of rows remain.
    ap_low_mm, ap_high_mm
        The same quartiles of the A-P extent.
    coverage
        S-I extent of the cord / S-I extent of the image.
    longest_gap_mm
        Longest S-I stretch without cord between the first and last rows holding cord.
    """

    csa_low_mm2: float
    csa_high_mm2: float
    ap_low_mm: float
    ap_high_mm: float
    coverage: float
    longest_gap_mm: float


def cord_profile(cord_mask: np.ndarray, zooms_mm: tuple[float, float, float],
                 lesion_mask: np.ndarray | None = None) -> CordProfile | None:
    """The :class:`CordProfile` of a boolean cord mask (its size away from ``lesion_mask``'s S-I
    extent when given); None for an empty mask."""
    rows = np.flatnonzero(cord_mask.any(axis=(0, 1)))
    if rows.size == 0:
        return None
    steps = np.diff(rows) - 1
    gap = float(steps.max()) * zooms_mm[2] if steps.size else 0.0
    sized = rows
    if lesion_mask is not None and lesion_mask.any():
        lesion_rows = np.flatnonzero(lesion_mask.any(axis=(0, 1)))
        sized = rows[(rows < lesion_rows[0]) | (rows > lesion_rows[-1])]
    if sized.size * zooms_mm[2] < MIN_NORMAL_CORD_MM:
        csa_mm2 = ap_mm = (float("nan"),) * 2
    else:
        areas = cord_mask.sum(axis=(0, 1))[sized] * zooms_mm[0] * zooms_mm[1]
        in_plane = cord_mask.any(axis=0)  # (A-P, S-I)
        extents = np.array([np.ptp(np.flatnonzero(in_plane[:, z])) + 1 for z in sized]) * zooms_mm[1]
        csa_mm2, ap_mm = (tuple(float(q) for q in np.quantile(values, SIZE_QUANTILES))
                          for values in (areas, extents))
    return CordProfile(csa_low_mm2=csa_mm2[0], csa_high_mm2=csa_mm2[1], ap_low_mm=ap_mm[0], ap_high_mm=ap_mm[1],
                       coverage=float((rows[-1] - rows[0] + 1) / cord_mask.shape[2]),
                       longest_gap_mm=gap)


@dataclass(frozen=True)
class LesionMeasures:
    """The lesion mask against the cord and the field of view.

    Attributes
    ----------
    volume_mm3
        Lesion volume.
    cord_ratio
        Lesion volume / cord volume over the lesion's S-I rows (inf when no cord there; NaN
        without a cord mask).
    outside_share
        Share of the lesion voxels outside the cord mask (NaN without a cord mask).
    touches_edge
        Whether the lesion reaches a right-left or anterior-posterior face of the image (the first
        or last sagittal slice, the front or back of the field of view) outside the cord mask: an
        intramedullary lesion lies well inside them. Lesion voxels on a face that lie inside the
        cord mask do not count: there the cord itself reaches the border (a tumour swelling the
        cord to the first of 12 sagittal slices, a held-out phantom), and the lesion is in the
        cord. Without a cord mask, any lesion voxel on a face counts. The superior and inferior
        faces do not count: a lesion cut by the S-I field of view is common in the training data
        (a quarter of the held-out phantoms) and the morphometry already warns that the cord runs
        out of the image.
    components
        Separate 3D pieces (26-connectivity).
    """

    volume_mm3: float
    cord_ratio: float
    outside_share: float
    touches_edge: bool
    components: int


def lesion_measures(lesion_mask: np.ndarray, cord_mask: np.ndarray | None,
                    zooms_mm: tuple[float, float, float]) -> LesionMeasures | None:
    """The :class:`LesionMeasures` of a boolean lesion mask; None for an empty mask."""
    n_lesion = int(lesion_mask.sum())
    if n_lesion == 0:
        return None
    voxel = float(np.prod(zooms_mm))
    outside_cord = lesion_mask if cord_mask is None else lesion_mask & ~cord_mask
    touches = any(np.take(outside_cord, index, axis=axis).any()
                  for axis in (0, 1) for index in (0, lesion_mask.shape[axis] - 1))
    _, components = ndimage.label(lesion_mask, structure=np.ones((3, 3, 3), bool))
    if cord_mask is None:
        return LesionMeasures(volume_mm3=n_lesion * voxel, cord_ratio=math.nan, outside_share=math.nan,
                              touches_edge=touches, components=int(components))
    rows = lesion_mask.any(axis=(0, 1))
    n_cord = int(cord_mask[:, :, rows].sum())
    return LesionMeasures(
        volume_mm3=n_lesion * voxel,
        cord_ratio=n_lesion / n_cord if n_cord else math.inf,
        outside_share=float(outside_cord.sum() / n_lesion),
        touches_edge=touches, components=int(components))


@dataclass(frozen=True)
class AcquisitionMeasures:
    """The image's acquisition, as the model cards' ``training_data`` ranges describe it.

    Attributes
    ----------
    in_plane_spacing_mm
        The coarser of the A-P and S-I voxel sizes (the sagittal plane).
    slice_thickness_mm
        The R-L voxel size.
    thickness_ratio
        R-L voxel size / S-I voxel size: well above 1 for a sagittal acquisition, about 1 for an
        isotropic 3D one, well below 1 for an axial acquisition resliced to sagittal.
    fov_ap_mm, fov_si_mm
        Field of view.
    cord_csf_ratio
        Median intensity in the cord / median intensity of the CSF ring around it
        (:data:`CSF_RING_MM`): below 1 on T2w (bright CSF), above 1 on T1w. NaN without a cord
        mask or ring.
    """

    in_plane_spacing_mm: float
    slice_thickness_mm: float
    thickness_ratio: float
    fov_ap_mm: float
    fov_si_mm: float
    cord_csf_ratio: float


def acquisition_measures(image: np.ndarray, zooms_mm: tuple[float, float, float],
                         cord_mask: np.ndarray | None) -> AcquisitionMeasures:
    """The :class:`AcquisitionMeasures` of a canonical image (and its cord mask, when known)."""
    zooms = tuple(float(z) for z in zooms_mm)
    return AcquisitionMeasures(
        in_plane_spacing_mm=max(zooms[1], zooms[2]),
        slice_thickness_mm=zooms[0],
        thickness_ratio=zooms[0] / zooms[2],
        fov_ap_mm=image.shape[1] * zooms[1],
        fov_si_mm=image.shape[2] * zooms[2],
        cord_csf_ratio=math.nan if cord_mask is None else cord_csf_ratio(image, cord_mask, zooms[1]))


def cord_csf_ratio(image: np.ndarray, cord_mask: np.ndarray, ap_spacing_mm: float) -> float:
    """Median cord intensity / median intensity 1-3 mm anterior and posterior of it (NaN if empty)."""
    inner, outer = (max(1, int(round(mm / ap_spacing_mm))) for mm in CSF_RING_MM)
    along_ap = np.zeros((1, 3, 1), bool)
    along_ap[0, :, 0] = True
    near = ndimage.binary_dilation(cord_mask, along_ap, iterations=inner)
    far = ndimage.binary_dilation(cord_mask, along_ap, iterations=outer)
    ring = far & ~near
    if not cord_mask.any() or not ring.any():
        return math.nan
    csf = float(np.median(image[ring]))
    if csf <= 0:
        return math.nan
    return float(np.median(image[cord_mask])) / csf
