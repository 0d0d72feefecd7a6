"""Cord localization, three ways: the user's mask (``-s``), SCT itself, or the bundled localizer.

Whatever the source, the result is a :class:`CordLocalization`: a boolean mask on the canonical
grid of the image, where it came from, and the warnings worth passing to the user.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from sct_lesion_classify.errors import InputError, ModelError, ProcessingError
from sct_lesion_classify.io.image import Image, load_mask
from sct_lesion_classify.masks import CONNECTIVITY_26, bounding_box, count_components
from sct_lesion_classify.modelpkg.package import ModelPackage
from sct_lesion_classify.runtime.sagittal import SagittalSegmenter
from sct_lesion_classify.runtime.session import Predictor

logger = logging.getLogger(__name__)

#: Sources of a cord mask, as reported in outputs.
SOURCES = ("user", "builtin", "sct")


@dataclass(frozen=True)
class CordLocalization:
    """A cord mask on the canonical grid of an image.

    Attributes
    ----------
    mask
        Boolean cord mask, canonical axes.
    source
        ``"user"`` (``-s``), ``"builtin"`` (the bundled localizer) or ``"sct"``.
    path
        The file the mask was read from, if any.
    warnings
        Messages for the user (binarized mask, several pieces, ...).
    pieces, kept_share
        Separate 3D pieces found (of the localizer's thresholded output, or of the given mask) and
        the share of their voxels the mask keeps (the trust checks read them).
    """

    mask: np.ndarray
    source: str
    path: Path | None = None
    warnings: tuple[str, ...] = ()
    pieces: int = 1
    kept_share: float = 1.0


def cord_from_mask_file(path: str | Path, image: Image, *, source: str = "user") -> CordLocalization:
    """Read a cord mask that lies on ``image``'s grid.

    Raises
    ------
    InputError
        Unreadable mask, another grid than the image, or an empty mask.
    """
    mask, warnings = load_mask(path, image.grid, what="cord mask")
    if not mask.any():
        raise InputError(f"{path}: cord mask is empty (no voxel > 0)")
    pieces, warning = _fragment_warning(mask, f"cord mask {path}")
    return CordLocalization(mask=mask, source=source, path=Path(path), warnings=(*warnings, *warning),
                            pieces=pieces)


def cord_from_probabilities(probabilities: np.ndarray, image: Image, *, threshold: float = 0.5) -> CordLocalization:
    """Turn the localizer's cord probabilities into a mask: threshold, largest 3D component.

    Raises
    ------
    ProcessingError
        When no voxel passes the threshold (no cord found).
    """
    mask = probabilities > threshold
    box = bounding_box(mask)  # labelled inside it: the same pieces, in the same scan order
    labels, count = (None, 0) if box is None else ndimage.label(mask[box], structure=CONNECTIVITY_26)
    if count == 0:
        raise ProcessingError(
            f"{image.path}: no spinal cord found by the builtin localizer; give a cord mask with -s "
            "(e.g. from 'sct_deepseg spinalcord') or try -cord-method sct")
    warnings = []
    kept = 1.0
    if count > 1:
        sizes = np.bincount(labels.ravel())[1:]
        largest = int(np.argmax(sizes)) + 1
        kept = sizes[largest - 1] / sizes.sum()
        mask = np.zeros(mask.shape, dtype=bool)
        mask[box] = labels == largest
        if kept < 0.9:
            warnings.append(f"the builtin cord localizer found {count} separate pieces; kept the largest "
                            f"({kept:.0%} of the voxels): check the cord mask (-save-cord 1)")
    return CordLocalization(mask=mask, source="builtin", warnings=tuple(warnings), pieces=int(count),
                            kept_share=float(kept))


def _fragment_warning(mask: np.ndarray, what: str) -> tuple[int, list[str]]:
    count = count_components(mask)
    return count, ([f"{what} has {count} separate pieces"] if count > 1 else [])


class BuiltinCordLocalizer:
    """The bundled cord localizer (a 2D U-Net on sagittal slices), built once, reused per image.

    Parameters
    ----------
    package
        A verified package whose card has ``task == "cord_localization"``.
    threads
        ONNX Runtime intra-op threads (default: the usable cores).
    """

    def __init__(self, package: ModelPackage, *, threads: int | None = None) -> None:
        if package.card.task != "cord_localization":
            raise ModelError(f"{package.folder}: model {package.card.name} is a {package.card.task} "
                             "model, not a cord localizer")
        self.package = package
        self._segmenter = SagittalSegmenter(Predictor.create(package, threads=threads))

    def localize(self, image: Image) -> CordLocalization:
        """The cord mask of ``image`` (threshold of the card, largest 3D component)."""
        probabilities = self._segmenter.probabilities(image)
        threshold = self.package.card.postprocessing.threshold
        return cord_from_probabilities(probabilities, image, threshold=threshold)
