"""Domain randomisation of an existing record (image, cord mask, lesion mask), on the fly.

For training on any 3D record in the canonical orientation (a phantom of any style, a real scan with
inserted lesions): :func:`randomise_record` draws the ``randomised`` style's parameters
(``style.draw_style``, so the same ranges and the same held-out family) and applies what a record
without tissue labels allows:

- contrast: the cord and the lesion are labels, so the cord gets the drawn cord intensity (its own
  texture kept) and the lesion ``cord * ratio ** lesion_gamma`` with its ratio to the cord measured
  in the record; everything else goes through a random, non-monotonic, piecewise-linear transfer
  curve with knot values drawn in the tissue range (SynthSeg's intensity per label, with intensity
  bands in place of labels: fat, muscle or CSF end up brighter or darker than the cord; the drawn
  intensities of the other tissues are not used). The CSF/cord
  ratio is estimated as the 75th percentile of the band 0.5-3 mm around the cord over the cord
  intensity; a curve that puts it in ``HELD_OUT.csf_to_cord`` is drawn again (and rescaled out of
  the hole after 20 draws), so the held-out contrast is never produced for that estimate;
- posture: a rotation in the sagittal plane by the drawn pitch (MONAI ``Affine``; bilinear for the
  image, nearest for one label map of both masks, so the lesion stays inside the cord), when the
  in-plane pixels are square and ``rotate`` is set (a record that is already tilted may not want
  another +-35 degrees);
- resolution: the drawn pixel size and slice spacing, where coarser than the record's, by area
  downsampling and linear upsampling back to the record's grid (MONAI ``Resize``): the grid and the
  masks stay the record's; the held-out slice thickness is never drawn;
- artefacts: ``artefacts.apply_artefacts`` with the drawn ``ArtefactDraw``.

Not done here: the coronal tilt (it would resample across thick slices), the curvature and the field
of view (training's own crops and elastic deformation do these), the lookalikes (they need the
anatomy). Needs MONAI (``artefacts.require_monai``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter

from sct_lesion_classify.phantom.artefacts import apply_artefacts, require_monai, to_numpy
from sct_lesion_classify.phantom.style import RANDOMISED, StyleParams, StyleRanges, draw_style

#: Knots of the transfer curve over the normalised intensity [0, 1].
CURVE_KNOTS = 7
#: Band around the cord whose 75th percentile stands for the CSF (mm).
CSF_BAND_MM = (0.5, 3.0)
MAX_CURVE_DRAWS = 20


@dataclass(frozen=True)
class RandomisedRecord:
    """The randomised record: float32 integer-valued image, bool masks on the input's grid."""

    image: np.ndarray
    cord_mask: np.ndarray
    lesion_mask: np.ndarray
    params: StyleParams
    csf_to_cord: float   # the estimate the held-out check used


def randomise_record(image: np.ndarray, cord_mask: np.ndarray, lesion_mask: np.ndarray,
                     zooms_mm: tuple[float, float, float], seed: int, *, rotate: bool = True,
                     ranges: StyleRanges = RANDOMISED) -> RandomisedRecord:
    """Randomise one record (module docstring); deterministic for ``seed``.

    Raises
    ------
    ValueError
        Arrays of different shapes, not 3D, or an empty cord mask.
    InputError
        MONAI or PyTorch missing.
    """
    if not (image.ndim == 3 and image.shape == cord_mask.shape == lesion_mask.shape):
        raise ValueError(f"image and masks must be 3D arrays of one shape, got {image.shape}, "
                         f"{cord_mask.shape}, {lesion_mask.shape}")
    cord_mask = cord_mask.astype(bool)
    if not cord_mask.any():
        raise ValueError("the cord mask is empty")
    require_monai("randomised")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    params = draw_style(rng, "randomised", ranges)
    labels = cord_mask.astype(np.uint8) + lesion_mask.astype(bool)   # 0 outside, 1 cord, 2 lesion
    volume = np.asarray(image, dtype=np.float32)
    volume, ratio = _remap_contrast(volume, labels, zooms_mm, params, ranges, rng)
    if rotate and abs(zooms_mm[1] - zooms_mm[2]) < 1e-3 * zooms_mm[1]:
        volume, labels = _rotate_sagittal(volume, labels, params.posture.pitch_deg)
    volume = _coarsen(volume, zooms_mm, params)
    volume = apply_artefacts(volume, params.artefacts)
    return RandomisedRecord(volume, labels >= 1, labels == 2, params, ratio)


