"""The invertible crop around the spinal cord.

A :class:`CropBox` is an axis-aligned box of canonical voxel indices (``start`` inclusive,
``stop`` exclusive) inside an image of ``full_shape``. It is one composable, invertible step, in
the spirit of MONAI's invertible transforms:

>>> box = crop_box_around(cord_mask, image.zooms, margins_mm=(10, 15, 10))   # doctest: +SKIP
>>> cropped = box.apply(image.data)                                          # doctest: +SKIP
>>> full = box.invert(prediction_on_crop)        # same shape as image.data  # doctest: +SKIP
>>> cropped_affine = box.affine(image.affine)                                # doctest: +SKIP

``invert(apply(x))`` equals ``x`` inside the box and ``fill`` outside, voxel for voxel: no
resampling is involved anywhere.

Where the cord reaches the edge of the field of view, the box records the sides in
:attr:`CropBox.cord_at_border`. At the superior or inferior edge this is expected (sagittal spine
images rarely show the whole cord); at the left/right or anterior/posterior edges it is suspicious
(a failed localization, or a field of view too tight for the margins), and
:attr:`CropBox.warnings` says so in words the command can pass on to the user.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from sct_lesion_classify.errors import ProcessingError
from sct_lesion_classify.masks import bounding_box

logger = logging.getLogger(__name__)

#: Names of the box sides, per canonical axis: (low index side, high index side).
SIDE_NAMES = (("left", "right"), ("posterior", "anterior"), ("inferior", "superior"))

_EXPECTED_SIDES = frozenset({"inferior", "superior"})


@dataclass(frozen=True)
class CropBox:
    """An axis-aligned box in canonical voxel indices.

    Attributes
    ----------
    start
        First voxel index inside the box, per canonical axis (inclusive).
    stop
        One past the last voxel index, per canonical axis (exclusive).
    full_shape
        Shape of the image the box lies in.
    cord_at_border
        Sides of the field of view that the cord mask touched when the box was made
        (names from :data:`SIDE_NAMES`, e.g. ``("superior",)``); empty when it touched none.
    """

    start: tuple[int, int, int]
    stop: tuple[int, int, int]
    full_shape: tuple[int, int, int]
    cord_at_border: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("start", "stop", "full_shape"):
            value = getattr(self, name)
            if len(value) != 3:
                raise ValueError(f"CropBox.{name} must have 3 values, got {value!r}")
            object.__setattr__(self, name, tuple(int(v) for v in value))
        for axis in range(3):
            if not 0 <= self.start[axis] < self.stop[axis] <= self.full_shape[axis]:
                raise ValueError(
                    f"CropBox axis {axis}: need 0 <= start < stop <= size, got start {self.start},"
                    f" stop {self.stop}, full shape {self.full_shape}"
                )
        object.__setattr__(self, "cord_at_border", tuple(self.cord_at_border))

    @classmethod
    def full(cls, shape: tuple[int, int, int]) -> "CropBox":
        """The box covering the whole image (no crop, as with ``-no-crop``)."""
        shape = tuple(int(n) for n in shape)
        return cls(start=(0, 0, 0), stop=shape, full_shape=shape)  # type: ignore[arg-type]

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        """Index expression selecting the box: ``volume[box.slices]``."""
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of the cropped array."""
        return tuple(b - a for a, b in zip(self.start, self.stop))  # type: ignore[return-value]

    @property
    def is_full(self) -> bool:
        """Whether the box covers the whole image."""
        return self.start == (0, 0, 0) and self.stop == self.full_shape

    @property
    def warnings(self) -> tuple[str, ...]:
        """Messages about :attr:`cord_at_border`, for the user (empty when there is nothing to say)."""
        messages = []
        expected = [side for side in self.cord_at_border if side in _EXPECTED_SIDES]
        suspicious = [side for side in self.cord_at_border if side not in _EXPECTED_SIDES]
        if expected:
            messages.append(
                "the spinal cord continues beyond the " + " and ".join(expected)
                + " edge of the field of view (expected in spine MRI): lesions there may be cut"
            )
        if suspicious:
            messages.append(
                "the spinal cord mask touches the " + " and ".join(suspicious)
                + " edge of the field of view: the cord localization may be wrong or the field"
                " of view too tight; check the cord mask"
            )
        return tuple(messages)

    def apply(self, volume: np.ndarray) -> np.ndarray:
        """Crop ``volume`` (shape ``full_shape`` or ``full_shape + (...)``); returns a copy."""
        self._check_full(volume, "apply")
        return np.array(volume[self.slices], copy=True)

    def invert(self, cropped: np.ndarray, fill: float | int | bool = 0) -> np.ndarray:
        """Put ``cropped`` (shape ``shape`` or ``shape + (...)``) back in the full field of view.

        Voxels outside the box get ``fill``; the result has ``cropped``'s dtype.
        """
        cropped = np.asarray(cropped)
        if cropped.ndim < 3 or tuple(cropped.shape[:3]) != self.shape:
            raise ProcessingError(
                f"cannot uncrop an array of shape {cropped.shape}: the crop box has shape {self.shape}"
            )
        full = np.full(self.full_shape + tuple(cropped.shape[3:]), fill, dtype=cropped.dtype)
        full[self.slices] = cropped
        return full

    def affine(self, full_affine: np.ndarray) -> np.ndarray:
        """Voxel-to-world affine of the cropped array, given the full image's affine."""
        full_affine = np.asarray(full_affine, dtype=np.float64)
        if full_affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got shape {full_affine.shape}")
        cropped = full_affine.copy()
        cropped[:3, 3] = full_affine[:3, :3] @ np.asarray(self.start, dtype=np.float64) + full_affine[:3, 3]
        return cropped

    def to_mask(self) -> np.ndarray:
        """The box as a bool mask of ``full_shape`` (for the ``_cropbox.nii.gz`` output)."""
        mask = np.zeros(self.full_shape, dtype=bool)
        mask[self.slices] = True
        return mask

    def _check_full(self, volume: np.ndarray, what: str) -> None:
        if volume.ndim < 3 or tuple(volume.shape[:3]) != self.full_shape:
            raise ProcessingError(
                f"cannot {what} the crop box to an array of shape {volume.shape}:"
                f" the box was made for shape {self.full_shape}"
            )


