"""The classifiers' input tensor, built the same way at training and at inference time.

Zhuo et al. 2022 (SPEC section 1): the classifiers see the sagittal slices that contain lesion,
each as a 3-channel image (contrast-enhanced T1w or zeros, T2w, lesion mask) of 256 x 256 pixels,
intensities z-scored, clipped to [-5, 5] and rescaled to [0, 1]. Here, with the numbers taken
from the model card's ``input`` section (:class:`~sct_lesion_classify.modelpkg.card.InputSpec`,
or any object with the same attributes):

1. **Slices.** A sagittal slice (canonical ``data[i]``) is used when its lesion area
   (voxel count x in-plane voxel area) is at least ``min_lesion_area_mm2``. When no slice reaches
   that area but the mask is not empty, the slice(s) with the largest area are used (ties all
   kept), so a small lesion still gets a diagnosis. An empty mask gives no slice (``N = 0``): the
   caller reports "no lesion, no diagnosis".
2. **Intensities**, per channel over the subject's whole volume (not per slice): ``zscore``
   (mean and standard deviation of every voxel), ``zscore_nonzero`` (of the nonzero voxels) or
   ``minmax``; then ``clip``; then ``rescale`` maps the clip range (or the volume's range when
   there is no clip) linearly onto the rescale range (the same function as the segmentation
   models, :func:`sct_lesion_classify.runtime.preprocess.normalize`). The first channel is all
   zeros for a T2w-only model (channel name ``"zeros"``) or when there is no cT1w image. The mask
   channel stays 0/1.
3. **Geometry.** Each slice (axes A-P, S-I) is resampled with
   :class:`~sct_lesion_classify.io.resample.SliceResampler`: with ``spacing_mm`` null, its field of
   view is padded (centred) to a square and resized to ``spatial_size`` (aspect kept, as the paper's
   "padded to a square then resized"); with a spacing, to that spacing on a ``spatial_size`` grid
   centred on the field of view. Image channels are interpolated linearly; padding takes the lower
   bound of the rescale range (0: the darkest value the network sees, like the zero padding of an
   unnormalised image); the mask is interpolated linearly and thresholded at 0.5.

Only numpy and scipy are used (numpy 1.x and 2.x), so the same function serves ONNX Runtime
inference and PyTorch training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sct_lesion_classify.errors import InputError, ModelError
from sct_lesion_classify.io.resample import SliceResampler

#: Channel names of the classifier input, in order (``input.channels[i].name`` of the card).
#: The first one is ``"cT1w"`` for a model that uses the contrast-enhanced T1w and ``"zeros"``
#: for a T2w-only model (the channel is then all zeros, as in the paper).
CHANNEL_NAMES = ("cT1w", "T2w", "lesion_mask")
T2W_ONLY_CHANNEL_NAMES = ("zeros", "T2w", "lesion_mask")


@dataclass(frozen=True)
class ClassifierSlices:
    """The classifier input of one subject.

    Attributes
    ----------
    batch
        float32 ``(N, 3, H, W)``: channels :data:`CHANNEL_NAMES`, ``H, W = spatial_size``.
    slice_indices
        The canonical sagittal index (axis 0) of each of the ``N`` slices, ascending.
    lesion_area_mm2
        Lesion area of each slice used, in mm2 (same order).
    fallback
        True when no slice reached ``min_lesion_area_mm2`` and the largest slice(s) were used.
    """

    batch: np.ndarray
    slice_indices: tuple[int, ...]
    lesion_area_mm2: tuple[float, ...]
    fallback: bool = False

    @property
    def empty(self) -> bool:
        """No slice (the lesion mask was empty)."""
        return len(self.slice_indices) == 0


def lesion_slices(lesion_mask: np.ndarray, zooms_mm: tuple[float, float, float],
                  min_area_mm2: float | None) -> tuple[tuple[int, ...], tuple[float, ...], bool]:
    """Sagittal slices whose lesion area reaches ``min_area_mm2`` (see the module's rule 1).

    Returns the slice indices, their areas in mm2 and whether the largest-slice fallback was used.
    """
    mask = np.asarray(lesion_mask) > 0
    if mask.ndim != 3:
        raise InputError(f"lesion mask must be 3D, got shape {mask.shape}")
    pixel_area = float(zooms_mm[1]) * float(zooms_mm[2])
    areas = mask.reshape(mask.shape[0], -1).sum(axis=1).astype(np.float64) * pixel_area
    threshold = 0.0 if min_area_mm2 is None else float(min_area_mm2)
    chosen = np.flatnonzero((areas >= threshold) & (areas > 0))
    fallback = False
    if chosen.size == 0 and areas.max(initial=0.0) > 0:
        chosen = np.flatnonzero(areas == areas.max())
        fallback = True
    return (tuple(int(i) for i in chosen), tuple(float(areas[i]) for i in chosen), fallback)


def normalize_volume(volume: np.ndarray, normalization: Any) -> np.ndarray:
    """The card's normalization (shared with the segmentation models: ``runtime.preprocess``)."""
    from sct_lesion_classify.runtime.preprocess import normalize

    return normalize(volume, normalization)


def classifier_resampler(slice_shape: tuple[int, int], zooms_mm: tuple[float, float, float],
                         card_input: Any) -> SliceResampler:
    """The in-plane resampling of rule 3: image slices ``(A-P, S-I)`` -> ``spatial_size``.

    Its ``backward`` is the exact inverse used to put a per-slice map (Grad-CAM) back on the
    image's slices (:mod:`sct_lesion_classify.classify.gradcam`).
    """
    if card_input.spatial_size is None:
        raise ModelError("a classifier card needs input.spatial_size (e.g. [256, 256])")
    out_shape = (int(card_input.spatial_size[0]), int(card_input.spatial_size[1]))
    in_shape = (int(slice_shape[0]), int(slice_shape[1]))
    in_spacing = (float(zooms_mm[1]), float(zooms_mm[2]))
    if card_input.spacing_mm is None:
        return SliceResampler.to_size(in_shape, in_spacing, out_shape, keep_aspect=True)
    return SliceResampler(in_shape, in_spacing, out_shape,
                          tuple(float(s) for s in card_input.spacing_mm))


def build_classifier_slices(
    t2w: np.ndarray,
    lesion_mask: np.ndarray,
    zooms_mm: tuple[float, float, float],
    card_input: Any,
    t1c: np.ndarray | None = None,
) -> ClassifierSlices:
    """Build the classifier input of one subject (see the module docstring for the rules).

    Parameters
    ----------
    t2w
        T2w volume, canonical orientation (axis 0 = right-left: ``t2w[i]`` is a sagittal slice).
    lesion_mask
        Lesion mask on the same grid (anything > 0 is lesion).
    zooms_mm
        Voxel size in mm along the canonical axes.
    card_input
        The card's ``input`` section: ``channels``, ``spatial_size``, ``spacing_mm``,
        ``normalization`` (``method``, ``clip``, ``rescale``), ``min_lesion_area_mm2``.
    t1c
        Optional contrast-enhanced T1w on the same grid, used when the card's first channel is
        ``"cT1w"``; the first channel is zeros without it, and always for a ``"zeros"`` card.

    Returns
    -------
    ClassifierSlices
        ``N = 0`` slices when the mask is empty.

    Raises
    ------
    InputError
        Arrays of different shapes or not 3D.
    ModelError
        A card whose input is not this contract (channels, spatial size, normalization).
    """
    t2w = np.asarray(t2w)
    if t2w.ndim != 3:
        raise InputError(f"T2w image must be 3D, got shape {t2w.shape}")
    for name, array in (("lesion mask", lesion_mask), ("cT1w image", t1c)):
        if array is not None and tuple(np.shape(array)) != t2w.shape:
            raise InputError(f"{name} shape {tuple(np.shape(array))} differs from the T2w shape "
                             f"{t2w.shape}")
    names = tuple(channel.name for channel in card_input.channels)
    if names not in (CHANNEL_NAMES, T2W_ONLY_CHANNEL_NAMES):
        raise ModelError(f"classifier input channels must be {list(CHANNEL_NAMES)} or "
                         f"{list(T2W_ONLY_CHANNEL_NAMES)}, the card says {list(names)}")
    if names[0] != CHANNEL_NAMES[0]:
        t1c = None
    if card_input.spatial_size is None:
        raise ModelError("a classifier card needs input.spatial_size (e.g. [256, 256])")
    out_shape = (int(card_input.spatial_size[0]), int(card_input.spatial_size[1]))

    indices, areas, fallback = lesion_slices(lesion_mask, zooms_mm, card_input.min_lesion_area_mm2)
    batch = np.zeros((len(indices), len(CHANNEL_NAMES)) + out_shape, dtype=np.float32)
    if not indices:
        return ClassifierSlices(batch, (), (), False)

    resampler = classifier_resampler((t2w.shape[1], t2w.shape[2]), zooms_mm, card_input)
    rescale = card_input.normalization.rescale
    pad_value = float(rescale[0]) if rescale is not None else 0.0
    chosen = list(indices)
    if t1c is not None:
        t1c_norm = normalize_volume(t1c, card_input.normalization)
        batch[:, 0] = resampler.forward(t1c_norm[chosen], order=1, cval=pad_value)
    t2w_norm = normalize_volume(t2w, card_input.normalization)
    batch[:, 1] = resampler.forward(t2w_norm[chosen], order=1, cval=pad_value)
    mask = (np.asarray(lesion_mask) > 0).astype(np.float32)
    batch[:, 2] = resampler.forward(mask[chosen], order=1, cval=0.0) >= 0.5
    return ClassifierSlices(batch, indices, areas, fallback)
