"""Sagittal mosaics with overlays, from canonical arrays (numpy only).

Display convention
------------------
Input arrays are in the canonical orientation of :mod:`sct_lesion_classify.io.image` (nibabel
RAS+: axis 0 right-left, axis 1 posterior->anterior, axis 2 inferior->superior), so ``data[i]`` is
one sagittal slice. Every tile shows one sagittal slice the way sagittal MRI is usually read:
**superior at the top, anterior on the viewer's left** (posterior, where the spinous processes
are, on the right). Tiles are ordered by slice index, left to right then top to bottom, and each
carries its slice index (canonical axis-0 index, 0 = the subject's rightmost slice) in its
bottom-right corner.

Pictures are resampled so that one pixel covers the same distance (``pixel_mm``) vertically and
horizontally, whatever the voxel size (anisotropic in-plane spacing would otherwise stretch the
cord). Intensities are windowed between robust percentiles (1st and 99th by default) of the
volume.

Overlay colours: lesion filled in red with transparency and outlined in solid red; cord mask
outlined in yellow; cord box outlined in green; the region searched for the lesion filled in
light blue with transparency and outlined in solid light blue; saliency (Grad-CAM) as a "jet" heat map whose
opacity grows with the saliency value, so low values leave the anatomy visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Short description of the display convention, for captions.
DISPLAY_CONVENTION = "sagittal slices, superior up, anterior left"

LESION_RGB = (255, 32, 32)
CORD_MASK_RGB = (255, 220, 0)
CORD_BOX_RGB = (0, 230, 0)
REGION_RGB = (0, 190, 255)
BACKGROUND_RGB = (24, 24, 24)

#: A canonical-index box: ((x0, x1), (y0, y1), (z0, z1)), half-open voxel index ranges.
Box = Sequence[Sequence[int]]


@dataclass(frozen=True)
class Mosaic:
    """A rendered mosaic.

    Attributes
    ----------
    rgb
        ``(height, width, 3)`` uint8 picture.
    slices
        Canonical axis-0 indices of the tiles, in display order.
    pixel_mm
        Size of one picture pixel, in mm, in both directions.
    tile_shape
        ``(height, width)`` of one tile in pixels.
    columns
        Number of tiles per row.
    """

    rgb: np.ndarray
    slices: tuple[int, ...]
    pixel_mm: float
    tile_shape: tuple[int, int]
    columns: int


# --------------------------------------------------------------------------------------------
# Slice selection and geometry


def _normalize_box(box: Box | None, shape: tuple[int, ...]) -> tuple[tuple[int, int], ...] | None:
    if box is None:
        return None
    pairs = []
    for axis, bounds in enumerate(box):
        if isinstance(bounds, slice):
            start, stop, _ = bounds.indices(shape[axis])
        else:
            start, stop = (int(v) for v in bounds)
        start, stop = max(0, start), min(shape[axis], stop)
        pairs.append((start, max(start, stop)))
    if len(pairs) != 3:
        raise ValueError(f"a box needs 3 (start, stop) pairs, got {len(pairs)}")
    return tuple(pairs)


def _evenly(values: Sequence[int], count: int) -> list[int]:
    values = list(values)
    if count <= 0:
        return []
    if len(values) <= count:
        return values
    picks = np.unique(np.round(np.linspace(0, len(values) - 1, count)).astype(int))
    return [values[i] for i in picks]


def select_slices(
    n_slices: int,
    *,
    lesion: np.ndarray | None = None,
    cord_box: Box | None = None,
    cord_mask: np.ndarray | None = None,
    max_slices: int = 12,
    shape: tuple[int, int, int] | None = None,
) -> tuple[int, ...]:
    """Choose the sagittal slices worth showing, at most ``max_slices``.

    Slices with lesion come first (evenly subsampled when there are more than the cap); the
    remaining places go to slices of the cord box (or, without a box, of the cord mask), evenly
    spaced. Without any of those, slices evenly spaced around the middle of the volume are shown.

    Returns
    -------
    tuple of int
        Sorted canonical axis-0 indices.
    """
    if max_slices < 1:
        raise ValueError("max_slices must be at least 1")
    shape = shape or (n_slices, 1, 1)
    chosen: list[int] = []
    if lesion is not None:
        with_lesion = np.asarray(lesion).reshape(n_slices, -1).any(axis=1)
        chosen = _evenly(np.flatnonzero(with_lesion).tolist(), max_slices)
    region: list[int] = []
    box = _normalize_box(cord_box, shape)
    if box is not None:
        region = list(range(box[0][0], box[0][1]))
    elif cord_mask is not None:
        region = np.flatnonzero(np.asarray(cord_mask).reshape(n_slices, -1).any(axis=1)).tolist()
    if not chosen and not region:
        middle = n_slices // 2
        half = max_slices // 2
        region = list(range(max(0, middle - half), min(n_slices, middle - half + max_slices)))
    already = set(chosen)
    rest = [s for s in region if s not in already]
    chosen += _evenly(rest, max_slices - len(chosen))
    return tuple(sorted(chosen))


def display_slice(slice_ap_si: np.ndarray) -> np.ndarray:
    """Turn one canonical sagittal slice ``data[i]`` (A-P x S-I) into display rows x columns.

    Row 0 is the most superior voxel, column 0 the most anterior one.
    """
    return np.asarray(slice_ap_si).T[::-1, ::-1]


def choose_pixel_mm(fov_mm: tuple[float, float], spacing_mm: tuple[float, float],
                    min_tile_px: int = 192, max_tile_px: int = 256) -> float:
    """Pixel size so that the larger side of a tile has between ``min_tile_px`` and ``max_tile_px``
    pixels, never finer than needed (the smallest voxel spacing) unless the tile would be smaller
    than ``min_tile_px``."""
    longest = max(fov_mm)
    pixel_mm = max(min(spacing_mm), longest / max_tile_px)
    if longest / pixel_mm < min_tile_px:
        pixel_mm = longest / min_tile_px
    return float(pixel_mm)


def _sample_positions(n_in: int, spacing_mm: float, pixel_mm: float) -> tuple[np.ndarray, int]:
    n_out = max(1, int(round(n_in * spacing_mm / pixel_mm)))
    centres = (np.arange(n_out) + 0.5) * pixel_mm / spacing_mm - 0.5
    return np.clip(centres, 0.0, n_in - 1), n_out


def resample_axis(array: np.ndarray, axis: int, spacing_mm: float, pixel_mm: float,
                  linear: bool) -> np.ndarray:
    """Resample ``array`` along ``axis`` from ``spacing_mm`` to ``pixel_mm`` (nearest or linear)."""
    positions, _ = _sample_positions(array.shape[axis], spacing_mm, pixel_mm)
    if not linear:
        return np.take(array, np.floor(positions + 0.5).astype(int), axis=axis)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, array.shape[axis] - 1)
    weight_shape = [1] * array.ndim
    weight_shape[axis] = -1
    weight = (positions - low).reshape(weight_shape)
    values = np.asarray(array, dtype=np.float32)
    return (np.take(values, low, axis=axis) * (1 - weight)
            + np.take(values, high, axis=axis) * weight)


def _resample_stack(stack: np.ndarray, row_mm: float, col_mm: float, pixel_mm: float,
                    linear: bool) -> np.ndarray:
    out = resample_axis(stack, 1, row_mm, pixel_mm, linear)
    return resample_axis(out, 2, col_mm, pixel_mm, linear)


# --------------------------------------------------------------------------------------------
# Colours


def robust_window(volume: np.ndarray, low_percentile: float = 1.0,
                  high_percentile: float = 99.0) -> tuple[float, float]:
    """Intensity window from robust percentiles of the finite values of ``volume``."""
    values = np.asarray(volume, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [low_percentile, high_percentile])
    if not high > low:
        low, high = float(values.min()), float(values.max())
    if not high > low:
        high = low + 1.0
    return float(low), float(high)


def jet_colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB in [0, 1] with the classic "jet" colour map."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    red = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    green = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    blue = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return np.stack([red, green, blue], axis=-1)


def outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a 2D (or stacked 2D, last two axes) boolean mask (4-neighbourhood);
    pixels of the mask on the picture's edge count as boundary."""
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, [(0, 0)] * (mask.ndim - 2) + [(1, 1), (1, 1)], constant_values=False)
    interior = (padded[..., 1:-1, 1:-1] & padded[..., :-2, 1:-1] & padded[..., 2:, 1:-1]
                & padded[..., 1:-1, :-2] & padded[..., 1:-1, 2:])
    return mask & ~interior


