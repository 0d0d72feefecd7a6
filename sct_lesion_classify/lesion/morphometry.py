"""Lesion morphometry for the diagnosis JSON (SPEC section 3, ``lesions``).

Measures follow SCT's ``sct_analyze_lesion`` where it has them (same meaning and units; the
names carry the unit): ``volume`` [mm3], ``length`` [mm] (superior-inferior extent),
``max_equivalent_diameter`` [mm], ``max_axial_damage_ratio`` [].

Definitions (canonical orientation: axis 0 R-L, axis 1 A-P, axis 2 S-I; an "axial slice" is one
S-I index ``z``, ``mask[:, :, z]``; areas and in-plane distances use the voxel size in mm):

- Lesions are the connected components of the mask with **26-connectivity** (as
  :mod:`.postprocess`), numbered 1..n by decreasing volume (ties: scan order).
- ``volume_mm3``: voxel count x voxel volume. ``length_si_mm``, ``width_ap_mm``, ``width_rl_mm``:
  extent of the lesion's voxels along each axis (number of indices spanned x voxel size).
  (SCT corrects its length for the cord's angle; this does not.)
- ``centroid_mm``: world (scanner RAS) coordinates of the lesion's centre of mass, via the affine.
- ``max_equivalent_diameter_mm``: largest, over axial slices, diameter of the disc whose area is
  the lesion's area in that slice.
- Cord measures (``None`` without a cord mask, or when the cord mask has no voxel at any of the
  lesion's axial slices):

  * cord centre line: per axial slice, the centre of mass of the cord mask in (R-L, A-P);
    cord radius per slice: ``sqrt(cord area / pi)``;
  * ``eccentricity_ratio``: distance, in the axial plane, between the lesion's centroid and the
    cord centre line, over the cord radius. Both are averaged over the lesion's axial slices that
    have cord, weighted by the lesion's voxels in each (so a tilted cord is followed);
    ``position`` is ``"eccentric"`` when the ratio is above :data:`ECCENTRIC_RATIO` (0.5: the
    centroid lies in the outer half of the cord radius), else ``"central"``;
  * ``max_axial_damage_ratio``: largest, over the lesion's axial slices that have cord, lesion
    area / cord area, where the cord area is that of the cord mask united with all lesions (a tumour that the cord mask
    leaves out still belongs to the cord), so the ratio lies in [0, 1];
  * ``intensity_ratio`` (also needs the image): mean image value in the lesion over the mean in
    the cord outside every lesion (``None`` when that reference is empty or not positive).

- Vertebral levels: see :mod:`.vertebrae` (exact with a label map, else an estimated number of
  segments with ``levels_estimated=True`` and ``vertebral_levels=None``).

An empty mask gives ``count == 0`` and no lesion; it is not an error.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from sct_lesion_classify.errors import ProcessingError
from sct_lesion_classify.masks import CONNECTIVITY_26, bounding_box
from sct_lesion_classify.lesion.vertebrae import (
    SEGMENT_HEIGHT_MM,
    estimate_segments,
    level_presence,
    levels_in_range,
)

logger = logging.getLogger(__name__)

#: ``position`` is "eccentric" above this eccentricity ratio (offset / cord radius), else "central".
ECCENTRIC_RATIO = 0.5


@dataclass(frozen=True)
class LesionMeasure:
    """Measures of one lesion (see the module documentation for the definitions)."""

    label: int
    volume_mm3: float
    length_si_mm: float
    width_ap_mm: float
    width_rl_mm: float
    max_equivalent_diameter_mm: float
    centroid_mm: tuple[float, float, float]
    eccentricity_ratio: float | None
    position: str | None
    max_axial_damage_ratio: float | None
    intensity_ratio: float | None
    vertebral_levels: tuple[str, ...] | None
    levels_estimated: bool
    n_segments_spanned: float
    n_voxels: int = 0
    slices_si: tuple[int, int] = (0, 0)  # canonical S-I index range [start, stop)

    def to_json(self) -> dict:
        """JSON-ready dict (floats rounded to 4 decimals, tuples as lists, ``None`` as null)."""
        return {
            "label": self.label,
            "volume_mm3": _round(self.volume_mm3),
            "length_si_mm": _round(self.length_si_mm),
            "width_ap_mm": _round(self.width_ap_mm),
            "width_rl_mm": _round(self.width_rl_mm),
            "max_equivalent_diameter_mm": _round(self.max_equivalent_diameter_mm),
            "centroid_mm": [_round(v) for v in self.centroid_mm],
            "eccentricity_ratio": _round(self.eccentricity_ratio),
            "position": self.position,
            "max_axial_damage_ratio": _round(self.max_axial_damage_ratio),
            "intensity_ratio": _round(self.intensity_ratio),
            "vertebral_levels": None if self.vertebral_levels is None else list(self.vertebral_levels),
            "levels_estimated": self.levels_estimated,
            "n_segments_spanned": _round(self.n_segments_spanned, 2),
        }


@dataclass(frozen=True)
class LesionMorphometry:
    """All lesions of a mask.

    Attributes
    ----------
    count
        Number of lesions (26-connected components).
    total_volume_mm3
        Sum of their volumes.
    lesions
        One :class:`LesionMeasure` per lesion, largest first.
    warnings
        Things the user should know (cord mask missing at a lesion, label map not covering it).
    labels
        The lesion map the measures were taken on (:func:`label_lesions`: int32, ``lesions[k]`` is
        label ``k + 1``), for the writers of the label map and the lesion table; not in the JSON.
    """

    count: int
    total_volume_mm3: float
    lesions: tuple[LesionMeasure, ...]
    warnings: tuple[str, ...] = field(default=())
    labels: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        """The ``lesions`` object of the diagnosis JSON."""
        return {
            "count": self.count,
            "total_volume_mm3": _round(self.total_volume_mm3),
            "segment_height_mm": SEGMENT_HEIGHT_MM,
            "eccentric_ratio_threshold": ECCENTRIC_RATIO,
            "lesions": [lesion.to_json() for lesion in self.lesions],
        }


def label_lesions(lesion_mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label 26-connected lesions 1..n by decreasing size (ties in scan order); 0 is background.

    Returns ``(labels, n)`` with ``labels`` an int32 array of the mask's shape.
    """
    mask = np.asarray(lesion_mask, dtype=bool)
    labels = np.zeros(mask.shape, dtype=np.int32)
    # label only the bounding box of the mask: lesions are small against the field of view
    box = bounding_box(mask)
    if box is None:
        return labels, 0
    local, count = ndimage.label(mask[box], structure=CONNECTIVITY_26)
    if count > 1:
        sizes = np.bincount(local.ravel(), minlength=count + 1)[1:]
        order = np.argsort(-sizes, kind="stable")  # old label - 1, largest first
        new_of_old = np.zeros(count + 1, dtype=np.int32)
        new_of_old[order + 1] = np.arange(1, count + 1, dtype=np.int32)
        local = new_of_old[local]
    labels[box] = local
    return labels, int(count)