def _remap_contrast(image: np.ndarray, labels: np.ndarray, zooms_mm: tuple[float, float, float],
                    params: StyleParams, ranges: StyleRanges,
                    rng: np.random.Generator) -> tuple[np.ndarray, float]:
    cord = labels >= 1
    scale = max(float(np.percentile(image, 99.5)), 1e-6)
    normalised = np.clip(image / scale, 0.0, 1.5)
    cord_level = max(float(np.median(image[labels == 1])) if (labels == 1).any()
                     else float(np.median(image[cord])), 1e-6)
    ratio_to_cord = np.maximum(image / cord_level, 0.0)
    new_cord = params.contrast.t2_of("cord")
    inside = np.where(labels == 2, new_cord * ratio_to_cord ** np.float32(params.contrast.lesion_gamma),
                      new_cord * ratio_to_cord).astype(np.float32)
    distance = distance_transform_edt(~cord, sampling=zooms_mm)
    band = (distance > CSF_BAND_MM[0]) & (distance <= CSF_BAND_MM[1])
    knots = np.linspace(0.0, 1.0, CURVE_KNOTS)
    hole = ranges.exclude.csf_to_cord if ranges.exclude is not None else None
    for _ in range(MAX_CURVE_DRAWS):
        values = rng.uniform(*ranges.contrast.tissue, CURVE_KNOTS)
        values[0] = rng.uniform(*ranges.contrast.air)   # no signal stays no signal
        outside = np.interp(normalised, knots, values).astype(np.float32)
        csf_to_cord = float(np.percentile(outside[band], 75)) / new_cord if band.any() else 1.0
        if hole is None or not hole[0] <= csf_to_cord <= hole[1]:
            break
    else:   # still in the hole: lift everything outside the cord just above it
        lift = hole[1] * 1.05 / max(csf_to_cord, 1e-6)
        outside *= np.float32(lift)
        csf_to_cord *= lift
    sigma = [0.7 * min(zooms_mm) / z for z in zooms_mm]   # soft edge, about 0.7 mm
    weight = gaussian_filter(cord.astype(np.float32), sigma)
    return (weight * inside + (1.0 - weight) * outside).astype(np.float32), csf_to_cord


def _rotate_sagittal(image: np.ndarray, labels: np.ndarray,
                     pitch_deg: float) -> tuple[np.ndarray, np.ndarray]:
    from monai.data import set_track_meta
    from monai.transforms import Affine

    set_track_meta(False)
    angle = (float(np.radians(pitch_deg)), 0.0, 0.0)   # about the right-left axis

    def turn(array: np.ndarray, mode: str) -> np.ndarray:
        rotation = Affine(rotate_params=angle, mode=mode, padding_mode="zeros", image_only=True)
        return to_numpy(rotation(array[None]))[0]

    labels = np.rint(turn(labels.astype(np.float32), "nearest")).astype(np.uint8)
    return turn(image.astype(np.float32), "bilinear"), labels


def _coarsen(image: np.ndarray, zooms_mm: tuple[float, float, float], params: StyleParams) -> np.ndarray:
    from monai.transforms import Resize

    target = (params.acquisition.slice_spacing_mm, params.acquisition.pixel_mm, params.acquisition.pixel_mm)
    factors = [max(t / z, 1.0) for t, z in zip(target, zooms_mm)]
    if max(factors) < 1.05:
        return image
    coarse = [max(2, int(round(n / f))) for n, f in zip(image.shape, factors)]
    down = Resize(coarse, mode="area")(image[None])
    return to_numpy(Resize(image.shape, mode="trilinear")(down))[0]