def margins_in_voxels(
    zooms_mm: tuple[float, float, float], margins_mm: tuple[float, float, float]
) -> tuple[int, int, int]:
    """Margins in mm converted to whole voxels per axis, rounded up (``ceil(margin / zoom)``)."""
    if len(zooms_mm) != 3 or len(margins_mm) != 3:
        raise ValueError(f"need 3 zooms and 3 margins, got {zooms_mm!r} and {margins_mm!r}")
    result = []
    for zoom, margin in zip(zooms_mm, margins_mm):
        if not (math.isfinite(zoom) and zoom > 0):
            raise ValueError(f"invalid voxel size {zooms_mm!r}")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"crop margins must be finite and >= 0 mm, got {margins_mm!r}")
        # A small tolerance keeps 10 mm / 0.5 mm at 20 voxels despite rounding of the zooms.
        result.append(int(math.ceil(margin / zoom - 1e-6)))
    return tuple(result)  # type: ignore[return-value]


def crop_box_around(
    mask: np.ndarray,
    zooms_mm: tuple[float, float, float],
    margins_mm: tuple[float, float, float],
) -> CropBox:
    """The bounding box of ``mask`` grown by ``margins_mm`` on each side, clipped to the image.

    Parameters
    ----------
    mask
        Cord mask, canonical orientation (anything nonzero is cord).
    zooms_mm
        Voxel size in mm along the canonical axes.
    margins_mm
        Margin added on both sides of the cord, per canonical axis (R-L, A-P, S-I), in mm;
        converted to voxels with :func:`margins_in_voxels` (rounded up).

    Returns
    -------
    CropBox
        With :attr:`CropBox.cord_at_border` naming the image edges that the cord touches.

    Raises
    ------
    ProcessingError
        When the cord mask is empty.
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"cord mask must be 3D, got shape {mask.shape}")
    margins_vox = margins_in_voxels(zooms_mm, margins_mm)
    start, stop, touched = [], [], []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(np.any(mask, axis=others))
        if present.size == 0:
            raise ProcessingError(
                "the spinal cord mask is empty: no cord found in the image (check the input,"
                " or give a cord mask with -s)"
            )
        low, high = int(present[0]), int(present[-1])
        size = mask.shape[axis]
        if low == 0:
            touched.append(SIDE_NAMES[axis][0])
        if high == size - 1:
            touched.append(SIDE_NAMES[axis][1])
        start.append(max(0, low - margins_vox[axis]))
        stop.append(min(size, high + 1 + margins_vox[axis]))
    box = CropBox(
        start=tuple(start),  # type: ignore[arg-type]
        stop=tuple(stop),  # type: ignore[arg-type]
        full_shape=tuple(int(n) for n in mask.shape),  # type: ignore[arg-type]
        cord_at_border=tuple(touched),
    )
    logger.debug("crop box %s:%s of %s (margins %s voxels)", box.start, box.stop, box.full_shape, margins_vox)
    return box


def region_around(
    mask: np.ndarray,
    zooms_mm: tuple[float, float, float],
    margins_mm: tuple[float, float, float],
) -> np.ndarray:
    """The voxels within ``margins_mm`` of the cord along each axis: the mask grown by a box.

    A voxel is in the region when some cord voxel lies within the margin (in whole voxels, as
    :func:`margins_in_voxels`) along each of the three axes. The bounding box of the region is
    the :func:`crop_box_around` of the same mask and margins; inside that box the region follows
    the cord (its curve, and the few slices where it is wide), and the lesion network runs only
    on it.
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"cord mask must be 3D, got shape {mask.shape}")
    margins_vox = margins_in_voxels(zooms_mm, margins_mm)
    grown = ndimage.maximum_filter(mask.astype(bool).view(np.uint8),
                                   size=tuple(2 * m + 1 for m in margins_vox), mode="constant", cval=0)
    return grown.astype(bool)