def measure_lesions(
    lesion_mask: np.ndarray,
    zooms_mm: tuple[float, float, float],
    affine: np.ndarray,
    *,
    image: np.ndarray | None = None,
    cord_mask: np.ndarray | None = None,
    vertebral_labels: np.ndarray | None = None,
) -> LesionMorphometry:
    """Measure every lesion of ``lesion_mask`` (canonical orientation).

    Parameters
    ----------
    lesion_mask
        Bool (or 0/1) lesion mask, shape ``(X, Y, Z)``.
    zooms_mm
        Voxel size in mm along the canonical axes.
    affine
        Voxel-to-world affine of the canonical arrays (``Image.affine``).
    image
        T2w intensities on the same grid (for ``intensity_ratio``).
    cord_mask
        Cord mask on the same grid (for position, damage ratio and intensity ratio).
    vertebral_labels
        SCT vertebral label map on the same grid (for exact vertebral levels).
    """
    mask = np.asarray(lesion_mask)
    if mask.ndim != 3:
        raise ProcessingError(f"lesion mask must be a 3D array, got shape {mask.shape}")
    mask = mask.astype(bool, copy=False)
    shape = mask.shape
    zooms = tuple(float(z) for z in zooms_mm)
    if len(zooms) != 3 or not all(math.isfinite(z) and z > 0 for z in zooms):
        raise ProcessingError(f"invalid voxel size {tuple(zooms_mm)!r}")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ProcessingError(f"affine must be 4x4, got shape {affine.shape}")
    for name, array in (("image", image), ("cord mask", cord_mask), ("vertebral labels", vertebral_labels)):
        if array is not None and np.shape(array) != shape:
            raise ProcessingError(
                f"{name} of shape {np.shape(array)} is not on the lesion mask's grid {shape}"
            )

    labels, count = label_lesions(mask)
    if count == 0:
        return LesionMorphometry(count=0, total_volume_mm3=0.0, lesions=(), labels=labels)

    dx, dy, dz = zooms
    voxel_mm3 = dx * dy * dz
    pixel_mm2 = dx * dy
    cord = _CordProfile(np.asarray(cord_mask, dtype=bool), mask, image) if cord_mask is not None else None
    presence = level_presence(vertebral_labels) if vertebral_labels is not None else None
    warnings: list[str] = []
    if cord is not None and image is not None and cord.reference_intensity is None:
        warnings.append("no cord voxel outside the lesions with a positive mean intensity: no intensity ratio")

    lesions = []
    for index, bbox in enumerate(ndimage.find_objects(labels), start=1):
        local = labels[bbox] == index
        origin = np.array([s.start for s in bbox])
        coords = np.nonzero(local)
        n_voxels = int(coords[0].size)
        centroid_vox = np.array([c.mean() for c in coords]) + origin
        centroid_world = affine @ np.append(centroid_vox, 1.0)
        z_start, z_stop = bbox[2].start, bbox[2].stop
        area_per_z = local.sum(axis=(0, 1)).astype(np.float64)  # voxels per axial slice
        length_si = (z_stop - z_start) * dz

        eccentricity = damage = intensity = None
        position = None
        if cord is not None:
            eccentricity = cord.eccentricity(coords, origin, zooms)
            damage = cord.damage_ratio(area_per_z, z_start)
            if eccentricity is None:
                warnings.append(
                    f"lesion {index}: the cord mask has no voxel at its levels; position unknown"
                )
            else:
                position = "eccentric" if eccentricity > ECCENTRIC_RATIO else "central"
            if image is not None and cord.reference_intensity is not None:
                lesion_mean = float(np.asarray(image)[bbox][local].mean(dtype=np.float64))
                intensity = lesion_mean / cord.reference_intensity

        levels: tuple[str, ...] | None = None
        estimated = True
        segments = estimate_segments(length_si)
        if presence is not None:
            names, exact_segments = levels_in_range(presence, z_start, z_stop)
            if names:
                levels, estimated, segments = names, False, exact_segments
            else:
                warnings.append(
                    f"lesion {index}: no vertebral label at its levels; number of segments estimated"
                )

        lesions.append(
            LesionMeasure(
                label=index,
                volume_mm3=n_voxels * voxel_mm3,
                length_si_mm=length_si,
                width_ap_mm=(bbox[1].stop - bbox[1].start) * dy,
                width_rl_mm=(bbox[0].stop - bbox[0].start) * dx,
                max_equivalent_diameter_mm=2.0 * math.sqrt(area_per_z.max() * pixel_mm2 / math.pi),
                centroid_mm=tuple(float(v) for v in centroid_world[:3]),  # type: ignore[arg-type]
                eccentricity_ratio=eccentricity,
                position=position,
                max_axial_damage_ratio=damage,
                intensity_ratio=intensity,
                vertebral_levels=levels,
                levels_estimated=estimated,
                n_segments_spanned=float(segments),
                n_voxels=n_voxels,
                slices_si=(int(z_start), int(z_stop)),
            )
        )
    total = float(sum(lesion.volume_mm3 for lesion in lesions))
    for message in warnings:
        logger.debug(message)
    return LesionMorphometry(count=count, total_volume_mm3=total, lesions=tuple(lesions), warnings=tuple(warnings),
                             labels=labels)


