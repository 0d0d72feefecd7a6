"""The classifiers' input tensor, built the same way at training and at inference time.

Zhuo et al. 2022 (SPEC section 1): the classifiers see the sagittal slices that contain lesion,
each as a 3-channel image (contrast-enhanced T1w or zeros, T2w, lesion mask) of 256 x 256 pixels,
intensities z-scored, clipped to [-5, 5] and rescaled to [0, 1]. Here, with the numbers taken
from the model card's ``input`` section (:class:`~sct_lesion_classify.modelpkg.card.InputSpec`):

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
3. **Geometry.** A classifier card gives a fixed ``spatial_size``. Each slice (axes A-P, S-I) is
   resampled by :func:`~sct_lesion_classify.runtime.preprocess.input_resampler`, the rule of the
   segmentation models too: with ``spacing_mm`` null, its field of view is padded (centred) to a
   square and resized to ``spatial_size`` (aspect kept, as the paper's "padded to a square then
   resized"); with a spacing, to that spacing on a ``spatial_size`` grid centred on the field of
   view. Image channels are interpolated linearly; padding takes the lower bound of the rescale
   range (0: the darkest value the network sees, like the zero padding of an unnormalised
   image); the mask is interpolated linearly and thresholded at 0.5. The resampler travels with
   the slices (:class:`ClassifierSlices`), so a per-slice map (Grad-CAM) returns to the image by
   its exact inverse.

   With ``centred_on: "lesion"`` (the lesion-ROI contract), the fixed grid (``spatial_size``
   pixels of ``spacing_mm``) is centred on the centre of the lesion's bounding box in the
   (A-P, S-I) plane, over every lesion voxel of the subject, and is the same for all its slices:
   the network sees the lesion and the cord and spine around it at a fixed scale, whatever the
   field of view (:func:`lesion_centre_mm`).

Only numpy and scipy are used (numpy 1.x and 2.x), so the same function serves ONNX Runtime
inference and PyTorch training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sct_lesion_classify.errors import InputError, ModelError
from sct_lesion_classify.io.resample import SliceResampler
from sct_lesion_classify.modelpkg.card import InputSpec
from sct_lesion_classify.runtime.preprocess import CanonicalVolume, input_resampler, normalize

#: Name of a classifier's first input channel when the model takes a contrast-enhanced T1w.
T1C_CHANNEL = "cT1w"
#: Channel names of the classifier input, in order (``input.channels[i].name`` of the card).
#: The first one is :data:`T1C_CHANNEL` for a model that uses the contrast-enhanced T1w and
#: ``"zeros"`` for a T2w-only model (the channel is then all zeros, as in the paper).
CHANNEL_NAMES = (T1C_CHANNEL, "T2w", "lesion_mask")
T2W_ONLY_CHANNEL_NAMES = ("zeros", "T2w", "lesion_mask")

#: Largest difference of voxel size (mm) between the T2w and the cT1w image on its grid.
_ZOOMS_ATOL_MM = 1e-2


def takes_t1c(spec: InputSpec) -> bool:
    """Whether a classifier card's first input channel is the contrast-enhanced T1w (else zeros)."""
    return spec.channels[0].name == T1C_CHANNEL


@dataclass(frozen=True)
class ClassifierSlices:
    """The classifier input of one subject, with the geometry it was cut from.

    Attributes
    ----------
    batch
        float32 ``(N, 3, H, W)``: channels :data:`CHANNEL_NAMES`, ``H, W = spatial_size``.
    slice_indices
        The canonical sagittal index (axis 0) of each of the ``N`` slices, ascending.
    lesion_area_mm2
        Lesion area of each slice used, in mm2 (same order).
    resampler
        The resampling from the image's slices to ``(H, W)``; its ``backward`` is the exact
        inverse (used by :func:`~sct_lesion_classify.classify.gradcam.cam_volume`).
    volume_shape
        Canonical shape of the image the slices were cut from.
    fallback
        True when no slice reached ``min_lesion_area_mm2`` and the largest slice(s) were used.
    """

    batch: np.ndarray = field(repr=False)
    slice_indices: tuple[int, ...]
    lesion_area_mm2: tuple[float, ...]
    resampler: SliceResampler
    volume_shape: tuple[int, int, int]
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


def lesion_centre_mm(lesion_mask: np.ndarray, zooms_mm: tuple[float, float, float]
                     ) -> tuple[float, float] | None:
    """Centre of the lesion's bounding box in the sagittal plane, (A-P, S-I) in mm from the outer
    edge of the first pixel (the frame of :class:`~sct_lesion_classify.io.resample.SliceResampler`);
    None for an empty mask."""
    mask = np.asarray(lesion_mask) > 0
    centre = []
    for axis, other in ((1, (0, 2)), (2, (0, 1))):
        present = np.flatnonzero(mask.any(axis=other))
        if present.size == 0:
            return None
        centre.append((present[0] + present[-1] + 1) / 2.0 * float(zooms_mm[axis]))
    return (float(centre[0]), float(centre[1]))