def _blend(rgb: np.ndarray, where: np.ndarray, colour, alpha) -> None:
    colour = np.asarray(colour, dtype=np.float32) / 255.0 if not isinstance(colour, np.ndarray) \
        else colour
    alpha = np.asarray(alpha, dtype=np.float32)
    if alpha.ndim:
        alpha = alpha[..., None]
    rgb[:] = np.where(where[..., None], rgb * (1 - alpha) + colour * alpha, rgb)


# A 3x5 bitmap font for the slice numbers.
_DIGITS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001010010010", "8": "111101111101111",
    "9": "111101111001111",
}


def _draw_number(tile: np.ndarray, number: int, scale: int = 2) -> None:
    """Draw ``number`` in white on a black box in the bottom-right corner of ``tile`` (in place)."""
    text = str(number)
    glyph_w, glyph_h, gap, pad = 3 * scale, 5 * scale, scale, scale
    width = len(text) * (glyph_w + gap) - gap + 2 * pad
    height = glyph_h + 2 * pad
    if width > tile.shape[1] or height > tile.shape[0]:
        return
    top, left = tile.shape[0] - height, tile.shape[1] - width
    tile[top:, left:] = 0.0
    for k, char in enumerate(text):
        bits = np.array([int(b) for b in _DIGITS[char]], dtype=bool).reshape(5, 3)
        bits = np.kron(bits, np.ones((scale, scale), dtype=bool))
        y0, x0 = top + pad, left + pad + k * (glyph_w + gap)
        region = tile[y0:y0 + glyph_h, x0:x0 + glyph_w]
        region[bits] = 1.0


