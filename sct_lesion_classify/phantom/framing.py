"""Posture and field of view of the random styles.

:func:`pose` puts the drawn posture into the subject's anatomy: sagittal curvature (cervical
lordosis, possibly reversed, thoracic kyphosis, lumbar lordosis), scoliosis (the lateral curve),
degenerated discs, and the tilt in both planes. A tilt is a shear about the lesion's axial plane
(``anatomy.AnatomyParams``), with the segment heights scaled by cos(pitch) so that lengths along the
spine stay real.

:func:`frame` realises the drawn acquisition (``style.AcquisitionDraw``) as an
``AcquisitionGeometry``: voxel size as drawn, field of view as drawn, except that

- an uncropped field of view is enlarged where it would not hold the whole lesion with 10 mm
  (superior-inferior) or 15 mm (other axes) around it: the class statistics measured from the
  masks are those of the whole lesion;
- a crop (``cropped``) is centred on a random part of the lesion and may cut it;
- ``AcquisitionRanges.max_voxels`` is kept by taking fewer slices first, then a smaller in-plane field of
  view (never below what the lesion needs, unless nothing else fits);
- an uncropped field of view is placed at random along the spine among the positions that hold
  the lesion and stay between the posterior fossa (z <= 75 mm, above C1) and S1: any level from
  the cranio-cervical junction to the cauda equina, a cord leaving at either end or both.

With ``shape`` the matrix is the user's and the field of view follows from the drawn voxel size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sct_lesion_classify.phantom.anatomy import SEGMENT_NAMES, Anatomy, AnatomyParams, Spine
from sct_lesion_classify.phantom.geometry import STORAGE_ORIENTATIONS, AcquisitionGeometry
from sct_lesion_classify.phantom.lesions import LesionPart, lesion_span, mask_parts
from sct_lesion_classify.phantom.style import AcquisitionDraw, PostureDraw, StyleRanges

SI_MARGIN_MM = 10.0
INPLANE_MARGIN_MM = 15.0
#: Highest top of a field of view (mm above C1: the posterior fossa ends about 64 mm up).
Z_TOP_MAX_MM = 75.0
#: Lowest bottom of a field of view, as a level coordinate (the middle of S1).
LEVEL_BOTTOM_MAX = 25.5
MIN_VOXELS_PER_AXIS = (3, 8, 8)


@dataclass(frozen=True)
class Framed:
    """The placed field of view, the anatomy shifted into it, and whether the lesion is whole in it."""

    geometry: AcquisitionGeometry
    anatomy: Anatomy
    lesion_in_view: bool


def pose(params: AnatomyParams, posture: PostureDraw, disc_degeneration: float,
         rng: np.random.Generator) -> AnatomyParams:
    """``params`` with the drawn curvature, scoliosis, disc degeneration and a pitch-scaled spine.

    The tilt itself is set by :func:`tilt_about` once the lesion (and so the tilt's origin) is placed.
    """
    scale = float(np.cos(np.radians(posture.pitch_deg)))
    spine = Spine(tuple(b * scale for b in params.spine.boundaries_z))
    degenerated = rng.random(len(SEGMENT_NAMES)) < disc_degeneration
    nucleus = np.where(degenerated, rng.uniform(0.25, 0.6, len(SEGMENT_NAMES)),
                       rng.uniform(0.85, 1.1, len(SEGMENT_NAMES)))
    return dataclasses.replace(
        params, spine=spine, lordosis_mm=posture.lordosis_mm, kyphosis_mm=posture.kyphosis_mm,
        lumbar_lordosis_mm=posture.lumbar_lordosis_mm, lateral_amplitude_mm=posture.scoliosis_mm,
        lateral_wavelength_mm=posture.scoliosis_wavelength_mm, lateral_phase=posture.scoliosis_phase,
        disc_nucleus=tuple(float(v) for v in nucleus))


def tilt_about(params: AnatomyParams, posture: PostureDraw, z_origin_mm: float) -> AnatomyParams:
    """``params`` tilted by the drawn pitch and roll about the axial plane ``z_origin_mm``."""
    return dataclasses.replace(params, pitch_deg=posture.pitch_deg, roll_deg=posture.roll_deg,
                               tilt_origin_z_mm=z_origin_mm)


def frame(acq: AcquisitionDraw, anatomy: Anatomy, parts: list[LesionPart],
          shape: tuple[int, int, int] | None, ranges: StyleRanges,
          rng: np.random.Generator) -> Framed:
    """Place the field of view (module docstring)."""
    pixel, spacing = acq.pixel_mm, acq.slice_spacing_mm
    z_lo, z_hi = lesion_span(parts)
    # the cord's excursion over the lesion, in each in-plane direction
    z_lesion = np.linspace(z_lo, z_hi, 64)
    y_path, x_path = anatomy.center_y(z_lesion), anatomy.center_x(z_lesion)
    need = (float(np.ptp(x_path)) + 2 * INPLANE_MARGIN_MM, float(np.ptp(y_path)) + 2 * INPLANE_MARGIN_MM,
            z_hi - z_lo + 2 * SI_MARGIN_MM)
    voxel = (spacing, pixel, pixel)
    if shape is not None:
        counts = tuple(int(n) for n in shape)
    else:
        drawn = (acq.slab_mm, acq.fov_ap_mm, acq.fov_si_mm)
        sizes = drawn if acq.cropped else tuple(max(d, n) for d, n in zip(drawn, need))
        counts = _within_budget(sizes, need, voxel, ranges.acquisition.max_voxels)
    fov = tuple(n * v for n, v in zip(counts, voxel))

    # superior-inferior: the whole lesion when it fits, else centred on a random part of it
    if fov[2] >= need[2]:
        lo, hi = z_hi + SI_MARGIN_MM, z_lo - SI_MARGIN_MM + fov[2]
        anat_lo = float(anatomy.spine.z_of_level(LEVEL_BOTTOM_MAX)) + fov[2]
        a, b = max(lo, anat_lo), min(hi, Z_TOP_MAX_MM)
        z_top = float(rng.uniform(a, b)) if a <= b else float(rng.uniform(lo, hi))
    else:
        counted = mask_parts(parts)
        part = counted[int(rng.integers(len(counted)))]
        z_top = part.z_center + float(rng.uniform(-0.5, 0.5)) * part.half_length + fov[2] / 2
    z_first = z_top - (counts[2] - 1) * pixel
    z_rows = z_first + pixel * np.arange(counts[2])
    # anterior-posterior and right-left: the cord at the lesion's centre (or the field's) is the origin
    z_ref = float(np.clip((z_lo + z_hi) / 2, z_rows[0], z_rows[-1]))
    anatomy = anatomy.with_shift(float(anatomy.center_y(z_ref)), float(anatomy.center_x(z_ref)))
    in_view = (z_lesion >= z_rows[0] - pixel / 2) & (z_lesion <= z_rows[-1] + pixel / 2)
    in_view = in_view if in_view.any() else np.ones_like(in_view)
    y_first, y_ok = _place_axis(anatomy.center_y(z_lesion[in_view]), fov[1], pixel, rng)
    x_first, x_ok = _place_axis(anatomy.center_x(z_lesion[in_view]), fov[0], spacing, rng)
    offset = (float(rng.uniform(-5, 5)), float(rng.uniform(-30, 30)), float(rng.uniform(-80, 80)))
    axcodes = STORAGE_ORIENTATIONS[int(rng.integers(len(STORAGE_ORIENTATIONS)))]
    geometry = AcquisitionGeometry(counts, pixel, spacing, acq.slice_thickness_mm,  # type: ignore[arg-type]
                                   x_first, y_first, z_first, offset, axcodes)
    whole = (bool(in_view.all()) and z_lo - SI_MARGIN_MM / 2 >= z_rows[0]
             and z_hi + SI_MARGIN_MM / 2 <= z_rows[-1])
    return Framed(geometry, anatomy, whole and y_ok and x_ok)


def _within_budget(sizes_mm: tuple[float, ...], need_mm: tuple[float, ...], voxel_mm: tuple[float, ...],
                   max_voxels: int) -> tuple[int, int, int]:
    """Voxel counts for ``sizes_mm``, reduced to ``max_voxels`` (module docstring)."""
    counts = [max(m, int(np.ceil(s / v - 1e-6))) for s, v, m in zip(sizes_mm, voxel_mm, MIN_VOXELS_PER_AXIS)]
    floor = [max(m, int(np.ceil(n / v))) for n, v, m in zip(need_mm, voxel_mm, MIN_VOXELS_PER_AXIS)]
    if np.prod(counts) > max_voxels:   # fewer slices
        counts[0] = max(floor[0], min(counts[0], max_voxels // (counts[1] * counts[2])))
    if np.prod(counts) > max_voxels:   # smaller in-plane field, down to the lesion's need
        shrink = np.sqrt(max_voxels / np.prod(counts))
        counts[1] = max(floor[1], int(counts[1] * shrink))
        counts[2] = max(floor[2], int(counts[2] * shrink))
    if np.prod(counts) > max_voxels:   # nothing else fits: every axis, the lesion may be cut
        shrink = (max_voxels / np.prod(counts)) ** (1.0 / 3.0)
        counts = [max(m, int(n * shrink)) for n, m in zip(counts, MIN_VOXELS_PER_AXIS)]
    return counts[0], counts[1], counts[2]


def _place_axis(path: np.ndarray, fov_mm: float, step_mm: float,
                rng: np.random.Generator) -> tuple[float, bool]:
    """First voxel centre along one in-plane axis so that ``path`` +- margin lies inside, if it can.

    Returns the position and whether the path with its margin fits.
    """
    lo = float(np.max(path)) + INPLANE_MARGIN_MM - fov_mm
    hi = float(np.min(path)) - INPLANE_MARGIN_MM
    start = float(rng.uniform(lo, hi)) if lo <= hi else (float(np.min(path) + np.max(path)) - fov_mm) / 2
    return start + step_mm / 2, lo <= hi
