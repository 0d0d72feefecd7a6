"""Running a 2D segmentation package on the sagittal slices of a volume, as its card says.

The card's input contract (``input.normalization``, ``input.spacing_mm`` or ``spatial_size``,
``size_divisible_by``) is applied by :func:`prepare_slices`, which training uses too, so a
network sees the same slices when it is trained and when it runs. Its ``input.channels`` say which
slices each network input holds (:func:`slice_offsets`): the slice itself (``T2w``) and, for a
2.5D package, its sagittal neighbours as further channels (``T2w_sagittal-1``,
``T2w_sagittal+1``), gathered by :class:`SliceStack`, which training uses too.
:class:`SagittalSegmenter` batches the slices through one reused ONNX Runtime session and puts
the probabilities back on the volume's grid (the exact inverse of the resampling).
"""

from __future__ import annotations

import functools
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
from scipy import ndimage

from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.io.resample import SliceResampler
from sct_lesion_classify.modelpkg.card import InputSpec
from sct_lesion_classify.runtime.preprocess import CanonicalVolume, input_resampler, normalize
from sct_lesion_classify.runtime.session import Predictor
from sct_lesion_classify.runtime.tiling import Tile, plan_tiles

logger = logging.getLogger(__name__)

#: In-plane 3x3 neighbourhood of a ``(N, H, W)`` stack (nothing across slices).
_IN_PLANE_SQUARE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE_SQUARE[1] = True

#: A segmentation package's input channel: the T2w slice itself, or the slice ``k`` sagittal
#: slices away along the canonical array's first (right-left) axis.
_T2W_CHANNEL = re.compile(r"^T2w(?:_sagittal([+-][1-9][0-9]*))?$")


def neighbour_channel_name(offset: int) -> str:
    """The card's name of the channel that holds the slice ``offset`` slices away (0: ``T2w``)."""
    return "T2w" if offset == 0 else f"T2w_sagittal{offset:+d}"


def slice_offsets(spec: InputSpec) -> tuple[int, ...]:
    """The sagittal offset of each input channel of a segmentation package, in channel order.

    ``T2w`` is the slice itself (offset 0); ``T2w_sagittal-1`` and ``T2w_sagittal+1`` its
    neighbours one slice away along the canonical first axis, and so on.

    Raises
    ------
    ModelError
        A channel of another name, no ``T2w`` channel, or one slice in two channels.
    """
    offsets = []
    for channel in spec.channels:
        match = _T2W_CHANNEL.match(channel.name)
        if match is None:
            raise ModelError(f"input channel {channel.name!r}: a segmentation package's channels are "
                             "'T2w' and its sagittal neighbours ('T2w_sagittal-1', 'T2w_sagittal+1', ...)")
        offsets.append(int(match.group(1) or 0))
    if 0 not in offsets or len(set(offsets)) != len(offsets):
        raise ModelError(f"input channels {[c.name for c in spec.channels]}: need the 'T2w' slice once "
                         "and each neighbour at most once")
    return tuple(offsets)


@dataclass(frozen=True)
class SliceStack:
    """Prepared slices ``(N, H, W)`` and the sagittal offsets a package reads as its channels.

    A neighbour beyond the first or the last slice is filled with the smallest value of the
    prepared slices (the normalized background), the same in training and at inference.
    """

    slices: np.ndarray
    offsets: tuple[int, ...] = (0,)

    @functools.cached_property
    def fill(self) -> float:
        """The value of a neighbour beyond the stack: the smallest value of the slices."""
        return float(self.slices.min()) if self.slices.size else 0.0

    def channels(self, index: int, window: tuple[slice, slice] = (slice(None), slice(None))) -> np.ndarray:
        """``(C, h, w)`` float32: the ``window`` of slice ``index + offset`` for each offset."""
        if self.offsets == (0,):
            return self.slices[(index,) + window][None]
        parts = []
        for offset in self.offsets:
            neighbour = index + offset
            if 0 <= neighbour < self.slices.shape[0]:
                parts.append(self.slices[(neighbour,) + window])
            else:
                parts.append(np.full_like(self.slices[(index,) + window], self.fill))
        return np.stack(parts)

    def batch(self, indices: Iterable[int],
              windows: Sequence[tuple[slice, slice]] | None = None) -> np.ndarray:
        """``(n, C, h, w)`` float32: :meth:`channels` of each index (and window, when given)."""
        indices = list(indices)
        if not indices:
            return np.empty((0, len(self.offsets)) + self.slices.shape[1:], dtype=self.slices.dtype)
        if self.offsets == (0,) and windows is None and indices == list(range(indices[0], indices[-1] + 1)):
            return self.slices[indices[0]:indices[-1] + 1, None]  # a view: no copy for 2D packages
        windows = windows or [(slice(None), slice(None))] * len(indices)
        return np.stack([self.channels(index, window) for index, window in zip(indices, windows)])


def prepare_slices(volume: CanonicalVolume, spec: InputSpec, *,
                   threads: int = 1) -> tuple[np.ndarray, SliceResampler]:
    """Normalize a canonical volume and resample its sagittal slices to the network's grid.

    Returns the slices as an (N, H, W) float32 array (one per sagittal slice,
    N = ``volume.data.shape[0]``) and the resampler (:func:`~.preprocess.input_resampler`) whose
    ``backward`` puts network outputs back on the volume's slices. Padding added for
    ``size_divisible_by`` takes the normalized background (the minimum). ``threads``: slices
    resampled at once (the result does not depend on it).
    """
    normalized = normalize(volume.data, spec.normalization)
    resampler = input_resampler(spec, volume)
    slices = resampler.forward(normalized, order=1, cval=float(normalized.min()), threads=threads)
    return slices, resampler


