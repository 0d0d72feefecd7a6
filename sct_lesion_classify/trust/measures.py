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

from sct_lesion_classify.masks import count_components, dilate_along

#: The CSF ring around the cord for the cord/CSF intensity ratio: voxels 1-3 mm anterior or
#: posterior of the cord, in the same sagittal slice and S-I row (the sagittal plane is the
#: acquisition plane, where the A-P spacing is fine).
CSF_RING_MM = (1.0, 3.0)


#: Shortest S-I stretch of cord away from the lesion whose size is judged (mm).
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
        area (voxels of the row x R-L x A-P voxel size). With a lesion mask, over the rows that
        hold no lesion only (:func:`rows_away_from_lesion`): a tumour may swell the cord it lies
        in far beyond an adult cord's size (a holocord ependymoma phantom reaches 300 mm2), and
        the cord's own size is what tells whether the mask is a cord. The quartiles, not the
        median: where a long lesion leaves only the conus and the thin mask below it (a held-out
        phantom: 140 rows of 11 mm2 below the conus, 100 rows of a 50 mm2 cord above the
        lesion), the median is the tail's. NaN (no size check) when fewer than
        :data:`MIN_NORMAL_CORD_MM` of rows remain.
    ap_low_mm, ap_high_mm
        The same quartiles of the A-P extent.
    coverage
        The share of the image's S-I extent that the cord covers or that lies below the cord's
        anatomical end: S-I extent of the mask, plus the stretch below its inferior end when that
        end is the conus (:attr:`CordEnd.is_conus`), over the S-I extent of the image. A cord that
        ends in the body is no loss of coverage; one the localizer lost is.
    mask_coverage
        S-I extent of the mask / S-I extent of the image (what ``coverage`` was before the
        inferior end was read: it counts a conus inside the field of view as lost cord).
    longest_gap_mm
        Longest S-I stretch without cord between the first and last rows holding cord.
    inferior_end
        How the mask ends at the bottom (:class:`CordEnd`); None when the mask reaches the image's
        inferior border, or without the image.
    """

    csa_low_mm2: float
    csa_high_mm2: float
    ap_low_mm: float
    ap_high_mm: float
    coverage: float
    mask_coverage: float
    longest_gap_mm: float
    inferior_end: CordEnd | None = None


def rows_away_from_lesion(rows: np.ndarray, lesion_mask: np.ndarray | None) -> np.ndarray:
    """The S-I ``rows`` that hold no lesion (all of them without a lesion).

    Row by row, not the lesion mask's whole S-I extent: between two lesions far apart (MS
    lesions at C2 and C6, or a tumour and a small false positive in the mask's tail) lies normal
    cord, which is what tells whether the mask is a cord. Measured on the held-out masks of
    ``evaluate`` (cord localizer 2.1.0, lesion model 2.0.0), the size check then fires on 1 of 80
    in-distribution phantoms (was 2) and on 2 of 80 shifted ones (was 4: the two it keeps are
    the cords the localizer lost, Dice 0.08 and 0.01); excluding 2 or 5 mm more around each
    lesion row fired on masks of cord Dice 0.65-0.75 and missed the lost cords (too few rows left).
    """
    if lesion_mask is None or not lesion_mask.any():
        return rows
    return rows[~lesion_mask.any(axis=(0, 1))[rows]]


def cord_profile(cord_mask: np.ndarray, zooms_mm: tuple[float, float, float],
                 lesion_mask: np.ndarray | None = None, image: np.ndarray | None = None) -> CordProfile | None:
    """The :class:`CordProfile` of a boolean cord mask (its size away from ``lesion_mask``'s S-I
    extent when given; its inferior end read on ``image`` when given); None for an empty mask."""
    rows = np.flatnonzero(cord_mask.any(axis=(0, 1)))
    if rows.size == 0:
        return None
    steps = np.diff(rows) - 1
    gap = float(steps.max()) * zooms_mm[2] if steps.size else 0.0
    sized = rows_away_from_lesion(rows, lesion_mask)
    if sized.size * zooms_mm[2] < MIN_NORMAL_CORD_MM:
        csa_mm2 = ap_mm = (float("nan"),) * 2
    else:
        areas = cord_mask.sum(axis=(0, 1))[sized] * zooms_mm[0] * zooms_mm[1]
        in_plane = cord_mask.any(axis=0)  # (A-P, S-I)
        extents = np.array([np.ptp(np.flatnonzero(in_plane[:, z])) + 1 for z in sized]) * zooms_mm[1]
        csa_mm2, ap_mm = (tuple(float(q) for q in np.quantile(values, SIZE_QUANTILES))
                          for values in (areas, extents))
    end = None if image is None else inferior_end(image, cord_mask, zooms_mm, lesion_mask)
    covered = rows[-1] + 1 - (0 if end is not None and end.is_conus else rows[0])
    return CordProfile(csa_low_mm2=csa_mm2[0], csa_high_mm2=csa_mm2[1], ap_low_mm=ap_mm[0], ap_high_mm=ap_mm[1],
                       coverage=float(covered / cord_mask.shape[2]),
                       mask_coverage=float((rows[-1] - rows[0] + 1) / cord_mask.shape[2]),
                       longest_gap_mm=gap, inferior_end=end)


# ---------------------------------------------------------------------------- the cord's inferior end
#: The spinal cord ends in the body. Below the lumbar enlargement it tapers into the conus
#: medullaris, whose upper border is poorly defined and whose tip lies at L1-L2 in most adults
#: (mean at the lower third of L1, range middle third of T12 to upper third of L3, 504 adults:
#: Saifuddin A, Burnett SJ, White J, Spine 1998;23:1452-1456). Below the tip the dural sac, down
#: to about S2, holds CSF, the roots of the cauda equina and the filum terminale (a thin strand,
#: normally under 2 mm thick). A field of view that reaches the lumbar spine shows that end, and a
#: correct mask ends with it: the image below is no loss of coverage (the held-out phantoms, whose
#: cord tapers to its tip over one vertebral level, ``phantom.anatomy``: masks ending 28-168 mm
#: above the image's inferior border, cord Dice 0.92-0.98). A cord the localizer lost ends where
#: the image still shows a cord below the mask: a band as wide as the cord and as dark on T2, with
#: CSF in front of and behind it (a held-out phantom: the mask stops over a lesion and the cord
#: runs on for 150 mm below it). :func:`inferior_end` reads both.
#:
#: The stretch above the mask's inferior end whose cross-sectional area tells a taper (mm).
CONUS_TAPER_MM = 5.0
#: The stretch below the end where the canal is searched for a cord (mm below the last row).
BELOW_END_MM = (3.0, 60.0)
#: Half-width of the anterior-posterior search line, centred on the cord's end (mm).
BAND_SEARCH_MM = 12.0
#: A band reads as cord when its A-P width lies within these shares of the cord's A-P diameter
#: (the median along the mask away from the lesion; the filum and a root are far thinner) ...
CORD_BAND_WIDTH = (0.85, 1.5)
#: ... and as dark as the cord: its mean intensity lies within this share of the cord-to-CSF
#: contrast of the cord's median intensity (0: the cord's, 1: the CSF's). The cauda equina's roots
#: in the sac, partial-volumed in a thick sagittal slice, read lighter (0.08-0.28 row by row on two
#: held-out phantoms, and narrower; -0.12-0.0 for the cord the localizer lost).
CORD_BAND_DARKNESS = 0.1
#: The end is the conus when the mask's last :data:`CONUS_TAPER_MM` average at most this share of
#: its median area (the tip of a cone; a mask cut at full width reads about 1) ...
CONUS_TAPER_SHARE = 0.5
#: ... and at most this share of the rows below it show a cord.
CORD_BELOW_SHARE = 0.5


@dataclass(frozen=True)
class CordEnd:
    """How the cord mask ends at the bottom, when it ends inside the image.

    Attributes
    ----------
    distance_to_edge_mm
        From the mask's lowest row to the image's inferior border.
    taper
        Mean cross-sectional area over the last :data:`CONUS_TAPER_MM` of the mask / the median
        area of its rows that hold no lesion (:func:`rows_away_from_lesion`; of all its rows
        when they span less than :data:`MIN_NORMAL_CORD_MM`): well below 1 for a cone, about 1
        for a mask cut at full width.
    cord_below_share
        Share of the rows :data:`BELOW_END_MM` below the end (those inside the image) where the
        canal shows a cord: in the cord's R-L centre slice, a run of the A-P line darker than the
        cord/CSF midpoint, with CSF on both sides, :data:`CORD_BAND_WIDTH` times the cord's A-P
        diameter and :data:`CORD_BAND_DARKNESS` dark. NaN when it cannot be read (no CSF around
        the cord to compare with, or no row below).
    """

    distance_to_edge_mm: float
    taper: float
    cord_below_share: float

    @property
    def is_conus(self) -> bool:
        """The end is where the cord ends in the body: it tapers (``taper`` at most
        :data:`CONUS_TAPER_SHARE`) and no cord runs on below it (``cord_below_share`` at most
        :data:`CORD_BELOW_SHARE`); NaN measures say no."""
        return bool(self.taper <= CONUS_TAPER_SHARE and self.cord_below_share <= CORD_BELOW_SHARE)


def inferior_end(image: np.ndarray, cord_mask: np.ndarray, zooms_mm: tuple[float, float, float],
                 lesion_mask: np.ndarray | None = None) -> CordEnd | None:
    """The :class:`CordEnd` of a cord mask whose lowest row lies inside the image (None when the
    mask is empty or reaches the inferior border)."""
    rows = np.flatnonzero(cord_mask.any(axis=(0, 1)))
    if rows.size == 0 or rows[0] == 0:
        return None
    zooms = tuple(float(z) for z in zooms_mm)
    end = int(rows[0])
    normal = cord_mask if lesion_mask is None else cord_mask & ~lesion_mask
    if not normal.any():
        normal = cord_mask
    areas = cord_mask.sum(axis=(0, 1)).astype(float)
    sized = rows_away_from_lesion(rows, lesion_mask)
    if sized.size * zooms[2] < MIN_NORMAL_CORD_MM:
        sized = rows
    reference = float(np.median(areas[sized]))
    last = areas[end:end + max(1, int(round(CONUS_TAPER_MM / zooms[2])))]
    taper = float(last.mean() / reference)
    return CordEnd(distance_to_edge_mm=end * zooms[2], taper=taper,
                   cord_below_share=_cord_below_share(image, cord_mask, normal, end, zooms))


def _cord_below_share(image: np.ndarray, cord_mask: np.ndarray, normal: np.ndarray, end: int,
                      zooms: tuple[float, float, float]) -> float:
    """:attr:`CordEnd.cord_below_share` (see there)."""
    csf = csf_ring(cord_mask, zooms[1])
    if not csf.any():
        return math.nan
    cord_level, csf_level = float(np.median(image[normal])), float(np.median(image[csf]))
    if csf_level <= cord_level:  # no T2 contrast between cord and CSF to read a cord by
        return math.nan
    near = cord_mask[:, :, end:end + max(1, int(round(20.0 / zooms[2])))]
    rl, ap, _ = np.nonzero(near)
    slice_rl, centre_ap = int(round(np.median(rl))), int(round(np.median(ap)))
    normal_ap = normal.any(axis=0)  # (A-P, S-I)
    diameter = float(np.median([np.ptp(np.flatnonzero(normal_ap[:, z])) + 1
                                for z in np.flatnonzero(normal_ap.any(axis=0))])) * zooms[1]
    half = int(round(BAND_SEARCH_MM / zooms[1]))
    low = max(centre_ap - half, 0)
    below = [end - int(round(mm / zooms[2])) for mm in np.arange(BELOW_END_MM[0], BELOW_END_MM[1] + 1e-6, zooms[2])]
    below = [row for row in below if row >= 0]
    if not below:
        return math.nan
    found = 0
    for row in below:
        # 0 at the cord's intensity, 1 at the CSF's, along A-P through the cord's end
        line = (image[slice_rl, low:centre_ap + half + 1, row] - cord_level) / (csf_level - cord_level)
        runs, count = ndimage.label(line < 0.5)
        for label in range(1, count + 1):
            run = np.flatnonzero(runs == label)
            if run[0] == 0 or run[-1] == line.size - 1:  # CSF on both sides, or not a cord in the canal
                continue
            width = run.size * zooms[1] / diameter
            if (CORD_BAND_WIDTH[0] <= width <= CORD_BAND_WIDTH[1]
                    and float(line[run].mean()) <= CORD_BAND_DARKNESS):
                found += 1
                break
    return found / len(below)


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
    components = count_components(lesion_mask)
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


def csf_ring(cord_mask: np.ndarray, ap_spacing_mm: float) -> np.ndarray:
    """The voxels :data:`CSF_RING_MM` anterior and posterior of the cord (same sagittal slice and
    S-I row)."""
    inner, outer = (max(1, int(round(mm / ap_spacing_mm))) for mm in CSF_RING_MM)
    near = dilate_along(cord_mask, 1, inner)
    far = dilate_along(cord_mask, 1, outer)
    return far & ~near


def cord_csf_ratio(image: np.ndarray, cord_mask: np.ndarray, ap_spacing_mm: float) -> float:
    """Median cord intensity / median intensity 1-3 mm anterior and posterior of it (NaN if empty)."""
    ring = csf_ring(cord_mask, ap_spacing_mm)
    if not cord_mask.any() or not ring.any():
        return math.nan
    csf = float(np.median(image[ring]))
    if csf <= 0:
        return math.nan
    return float(np.median(image[cord_mask])) / csf
