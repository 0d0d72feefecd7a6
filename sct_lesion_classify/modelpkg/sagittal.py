"""Running a 2D segmentation package on the sagittal slices of a volume, as its card says.

The card's input contract (``input.normalization``, ``input.spacing_mm`` or ``spatial_size``,
``size_divisible_by``) is applied by :func:`prepare_slices`, which training uses too, so a
network sees the same slices when it is trained and when it runs. :class:`SagittalSegmenter`
batches the slices through one reused ONNX Runtime session and puts the probabilities back on the
volume's grid (the exact inverse of the resampling).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.io.resample import SliceResampler
from sct_lesion_classify.modelpkg.card import InputSpec, Normalization
from sct_lesion_classify.modelpkg.session import Predictor

logger = logging.getLogger(__name__)


def normalize(volume: np.ndarray, spec: Normalization) -> np.ndarray:
    """Intensity normalization of a card: ``method``, then ``clip``, then ``rescale``.

    ``zscore`` uses every voxel; ``zscore_nonzero`` the voxels > 0 (air and padding excluded);
    ``minmax`` maps [min, max] to [0, 1]. ``rescale`` maps the ``clip`` range (or, without
    ``clip``, the data range) linearly onto the given range. A constant volume gives zeros
    (before rescaling).
    """
    data = np.asarray(volume, dtype=np.float32)
    if spec.method in ("zscore", "zscore_nonzero"):
        values = data[data > 0] if spec.method == "zscore_nonzero" else data
        if values.size == 0:
            values = data
        mean, std = float(values.mean()), float(values.std())
        out = (data - mean) / std if std > 0 else np.zeros_like(data)
    elif spec.method == "minmax":
        low, high = float(data.min()), float(data.max())
        out = (data - low) / (high - low) if high > low else np.zeros_like(data)
    else:  # the card schema allows no other value
        raise ModelError(f"unknown normalization method {spec.method!r}")
    out = out.astype(np.float32, copy=False)
    if spec.clip is not None:
        np.clip(out, spec.clip[0], spec.clip[1], out=out)
    if spec.rescale is not None:
        low, high = spec.clip if spec.clip is not None else (float(out.min()), float(out.max()))
        scale = (spec.rescale[1] - spec.rescale[0]) / (high - low) if high > low else 0.0
        out = (out - low) * scale + spec.rescale[0]
    return out.astype(np.float32, copy=False)


def slice_resampler(spec: InputSpec, slice_shape: tuple[int, int],
                    slice_spacing_mm: tuple[float, float]) -> SliceResampler:
    """The resampling from a volume's sagittal slices to the network's grid, per the card."""
    if spec.spacing_mm is not None:
        return SliceResampler.to_spacing(slice_shape, slice_spacing_mm, spec.spacing_mm,
                                         divisible_by=spec.size_divisible_by)
    if spec.spatial_size is None:
        raise ModelError("the card gives neither input.spacing_mm nor input.spatial_size")
    return SliceResampler.to_size(slice_shape, slice_spacing_mm, spec.spatial_size)


def prepare_slices(volume: np.ndarray, zooms_mm: tuple[float, float, float],
                   spec: InputSpec) -> tuple[np.ndarray, SliceResampler]:
    """Normalize a canonical volume and resample its sagittal slices to the network's grid.

    Returns the slices as an (N, H, W) float32 array (one per sagittal slice, N = volume.shape[0])
    and the resampler whose ``backward`` puts network outputs back on the volume's slices.
    Padding added for ``size_divisible_by`` takes the normalized background (the minimum).
    """
    normalized = normalize(volume, spec.normalization)
    resampler = slice_resampler(spec, volume.shape[1:3], (zooms_mm[1], zooms_mm[2]))
    slices = resampler.forward(normalized, order=1, cval=float(normalized.min()))
    return slices, resampler


@dataclass(frozen=True)
class SagittalSegmenter:
    """A segmentation package (one input channel) run slice by slice; build once, reuse.

    Attributes
    ----------
    predictor
        The package's ONNX Runtime session.
    batch_size
        Slices per network call.
    """

    predictor: Predictor
    batch_size: int = 8

    def __post_init__(self) -> None:
        card = self.predictor.package.card
        if card.input.n_channels != 1:
            raise ModelError(f"model {card.name}: a segmentation package takes one channel (T2w), "
                             f"its card lists {card.input.n_channels}")

    def probabilities(self, volume: np.ndarray, zooms_mm: tuple[float, float, float]) -> np.ndarray:
        """Foreground probability of every voxel of a canonical volume (float32, same shape)."""
        card = self.predictor.package.card
        slices, resampler = prepare_slices(volume, zooms_mm, card.input)
        outputs = np.empty(slices.shape, dtype=np.float32)
        for start in range(0, slices.shape[0], self.batch_size):
            batch = slices[start:start + self.batch_size, None]
            result = self.predictor.predict(batch)
            outputs[start:start + batch.shape[0]] = result[:, self._foreground_channel(result.shape[1])]
        if card.output.activation == "none":  # logits: the graph applies no activation
            outputs = 1.0 / (1.0 + np.exp(-outputs))
        probabilities = resampler.backward(outputs, order=1)
        return np.clip(probabilities, 0.0, 1.0, out=probabilities)

    def _foreground_channel(self, n_output_channels: int) -> int:
        """One output channel is the foreground probability; with several, the positive class's."""
        output = self.predictor.package.card.output
        if n_output_channels == 1 or output.positive_class is None:
            return 0
        return output.classes.index(output.positive_class)
