"""A card's input contract applied to a canonical volume: its intensities and the network's grid.

Every network of the pipeline sees sagittal slices (canonical ``data[i]``: axes anterior-posterior
and superior-inferior). Two things of the card's ``input`` section
(:class:`~sct_lesion_classify.modelpkg.card.InputSpec`) turn a volume into what a network sees,
and they are written here once for the segmentation models and the classifiers alike:

- :func:`normalize`: the intensity normalization (``input.normalization``), over the whole volume;
- :func:`input_resampler`: the in-plane resampling of the slices to the network's grid
  (``input.spatial_size``, ``input.spacing_mm``, ``input.size_divisible_by``), whose ``backward``
  puts a network output back on the volume's slices.

A volume travels with its voxel size (:class:`CanonicalVolume`): an
:class:`~sct_lesion_classify.io.image.Image`, or a :class:`Volume` for an array without a file of
its own (a crop, a training array).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.io.resample import SliceResampler
from sct_lesion_classify.modelpkg.card import InputSpec, Normalization


class CanonicalVolume(Protocol):
    """What the runtime needs of an image: canonical voxels and their size.

    :class:`sct_lesion_classify.io.image.Image` is one; so is :class:`Volume`.
    """

    @property
    def data(self) -> np.ndarray:
        """Voxel values, canonical axes (``data[i]`` is sagittal slice ``i``)."""

    @property
    def zooms(self) -> tuple[float, float, float]:
        """Voxel size in mm along the canonical axes."""


@dataclass(frozen=True)
class Volume:
    """A canonical array and its voxel size, for an array that is not a loaded image.

    Attributes
    ----------
    data
        Voxel values, canonical axes (see ``io.image``).
    zooms
        Voxel size in mm along the canonical axes (right-left, anterior-posterior,
        inferior-superior).
    """

    data: np.ndarray = field(repr=False)
    zooms: tuple[float, float, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "zooms", tuple(float(z) for z in self.zooms))

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`data`."""
        return tuple(self.data.shape)


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


def input_resampler(spec: InputSpec, volume: CanonicalVolume,
                    centre_mm: tuple[float, float] | None = None) -> SliceResampler:
    """The resampling from ``volume``'s sagittal slices to the network's grid, as the card says.

    - ``spatial_size`` and ``spacing_mm``: ``spatial_size`` pixels of ``spacing_mm``, centred on
      the slice's field of view, or on ``centre_mm`` when given (a card with
      ``centred_on: "lesion"``: the caller passes the lesion's centre);
    - ``spatial_size`` only: the field of view padded (centred) to the aspect of
      ``spatial_size`` and resized to it, so pixels stay square (the classifiers: "padded to a
      square then resized");
    - ``spacing_mm`` only: the field of view at that spacing, padded to a multiple of
      ``size_divisible_by`` (the segmentation models: any image size).

    Its ``backward`` is the exact inverse (probabilities, class-activation maps).

    Parameters
    ----------
    centre_mm
        (A-P, S-I) position of the grid's centre in mm from the outer edge of the slice's first
        pixel; only for a fixed grid (``spatial_size`` and ``spacing_mm``).

    Raises
    ------
    ModelError
        The card gives neither ``spatial_size`` nor ``spacing_mm``, or ``centre_mm`` is given for
        a grid that is not fixed.
    """
    slice_shape = tuple(volume.data.shape[1:3])
    slice_spacing_mm = (volume.zooms[1], volume.zooms[2])
    fixed_grid = spec.spatial_size is not None and spec.spacing_mm is not None
    if centre_mm is not None and not fixed_grid:
        raise ModelError("a grid centre needs input.spatial_size and input.spacing_mm")
    if spec.spatial_size is not None:
        if spec.spacing_mm is None:
            return SliceResampler.to_size(slice_shape, slice_spacing_mm, spec.spatial_size,
                                          keep_aspect=True)
        start = None if centre_mm is None else tuple(
            float(c) - n * d / 2.0 for c, n, d in zip(centre_mm, spec.spatial_size, spec.spacing_mm))
        return SliceResampler(slice_shape, slice_spacing_mm, spec.spatial_size, spec.spacing_mm,
                              out_start_mm=start)
    if spec.spacing_mm is None:
        raise ModelError("the card gives neither input.spacing_mm nor input.spatial_size")
    return SliceResampler.to_spacing(slice_shape, slice_spacing_mm, spec.spacing_mm,
                                     divisible_by=spec.size_divisible_by)