def check_classifier_input(spec: InputSpec) -> None:
    """Raise ModelError unless ``spec`` is the classifier contract: channels and a fixed size."""
    names = tuple(channel.name for channel in spec.channels)
    if names not in (CHANNEL_NAMES, T2W_ONLY_CHANNEL_NAMES):
        raise ModelError(f"classifier input channels must be {list(CHANNEL_NAMES)} or "
                         f"{list(T2W_ONLY_CHANNEL_NAMES)}, the card says {list(names)}")
    if spec.spatial_size is None:
        raise ModelError("a classifier card needs input.spatial_size (e.g. [256, 256])")
    if spec.centred_on is not None and spec.spacing_mm is None:
        raise ModelError("a classifier card centred on the lesion needs input.spacing_mm")


def _check_grids(t2w: np.ndarray, lesion_mask: np.ndarray, t1c: CanonicalVolume | None,
                 t2w_zooms: tuple[float, float, float]) -> None:
    """Raise InputError unless the mask and the cT1w lie on the T2w's 3D grid."""
    if t2w.ndim != 3:
        raise InputError(f"T2w image must be 3D, got shape {t2w.shape}")
    t1c_data = None if t1c is None else t1c.data
    for name, array in (("lesion mask", lesion_mask), ("cT1w image", t1c_data)):
        if array is not None and tuple(np.shape(array)) != t2w.shape:
            raise InputError(f"{name} shape {tuple(np.shape(array))} differs from the T2w shape "
                             f"{t2w.shape}")
    if t1c is not None and not np.allclose(t1c.zooms, t2w_zooms, rtol=0.0, atol=_ZOOMS_ATOL_MM):
        raise InputError(f"cT1w voxel size {tuple(t1c.zooms)} mm differs from the T2w voxel size "
                         f"{tuple(t2w_zooms)} mm")


def build_classifier_slices(
    t2w: CanonicalVolume,
    lesion_mask: np.ndarray,
    spec: InputSpec,
    t1c: CanonicalVolume | None = None,
) -> ClassifierSlices:
    """Build the classifier input of one subject (see the module docstring for the rules).

    Parameters
    ----------
    t2w
        T2w image, canonical orientation (axis 0 = right-left: ``t2w.data[i]`` is a sagittal
        slice), with its voxel size (an ``io.image.Image``, or a ``runtime.preprocess.Volume``).
    lesion_mask
        Lesion mask on the T2w's grid (anything > 0 is lesion).
    spec
        The card's ``input`` section: ``channels``, ``spatial_size``, ``spacing_mm``,
        ``normalization`` (``method``, ``clip``, ``rescale``), ``min_lesion_area_mm2``.
    t1c
        Optional contrast-enhanced T1w on the T2w's grid, used when the card's first channel is
        :data:`T1C_CHANNEL`; the first channel is zeros without it, and always for a ``"zeros"``
        card.

    Returns
    -------
    ClassifierSlices
        ``N = 0`` slices when the mask is empty.

    Raises
    ------
    InputError
        Arrays not 3D, or of other shapes or voxel sizes than the T2w.
    ModelError
        A card whose input is not this contract (channels, spatial size, normalization).
    """
    data = np.asarray(t2w.data)
    _check_grids(data, lesion_mask, t1c, t2w.zooms)
    check_classifier_input(spec)
    if not takes_t1c(spec):
        t1c = None
    centre = lesion_centre_mm(lesion_mask, t2w.zooms) if spec.centred_on == "lesion" else None
    resampler = input_resampler(spec, t2w, centre_mm=centre)
    indices, areas, fallback = lesion_slices(lesion_mask, t2w.zooms, spec.min_lesion_area_mm2)
    batch = np.zeros((len(indices), len(CHANNEL_NAMES)) + resampler.out_shape, dtype=np.float32)
    geometry = {"resampler": resampler, "volume_shape": tuple(int(n) for n in data.shape)}
    if not indices:
        return ClassifierSlices(batch, (), (), fallback=False, **geometry)

    rescale = spec.normalization.rescale
    pad_value = float(rescale[0]) if rescale is not None else 0.0
    chosen = list(indices)
    if t1c is not None:
        t1c_norm = normalize(t1c.data, spec.normalization)
        batch[:, 0] = resampler.forward(t1c_norm[chosen], order=1, cval=pad_value)
    t2w_norm = normalize(data, spec.normalization)
    batch[:, 1] = resampler.forward(t2w_norm[chosen], order=1, cval=pad_value)
    mask = (np.asarray(lesion_mask) > 0).astype(np.float32)
    batch[:, 2] = resampler.forward(mask[chosen], order=1, cval=0.0) >= 0.5
    return ClassifierSlices(batch, indices, areas, fallback=fallback, **geometry)