# --------------------------------------------------------------------------------------------
# The mosaic


def sagittal_mosaic(
    image: np.ndarray,
    zooms_mm: Sequence[float],
    *,
    slices: Sequence[int] | None = None,
    lesion: np.ndarray | None = None,
    cord_mask: np.ndarray | None = None,
    cord_box: Box | None = None,
    saliency: np.ndarray | None = None,
    region: np.ndarray | None = None,
    view_box: Box | None = None,
    max_slices: int = 12,
    columns: int = 6,
    window: tuple[float, float] | None = None,
    lesion_alpha: float = 0.45,
    lesion_outline_rgb: tuple[int, int, int] = LESION_RGB,
    saliency_alpha: float = 0.6,
    region_alpha: float = 0.25,
    label_slices: bool = True,
) -> Mosaic:
    """Render sagittal slices of a canonical volume with overlays into one RGB picture.

    Parameters
    ----------
    image
        3D canonical array (see module docstring).
    zooms_mm
        Voxel size in mm, canonical axis order.
    slices
        Axis-0 indices to show; default :func:`select_slices` (lesion, then cord box / cord mask).
    lesion, cord_mask
        Boolean arrays of the image's shape (anything non-zero counts), or None.
    cord_box
        ``((x0, x1), (y0, y1), (z0, z1))`` half-open canonical voxel ranges (or slices), or None.
    saliency
        Float array of the image's shape (e.g. Grad-CAM), shown as a heat map after division by
        its maximum (values <= 0 are transparent), or None.
    region
        Boolean array of the image's shape: the region searched for the lesion, filled with
        ``region_alpha`` opacity and outlined, or None.
    view_box
        Optional box whose in-plane part (axes 1 and 2) crops the field of view before display,
        e.g. the cord box, to zoom on the cord.
    max_slices, columns
        Cap on the number of tiles, and tiles per row.
    window
        ``(low, high)`` intensity window; default :func:`robust_window` (1st-99th percentile).
    lesion_alpha, lesion_outline_rgb
        Opacity of the lesion fill (0: outline only) and colour of its outline.

    Returns
    -------
    Mosaic
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"sagittal_mosaic needs a 3D array, got shape {image.shape}")
    shape = image.shape
    for name, array in (("lesion", lesion), ("cord_mask", cord_mask), ("saliency", saliency),
                        ("region", region)):
        if array is not None and np.shape(array) != shape:
            raise ValueError(f"{name} has shape {np.shape(array)}, image has {shape}")
    zooms = tuple(float(z) for z in zooms_mm)[:3]
    if slices is None:
        slices = select_slices(shape[0], lesion=lesion, cord_box=cord_box, cord_mask=cord_mask,
                               max_slices=max_slices, shape=shape)
    slices = tuple(int(s) for s in slices)[:max_slices] or (shape[0] // 2,)
    if any(s < 0 or s >= shape[0] for s in slices):
        raise ValueError(f"slice index out of range 0..{shape[0] - 1}: {slices}")
    if window is None:
        window = robust_window(image)

    # In-plane field of view (canonical axes 1 and 2).
    view = _normalize_box(view_box, shape)
    y0, y1 = view[1] if view else (0, shape[1])
    z0, z1 = view[2] if view else (0, shape[2])
    if y1 <= y0 or z1 <= z0:
        y0, y1, z0, z1 = 0, shape[1], 0, shape[2]

    def stack_of(volume: np.ndarray) -> np.ndarray:
        sub = np.asarray(volume)[list(slices), y0:y1, z0:z1]
        return np.stack([display_slice(s) for s in sub])   # (k, rows=S-I, cols=A-P)

    row_mm, col_mm = zooms[2], zooms[1]
    fov = ((z1 - z0) * row_mm, (y1 - y0) * col_mm)
    pixel_mm = choose_pixel_mm(fov, (row_mm, col_mm))

    low, high = window
    gray = _resample_stack(stack_of(image).astype(np.float32), row_mm, col_mm, pixel_mm, True)
    gray = np.clip((gray - low) / (high - low), 0.0, 1.0)
    rgb = np.repeat(gray[..., None], 3, axis=-1)

    if saliency is not None:
        sal = np.nan_to_num(np.asarray(saliency, dtype=np.float32), nan=0.0)
        peak = float(sal.max()) if sal.size else 0.0
        if peak > 0:
            heat = _resample_stack(stack_of(np.clip(sal / peak, 0, 1)), row_mm, col_mm,
                                   pixel_mm, True)
            _blend(rgb, heat > 0.02, jet_colormap(heat), saliency_alpha * np.sqrt(heat))
    if region is not None:
        searched = _resample_stack(stack_of(np.asarray(region) != 0), row_mm, col_mm, pixel_mm,
                                   False)
        _blend(rgb, searched, REGION_RGB, region_alpha)
        _blend(rgb, outline(searched), REGION_RGB, 1.0)
    if cord_mask is not None:
        cord = _resample_stack(stack_of(np.asarray(cord_mask) != 0), row_mm, col_mm, pixel_mm,
                               False)
        _blend(rgb, outline(cord), CORD_MASK_RGB, 1.0)
    box = _normalize_box(cord_box, shape)
    if box is not None:
        box_volume = np.zeros(shape, dtype=bool)
        box_volume[box[0][0]:box[0][1], box[1][0]:box[1][1], box[2][0]:box[2][1]] = True
        boxes = _resample_stack(stack_of(box_volume), row_mm, col_mm, pixel_mm, False)
        _blend(rgb, outline(boxes), CORD_BOX_RGB, 1.0)
    if lesion is not None:
        les = _resample_stack(stack_of(np.asarray(lesion) != 0), row_mm, col_mm, pixel_mm, False)
        _blend(rgb, les, LESION_RGB, lesion_alpha)
        _blend(rgb, outline(les), lesion_outline_rgb, 1.0)

    if label_slices:
        for tile, index in zip(rgb, slices):
            _draw_number(tile, index)

    count, tile_h, tile_w = rgb.shape[:3]
    rows = -(-count // max(1, columns))
    columns = -(-count // rows)          # balanced rows: 8 tiles at 6 per row -> 2 rows of 4
    gap = 4
    canvas = np.empty((rows * tile_h + (rows + 1) * gap, columns * tile_w + (columns + 1) * gap, 3),
                      dtype=np.float32)
    canvas[:] = np.asarray(BACKGROUND_RGB, dtype=np.float32) / 255.0
    for k, tile in enumerate(rgb):
        r, c = divmod(k, columns)
        top, left = gap + r * (tile_h + gap), gap + c * (tile_w + gap)
        canvas[top:top + tile_h, left:left + tile_w] = tile
    picture = np.round(np.clip(canvas, 0, 1) * 255).astype(np.uint8)
    return Mosaic(rgb=picture, slices=slices, pixel_mm=pixel_mm, tile_shape=(tile_h, tile_w),
                  columns=columns)