class _CordProfile:
    """Per-axial-slice cord centre, area and reference intensity."""

    def __init__(self, cord: np.ndarray, lesions: np.ndarray, image: np.ndarray | None) -> None:
        n_z = cord.shape[2]
        xs, ys, zs = np.nonzero(cord)
        self.count = np.bincount(zs, minlength=n_z).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.centre_x = np.bincount(zs, weights=xs, minlength=n_z) / self.count
            self.centre_y = np.bincount(zs, weights=ys, minlength=n_z) / self.count
        self.union_count = (cord | lesions).sum(axis=(0, 1)).astype(np.float64)
        self.reference_intensity: float | None = None
        if image is not None:
            normal = cord & ~lesions
            if normal.any():
                mean = float(np.asarray(image)[normal].mean(dtype=np.float64))
                if mean > 0:
                    self.reference_intensity = mean

    def eccentricity(
        self,
        coords: tuple[np.ndarray, ...],
        origin: np.ndarray,
        zooms: tuple[float, float, float],
    ) -> float | None:
        z = coords[2] + origin[2]
        has_cord = self.count[z] > 0
        if not has_cord.any():
            return None
        z = z[has_cord]
        offset_x = ((coords[0][has_cord] + origin[0]) - self.centre_x[z]).mean() * zooms[0]
        offset_y = ((coords[1][has_cord] + origin[1]) - self.centre_y[z]).mean() * zooms[1]
        radius = np.sqrt(self.count[z] * zooms[0] * zooms[1] / math.pi).mean()
        return float(math.hypot(offset_x, offset_y) / radius)

    def damage_ratio(self, area_per_z: np.ndarray, z_start: int) -> float | None:
        levels = slice(z_start, z_start + area_per_z.size)
        has_cord = self.count[levels] > 0
        if not has_cord.any():
            return None
        return float((area_per_z[has_cord] / self.union_count[levels][has_cord]).max())


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)
