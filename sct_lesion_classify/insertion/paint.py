"""Painting one planned lesion into one real image, inside its cord mask.

Intensity. The lesion's T2 signal is set from the cord's own: the *cord reference* of each axial
slice is the median of the image over the cord mask eroded in-plane by one voxel (away from the
CSF's partial volume; the whole slice's cord when erosion leaves fewer than 3 voxels), smoothed
along the cord (running median over 5 slices), so a bias field along the cord is followed. Each
part is painted at ``reference * t2_ratio * (1 + texture * n)``, where ``t2_ratio`` and
``texture`` are the class's draws (``phantom.lesions``) and ``n`` is a smooth standard-normal field
(Gaussian, 2 mm), in the phantoms' painting order (halo, solid, cysts, caps, foci) and with their
rule: ``value + fraction * (target - value)``.

Partial volume. The fraction of a voxel inside a part is measured on a grid of sub-samples no
farther apart than :data:`SUBSAMPLE_MM` (at most 8 per axis): exact enough on thick slices, and
it gives soft edges. Only voxels of the cord mask are painted, so neither the lesion nor its
halo ever leaves the mask. The truth mask is the voxels whose sub-samples are at least half inside
the union of the parts that belong to the lesion (everything but the oedema halo).

Noise. Painting replaces a voxel's own noise by a smooth value, which would leave the lesion
unnaturally clean. The image's noise level is measured inside the cord (:func:`noise_sigma`), and
each painted voxel receives Gaussian noise of that standard deviation times
``sqrt(1 - w**2)``, where ``w`` is the weight its original value (and noise) kept, so the noise
level is the same inside and outside the lesion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from sct_lesion_classify.insertion.cord_frame import CordFrame
from sct_lesion_classify.phantom.lesions import LesionPart

#: Largest distance between the sub-samples that measure partial volume (mm).
SUBSAMPLE_MM = 0.35
_MAX_SUBSAMPLES_PER_AXIS = 8
#: Painting order (the phantoms'): later parts are painted over earlier ones.
_ORDER = {"halo": 0, "solid": 1, "cyst": 2, "cap": 3, "focus": 4}
_TEXTURE_SIGMA_MM = 2.0


@dataclass(frozen=True)
class PaintedLesion:
    """A real image with a lesion painted in (canonical arrays).

    Attributes
    ----------
    t2w
        float32 image with the lesion.
    lesion_mask
        bool truth mask, a subset of the cord mask.
    cord_reference
        float32 per axial slice (nz,): the cord intensity the lesion's ratios apply to (NaN
        outside the cord's span).
    noise_sigma
        The noise level measured in the input and kept in the lesion.
    """

    t2w: np.ndarray = field(repr=False)
    lesion_mask: np.ndarray = field(repr=False)
    cord_reference: np.ndarray = field(repr=False)
    noise_sigma: float


def cord_reference(image: np.ndarray, cord_mask: np.ndarray) -> np.ndarray:
    """Cord intensity per axial slice (module docstring); NaN where a slice holds no cord."""
    nz = image.shape[2]
    values = np.full(nz, np.nan)
    inner = ndimage.binary_erosion(cord_mask, structure=np.array([[[0], [1], [0]], [[1], [1], [1]],
                                                                  [[0], [1], [0]]], dtype=bool))
    for k in np.flatnonzero(cord_mask.any(axis=(0, 1))):
        core = inner[:, :, k] if np.count_nonzero(inner[:, :, k]) >= 3 else cord_mask[:, :, k]
        values[k] = float(np.median(image[:, :, k][core]))
    rows = np.flatnonzero(np.isfinite(values))
    filled = np.interp(np.arange(rows[0], rows[-1] + 1), rows, values[rows])
    values[rows[0]:rows[-1] + 1] = ndimage.median_filter(filled, size=min(5, filled.size), mode="nearest")
    return values.astype(np.float32)


def noise_sigma(image: np.ndarray, cord_mask: np.ndarray) -> float:
    """Noise standard deviation inside the cord, from differences of neighbouring voxels.

    For each axis, ``1.4826 * MAD(difference) / sqrt(2)`` over neighbour pairs inside the eroded
    cord (the cord itself when erosion leaves too few); the median of the three axes, so that
    neither the structure across a thick slice nor noise correlated along one axis decides.
    """
    region = ndimage.binary_erosion(cord_mask)
    if np.count_nonzero(region) < 50:
        region = cord_mask
    estimates = []
    for axis in range(3):
        lead = [slice(None)] * 3
        trail = [slice(None)] * 3
        lead[axis], trail[axis] = slice(1, None), slice(None, -1)
        pairs = region[tuple(lead)] & region[tuple(trail)]
        if np.count_nonzero(pairs) < 10:
            continue
        diff = image[tuple(lead)][pairs].astype(np.float64) - image[tuple(trail)][pairs]
        estimates.append(1.4826 * np.median(np.abs(diff - np.median(diff))) / np.sqrt(2.0))
    return float(np.median(estimates)) if estimates else 0.0


def paint_lesion(image: np.ndarray, cord_mask: np.ndarray, frame: CordFrame,
                 parts: tuple[LesionPart, ...], rng: np.random.Generator) -> PaintedLesion:
    """Paint ``parts`` (arc coordinates of ``frame``) into ``image`` inside ``cord_mask``.

    Parameters
    ----------
    image
        Canonical float image (not modified).
    cord_mask
        Canonical bool cord mask on the same grid.
    rng
        Generator of the texture and noise (the same state gives the same image).
    """
    reference = cord_reference(image, cord_mask)
    sigma = noise_sigma(image, cord_mask)
    voxels = np.nonzero(cord_mask)
    positions = _subsample_positions(voxels, frame.zooms_mm)            # 3 x (n, k)
    arc = frame.arc_of_z(positions[2])
    center_x, center_y = frame.center_at(positions[2])
    across_x, across_y = positions[0] - center_x, positions[1] - center_y
    voxel_arc = frame.arc_of_z(voxels[2] * frame.zooms_mm[2])
    box = tuple(slice(int(v.min()), int(v.max()) + 1) for v in voxels)
    local = tuple(v - s.start for v, s in zip(voxels, box))

    values = image[voxels].astype(np.float64)
    kept = np.ones(values.size)
    in_lesion = np.zeros(arc.shape, dtype=bool)
    for part in sorted(parts, key=lambda p: _ORDER[p.kind]):
        near = np.flatnonzero(np.abs(voxel_arc - part.z_center) <= part.half_length + frame.zooms_mm[2])
        if near.size == 0:
            continue
        radius_x, radius_y = part.radii(arc[near])
        inside = radius_x > 0
        scale_x = np.where(inside, radius_x, 1.0)
        scale_y = np.where(inside, radius_y, 1.0)
        inside &= (((across_x[near] - part.offset_x) / scale_x) ** 2
                   + ((across_y[near] - part.offset_y) / scale_y) ** 2) <= 1.0
        fraction = inside.mean(axis=1)
        if not fraction.any():
            continue
        target = reference[voxels[2][near]].astype(np.float64) * part.t2_ratio
        if part.texture > 0.03:
            texture = _smooth_noise(rng, tuple(s.stop - s.start for s in box), frame.zooms_mm)
            target = target * (1.0 + part.texture * texture[tuple(v[near] for v in local)])
        values[near] += fraction * (target - values[near])
        kept[near] *= 1.0 - fraction
        if part.in_mask:
            in_lesion[near] |= inside
    if sigma > 0:
        values += sigma * np.sqrt(np.clip(1.0 - kept ** 2, 0.0, 1.0)) * rng.standard_normal(values.size)
    out = image.astype(np.float32, copy=True)
    out[voxels] = values
    lesion_mask = np.zeros(cord_mask.shape, dtype=bool)
    lesion_mask[voxels] = in_lesion.mean(axis=1) >= 0.5
    return PaintedLesion(out, lesion_mask, reference, sigma)


def _subsample_positions(voxels: tuple[np.ndarray, ...], zooms_mm: tuple[float, float, float]
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (mm) of each voxel's sub-samples along the three axes: three (n, k) arrays."""
    offsets = []
    for zoom in zooms_mm:
        count = int(np.clip(np.ceil(zoom / SUBSAMPLE_MM), 1, _MAX_SUBSAMPLES_PER_AXIS))
        offsets.append((np.arange(count) + 0.5) / count - 0.5)
    grid = np.meshgrid(*offsets, indexing="ij")
    return tuple((index[:, None] + g.ravel()[None, :]) * zoom
                 for index, g, zoom in zip(voxels, grid, zooms_mm))  # type: ignore[return-value]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...],
                  zooms_mm: tuple[float, float, float]) -> np.ndarray:
    """Standard-normal field smoothed by a Gaussian of :data:`_TEXTURE_SIGMA_MM`, rescaled to SD 1."""
    sigma = tuple(_TEXTURE_SIGMA_MM / zoom for zoom in zooms_mm)
    field_ = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="nearest")
    return field_ / max(float(field_.std()), 1e-6)