def within_distance(mask: np.ndarray, zooms_mm: tuple[float, float, float], margin_mm: float) -> np.ndarray:
    """The voxels whose centre lies within ``margin_mm`` of a voxel centre of ``mask``.

    The distance is Euclidean, in mm on the voxel grid (:func:`scipy.ndimage.distance_transform_edt`
    with the voxel sizes as sampling), so anisotropic voxels are handled; ``margin_mm = 0`` gives
    the mask itself. The distance counts only voxels of the array given: call it on a crop that
    holds the whole mask (the :func:`crop_box_around` box), which is also what keeps it cheap.

    Parameters
    ----------
    mask
        3D mask (anything nonzero is in it), canonical orientation; must not be empty.
    zooms_mm
        Voxel size in mm along the three axes.
    margin_mm
        Finite distance >= 0 in mm.
    """
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 3 or len(zooms_mm) != 3:
        raise ValueError(f"need a 3D mask and 3 voxel sizes, got shape {mask.shape} and {zooms_mm!r}")
    if not (math.isfinite(margin_mm) and margin_mm >= 0):
        raise ValueError(f"the margin must be finite and >= 0 mm, got {margin_mm!r}")
    if not mask.any():
        raise ProcessingError("the spinal cord mask is empty: cannot measure distances to it")
    # Only voxels within the margin matter: the transform runs on the mask's bounding box grown
    # by the margin, which holds every mask voxel, so its distances are those of the whole array.
    pad = tuple(int(math.ceil(margin_mm / float(z))) + 1 for z in zooms_mm)
    box = bounding_box(mask, pad)
    distance_mm = ndimage.distance_transform_edt(~mask[box], sampling=tuple(float(z) for z in zooms_mm))
    near = np.zeros(mask.shape, dtype=bool)
    # the tolerance keeps a voxel exactly at the margin (e.g. 2 voxels of 0.5 mm for 1 mm) inside
    near[box] = distance_mm <= margin_mm + 1e-6
    return near
