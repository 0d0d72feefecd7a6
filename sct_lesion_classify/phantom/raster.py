"""Exact partial volume across thick sagittal slices, by intervals along the right-left axis.

Every structure of the phantom is described, for each in-plane pixel (anterior-posterior y,
superior-inferior z), by the interval of right-left positions ``[lo, hi]`` (mm) that it occupies
there. The fraction of a sagittal slice of thickness ``t`` centred at ``x`` that the structure
fills is then ``overlap([x - t/2, x + t/2], [lo, hi]) / t``: the partial volume across the thick
slice is exact for any shape whose right-left cross-section is one interval (ellipses, ellipsoids,
superellipses, boxes), and it costs a few operations per voxel instead of supersampling.

Structures are painted in order (painter's algorithm with fractional coverage): the voxel value
becomes ``value + fraction * (tissue - value)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layer:
    """One structure: its right-left interval over a box of in-plane pixels, and its intensities.

    Attributes
    ----------
    name
        What it is (``"cord"``, ``"csf"``, ...).
    lo, hi
        (ny_box, nz_box) float32 right-left bounds in mm; empty where ``hi <= lo``.
    y_slice, z_slice
        Where the box lies in the in-plane grid.
    t2, t1
        Intensity on T2w and on contrast-enhanced T1w: a scalar, or an array broadcastable to
        (nx, ny_box, nz_box).
    """

    name: str
    lo: np.ndarray
    hi: np.ndarray
    y_slice: slice
    z_slice: slice
    t2: float | np.ndarray
    t1: float | np.ndarray


def crop_box(present: np.ndarray, margin: int = 1) -> tuple[slice, slice] | None:
    """Bounding box (y, z slices) of the True pixels of a 2D array, or None when there are none."""
    rows = np.flatnonzero(present.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(present.any(axis=0))
    ny, nz = present.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, ny)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, nz)))


def make_layer(name: str, center_x: np.ndarray, half_width: np.ndarray,
               t2: float | np.ndarray, t1: float | np.ndarray,
               box: tuple[slice, slice] | None = None) -> Layer | None:
    """Build a layer from a centre and a half-width (mm) per in-plane pixel; None when empty.

    ``center_x`` and ``half_width`` are full-plane (ny, nz) arrays (or broadcastable to them), or
    already cropped to ``box`` when a box is given. Intensity arrays must match the box.
    """
    half_width = np.asarray(half_width, dtype=np.float32)
    if box is None:
        center_x = np.broadcast_to(np.asarray(center_x, dtype=np.float32), half_width.shape)
        box = crop_box(half_width > 0)
        if box is None:
            return None
        half_width = half_width[box]
        center_x = center_x[box]
        t2 = _crop_value(t2, box)
        t1 = _crop_value(t1, box)
    else:
        center_x = np.broadcast_to(np.asarray(center_x, dtype=np.float32), half_width.shape)
    half_width = np.maximum(half_width, 0.0)
    return Layer(name, (center_x - half_width).astype(np.float32),
                 (center_x + half_width).astype(np.float32), box[0], box[1], t2, t1)


def _crop_value(value: float | np.ndarray, box: tuple[slice, slice]) -> float | np.ndarray:
    if np.ndim(value) == 0:
        return float(value)
    value = np.asarray(value, dtype=np.float32)
    if value.ndim == 2:  # (ny or 1, nz or 1)
        return value[tuple(s if n > 1 else slice(None) for s, n in zip(box, value.shape))]
    if value.ndim == 3:  # (nx or 1, ny or 1, nz or 1)
        ys, zs = box
        return value[:, ys if value.shape[1] > 1 else slice(None), zs if value.shape[2] > 1 else slice(None)]
    raise ValueError(f"intensity of {value.ndim} dimensions")


def slab_fraction(lo: np.ndarray, hi: np.ndarray, x_centers: np.ndarray,
                  thickness: float) -> np.ndarray:
    """Fraction of each slab ``[x - t/2, x + t/2]`` covered by ``[lo, hi]``: (nx, ny_box, nz_box)."""
    left = (x_centers - thickness / 2).astype(np.float32)[:, None, None]
    right = (x_centers + thickness / 2).astype(np.float32)[:, None, None]
    covered = np.minimum(hi[None], right)
    covered -= np.maximum(lo[None], left)
    np.clip(covered, 0.0, thickness, out=covered)
    covered *= np.float32(1.0 / thickness)
    return covered


def paint(canvas: np.ndarray, layer: Layer, fraction: np.ndarray, value: float | np.ndarray) -> None:
    """``canvas += fraction * (value - canvas)`` inside the layer's box (in place)."""
    region = canvas[:, layer.y_slice, layer.z_slice]
    region += fraction * (value - region)


def superellipse_half(a: np.ndarray | float, b: np.ndarray | float, dy: np.ndarray,
                      power: float = 2.0) -> np.ndarray:
    """Right-left half-chord of the superellipse ``|x/a|^p + |dy/b|^p <= 1`` at offset ``dy``."""
    b = np.maximum(np.asarray(b, dtype=np.float32), 1e-3)
    inside = 1.0 - np.abs(dy / b) ** power
    return (np.asarray(a, dtype=np.float32) * np.clip(inside, 0.0, None) ** (1.0 / power)
            ).astype(np.float32)