@dataclass(frozen=True)
class SagittalSegmenter:
    """A segmentation package run slice by slice; build once, reuse.

    Its input channels are the T2w slice and, for a 2.5D package, its sagittal neighbours
    (:func:`slice_offsets`).

    Attributes
    ----------
    predictor
        The package's ONNX Runtime session.
    batch_pixels
        Slices (or tiles) of one shape go through the network together while their pixels stay
        within this count; one at a time when a single one is larger. Small batches of large
        slices are both faster and lighter on this CPU: at 512x512x15 (tiles of about 61 k pixels,
        localizer slices of 102 k) one per call instead of 8 took the lesion network from 1.48 s
        to 1.21 s and the localizer from 0.36 s to 0.22 s (medians of 6, interleaved), and the
        peak RSS of the whole pipeline from 661 MB to 387 MB (ONNX Runtime's arena holds the
        activations of the largest batch).
    """

    predictor: Predictor
    batch_pixels: int = 2 ** 16
    offsets: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        card = self.predictor.package.card
        try:
            offsets = slice_offsets(card.input)
        except ModelError as error:
            raise ModelError(f"model {card.name}: {error}") from None
        object.__setattr__(self, "offsets", offsets)

    def probabilities(self, volume: CanonicalVolume, region: np.ndarray | None = None,
                      context_mm: float = 0.0) -> np.ndarray:
        """Foreground probability of every voxel of a canonical volume (float32, its shape).

        With ``region`` (boolean, the volume's shape) only the voxels of the region get a
        prediction and the others are 0: the network runs on tiles that follow the region
        (:func:`~sct_lesion_classify.runtime.tiling.plan_tiles`), each seeing at least
        ``context_mm`` of image above and below what it keeps. The normalization still uses the
        whole volume, as the card says. A fixed-size model (``input.spatial_size``) always sees
        whole slices.
        """
        card = self.predictor.package.card
        if region is not None:
            region = np.asarray(region, dtype=bool)
            if region.shape != np.shape(volume.data):
                raise ValueError(f"region shape {region.shape} differs from the volume's "
                                 f"{np.shape(volume.data)}")
        threads = self.predictor.threads
        slices, resampler = prepare_slices(volume, card.input, threads=threads)
        stack = SliceStack(slices, self.offsets)
        if region is None or card.input.spatial_size is not None:
            outputs = np.empty(slices.shape, dtype=np.float32)
            step = self._per_batch(slices.shape[1:])
            for start in range(0, slices.shape[0], step):
                indices = range(start, min(start + step, slices.shape[0]))
                outputs[start:start + step] = self._foreground(stack.batch(indices))
        else:
            outputs = self._tiled(stack, resampler, region, context_mm)
        probabilities = resampler.backward(outputs, order=1, threads=threads)
        np.clip(probabilities, 0.0, 1.0, out=probabilities)
        if region is not None:
            probabilities[~region] = 0.0
        return probabilities

    def _per_batch(self, shape: tuple[int, int]) -> int:
        """How many slices of ``shape`` (H, W) one network call takes (at least one)."""
        return max(1, self.batch_pixels // max(1, shape[0] * shape[1]))

    def _foreground(self, batch: np.ndarray) -> np.ndarray:
        """Foreground probabilities ``(n, H, W)`` of network inputs ``(n, C, H, W)``."""
        result = self.predictor.predict(batch)
        scores = result[:, self._foreground_channel(result.shape[1])]
        if self.predictor.package.card.output.activation == "none":  # logits: no activation in the graph
            scores = 1.0 / (1.0 + np.exp(-scores))
        return scores

    def _tiled(self, stack: SliceStack, resampler: SliceResampler, region: np.ndarray,
               context_mm: float) -> np.ndarray:
        """Probabilities on the model grid, computed only on tiles covering the region (0 elsewhere)."""
        card = self.predictor.package.card
        needed = resampler.forward(region.astype(np.float32), order=1, threads=self.predictor.threads) > 0
        # one more model pixel around, so the linear interpolation back to the image grid reads
        # only computed pixels for every voxel of the region
        needed = ndimage.binary_dilation(needed, structure=_IN_PLANE_SQUARE)
        context_px = int(math.ceil(context_mm / resampler.out_spacing_mm[1] - 1e-6))
        tiles = plan_tiles(needed, context_px=context_px, divisor=card.input.size_divisible_by)
        slices = stack.slices
        outputs = np.zeros(slices.shape, dtype=np.float32)
        by_shape: dict[tuple[int, int], list[Tile]] = {}
        for tile in tiles:
            by_shape.setdefault(tile.window_shape, []).append(tile)
        for shape, group in by_shape.items():
            step = self._per_batch(shape)
            for start in range(0, len(group), step):
                chunk = group[start:start + step]
                batch = stack.batch([tile.slice_index for tile in chunk], [tile.window for tile in chunk])
                for tile, result in zip(chunk, self._foreground(batch)):
                    outputs[(tile.slice_index,) + tile.core] = result[tile.core_in_window]
        logger.debug("%d tiles of %d pixels in all, for %d pixels of whole slices", len(tiles),
                     sum(t.window_shape[0] * t.window_shape[1] for t in tiles), slices.size)
        return outputs

    def _foreground_channel(self, n_output_channels: int) -> int:
        """One output channel is the foreground probability; with several, the positive class's."""
        output = self.predictor.package.card.output
        if n_output_channels == 1 or output.positive_class is None:
            return 0
        return output.classes.index(output.positive_class)
