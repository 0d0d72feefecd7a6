"""The cord of a real image, measured from its mask axial slice by axial slice.

Frame: the canonical array axes of ``io.image`` in mm (x = voxel index 0 times its size, to the
subject's right; y anterior; z superior). For every axial slice (constant z) that holds cord, the
mask gives a centre (centroid) and two radii (right-left and anterior-posterior, from the second
moments: a filled ellipse of radius a has a standard deviation of a / 2). Centre and radii are
smoothed along the cord (Gaussian, 3 mm, around their straight-line fit so that a tilt is kept to
the ends of the span), and slices without cord inside the span are filled by
interpolation. The *arc coordinate* ``s`` is the length along this centreline, in mm, increasing
upwards, with ``s = 0`` at the centre of the lowest cord slice: a cord tilted in the sagittal plane
(or curved in the coronal one) is followed, and its length is its length along the cord, not its
height.

Cross-sections are those of the axial slices, so on a tilted cord they are the oblique sections
that the image holds (wider anterior-posteriorly by 1 / cos of the tilt), which is what a lesion
painted in that image must fill.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

#: Smoothing of the centreline and radii along the cord (mm, Gaussian sigma).
SMOOTHING_MM = 3.0


@dataclass(frozen=True)
class CordFrame:
    """Centreline and cross-sections of a cord, one value per axial slice of its span.

    Attributes
    ----------
    z_mm
        z of the axial slices from the lowest to the highest one holding cord (every slice of the
        span, including any without cord in between).
    center_x_mm, center_y_mm
        Smoothed centre of the cord in each slice.
    radius_x_mm, radius_y_mm
        Smoothed right-left and anterior-posterior radii of the cord in each slice (axial plane).
    arc_mm
        Arc coordinate of each slice centre (0 at the lowest slice).
    zooms_mm
        Voxel size along the canonical axes.
    """

    z_mm: np.ndarray = field(repr=False)
    center_x_mm: np.ndarray = field(repr=False)
    center_y_mm: np.ndarray = field(repr=False)
    radius_x_mm: np.ndarray = field(repr=False)
    radius_y_mm: np.ndarray = field(repr=False)
    arc_mm: np.ndarray = field(repr=False)
    zooms_mm: tuple[float, float, float]

    @property
    def arc_range_mm(self) -> tuple[float, float]:
        """Arc coordinates of the bottom of the lowest and the top of the highest cord slice."""
        bottom, top = self.arc_of_z(np.array([self.z_mm[0] - self.zooms_mm[2] / 2,
                                              self.z_mm[-1] + self.zooms_mm[2] / 2]))
        return float(bottom), float(top)

    @property
    def length_mm(self) -> float:
        """Length of the cord in the image, along its centreline."""
        bottom, top = self.arc_range_mm
        return top - bottom

    def arc_of_z(self, z_mm: np.ndarray) -> np.ndarray:
        """Arc coordinate of positions z (linear beyond the span, with the end slopes)."""
        z_mm = np.asarray(z_mm, dtype=np.float64)
        arc = np.interp(z_mm, self.z_mm, self.arc_mm)
        slope_low = slope_high = 1.0  # one slice: straight up
        if self.z_mm.size > 1:
            slope_low = (self.arc_mm[1] - self.arc_mm[0]) / (self.z_mm[1] - self.z_mm[0])
            slope_high = (self.arc_mm[-1] - self.arc_mm[-2]) / (self.z_mm[-1] - self.z_mm[-2])
        arc = np.where(z_mm < self.z_mm[0], self.arc_mm[0] + (z_mm - self.z_mm[0]) * slope_low, arc)
        return np.where(z_mm > self.z_mm[-1], self.arc_mm[-1] + (z_mm - self.z_mm[-1]) * slope_high, arc)

    def center_at(self, z_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centre (x, y) of the cord at positions z (the end values beyond the span)."""
        return (np.interp(z_mm, self.z_mm, self.center_x_mm),
                np.interp(z_mm, self.z_mm, self.center_y_mm))

    def radii_at_arc(self, arc_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Right-left and anterior-posterior radii at arc coordinates (the end values beyond)."""
        return (np.interp(arc_mm, self.arc_mm, self.radius_x_mm),
                np.interp(arc_mm, self.arc_mm, self.radius_y_mm))


def measure_cord_frame(cord_mask: np.ndarray, zooms_mm: tuple[float, float, float]) -> CordFrame:
    """Measure the :class:`CordFrame` of a canonical boolean cord mask.

    Raises
    ------
    ValueError
        The mask is empty (callers check first and raise their own ``InputError``).
    """
    zx, zy, zz = (float(v) for v in zooms_mm)
    counts = cord_mask.sum(axis=(0, 1)).astype(np.float64)
    present = np.flatnonzero(counts)
    if present.size == 0:
        raise ValueError("empty cord mask")
    x = np.arange(cord_mask.shape[0], dtype=np.float64) * zx
    y = np.arange(cord_mask.shape[1], dtype=np.float64) * zy
    per_x = cord_mask.sum(axis=1).astype(np.float64)   # (nx, nz)
    per_y = cord_mask.sum(axis=0).astype(np.float64)   # (ny, nz)
    rows = present
    n = counts[rows]
    mean_x = x @ per_x[:, rows] / n
    mean_y = y @ per_y[:, rows] / n
    var_x = (x ** 2) @ per_x[:, rows] / n - mean_x ** 2 + zx ** 2 / 12
    var_y = (y ** 2) @ per_y[:, rows] / n - mean_y ** 2 + zy ** 2 / 12
    span = np.arange(rows[0], rows[-1] + 1)
    z_mm = span * zz

    def along(values: np.ndarray) -> np.ndarray:
        """Filled over the span and smoothed around its straight-line fit (a tilt stays exact to the ends)."""
        filled = np.interp(span, rows, values)
        if span.size < 3:
            return filled
        trend = np.polyval(np.polyfit(span, filled, 1), span)
        return trend + gaussian_filter1d(filled - trend, SMOOTHING_MM / zz, mode="nearest")

    center_x, center_y = along(mean_x), along(mean_y)
    radius_x = along(2.0 * np.sqrt(np.maximum(var_x, 0.0)))
    radius_y = along(2.0 * np.sqrt(np.maximum(var_y, 0.0)))
    steps = np.sqrt(np.diff(z_mm) ** 2 + np.diff(center_x) ** 2 + np.diff(center_y) ** 2)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    return CordFrame(z_mm, center_x, center_y, radius_x, radius_y, arc, (zx, zy, zz))
