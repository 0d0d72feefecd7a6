"""The cascaded lesion segmentation: box around the cord -> MultiResUNet -> postprocessing.

:class:`LesionSegmenter` is built once from a lesion package (one ONNX Runtime session) and
segments any number of images. The crop is the invertible :class:`~sct_lesion_classify.cord.crop.CropBox`,
so the probabilities return to the full canonical grid voxel for voxel. Inside the box the network
runs only on the region within the card's margins of the cord
(:func:`~sct_lesion_classify.cord.crop.region_around`), on tiles that follow the cord
(:mod:`sct_lesion_classify.runtime.tiling`); the voxels of the box outside that region get
probability 0.

The cord constraint: an intramedullary lesion lies inside the cord, so when the card gives
``postprocessing.cord_margin_mm`` the probabilities are also 0 farther than that margin from the
cord (the localizer's, SCT's or the user's ``-s`` mask), measured in mm on the voxel grid
(:func:`~sct_lesion_classify.cord.crop.within_distance`, on the box only). The network still runs
on the whole region of every slice where the constraint keeps a voxel (the others would be all 0),
so the probabilities kept are those it gave without the constraint. A card
without the key (written before it existed) is not constrained beyond the region. With
``-no-crop`` there is no cord: every voxel of the image is segmented and nothing is constrained.
:attr:`LesionSegmentation.searched_region` is the region where a lesion could be found.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from sct_lesion_classify.cord.crop import CropBox, crop_box_around, region_around, within_distance
from sct_lesion_classify.cord.localize import CordLocalization
from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.io.image import Image
from sct_lesion_classify.lesion.postprocess import Postprocessing, postprocess
from sct_lesion_classify.modelpkg.package import ModelPackage
from sct_lesion_classify.runtime.preprocess import Volume
from sct_lesion_classify.runtime.sagittal import SagittalSegmenter
from sct_lesion_classify.runtime.session import Predictor

logger = logging.getLogger(__name__)

#: Image (mm) the lesion network sees above and below the part of each tile it keeps. Measured
#: on 24 held-out phantoms (seed 2002) against segmenting the whole crop box: 20 mm (the card's
#: superior-inferior margin) gave masks with a mean Dice of 0.974 to the whole box's (lowest
#: 0.670), 32 mm 0.982 (lowest 0.818), in the same time.
TILE_CONTEXT_MM = 32.0


@dataclass(frozen=True)
class LesionSegmentation:
    """The result of segmenting one image.

    Attributes
    ----------
    probabilities
        Lesion probability per voxel (float32, full canonical grid; 0 outside
        :attr:`searched_region`, so 0 outside the box).
    mask
        The postprocessed lesion mask (bool), or the soft map (float32) when the threshold is 0;
        0 outside :attr:`searched_region`.
    box
        The crop box around that region (the whole image with ``-no-crop``).
    warnings
        Messages for the user (empty prediction, cord at the edge of the field of view, ...).
    runtime_s
        Seconds per stage (``crop``, ``segment``, ``postprocess``).
    searched_region
        Where a lesion could be found (bool, full canonical grid, for the QC): the region within
        the card's ``input.crop_margins_mm`` of the cord, and within its
        ``postprocessing.cord_margin_mm`` of the cord when the card gives one; the whole image
        with ``-no-crop``. None only for a result built without it.
    cord_margin_mm
        The cord margin that was applied (mm), or None when none was (a card without one, or
        ``-no-crop``).
    """

    probabilities: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    box: CropBox
    warnings: tuple[str, ...]
    runtime_s: dict[str, float]
    searched_region: np.ndarray | None = field(default=None, repr=False)
    cord_margin_mm: float | None = None

    @property
    def is_empty(self) -> bool:
        """Whether no voxel is lesion (for a soft map: no voxel above 0.5)."""
        return not bool((self.mask > 0.5).any() if self.mask.dtype != bool else self.mask.any())


class LesionSegmenter:
    """A lesion segmentation package, ready to segment many images with one session.

    Parameters
    ----------
    package
        A verified package whose card has ``task == "lesion_segmentation"``.
    threads
        ONNX Runtime intra-op threads (default: the usable cores).
    context_mm
        Image seen above and below the kept part of each tile (default
        :data:`TILE_CONTEXT_MM`).
    """

    def __init__(self, package: ModelPackage, *, threads: int | None = None,
                 context_mm: float | None = None) -> None:
        card = package.card
        if card.task != "lesion_segmentation":
            raise ModelError(f"{package.folder}: model {card.name} is a {card.task} model, not a "
                             "lesion segmentation model")
        if card.input.crop_margins_mm is None:
            raise ModelError(f"{package.card_path}: a lesion model card needs input.crop_margins_mm")
        self.package = package
        self.context_mm = float(TILE_CONTEXT_MM if context_mm is None else context_mm)
        self._segmenter = SagittalSegmenter(Predictor.create(package, threads=threads))

    @property
    def predictor(self) -> Predictor:
        """The network's session (one per segmenter, reused for every image)."""
        return self._segmenter.predictor

    @property
    def default_postprocessing(self) -> Postprocessing:
        """The card's postprocessing defaults."""
        return self.package.card.postprocessing

    @property
    def cord_margin_mm(self) -> float | None:
        """The card's ``postprocessing.cord_margin_mm`` (None: no cord constraint)."""
        return self.package.card.postprocessing.cord_margin_mm

    def segment(self, image: Image, cord: CordLocalization | None,
                postprocessing: Postprocessing | None = None) -> LesionSegmentation:
        """Segment the lesion of ``image`` inside the box around ``cord`` (whole image if None).

        The output is 0 outside the region searched: within the card's margins of ``cord``, and
        within its ``postprocessing.cord_margin_mm`` of ``cord`` when it gives one (see the
        module docstring). ``postprocessing`` overrides the card's postprocessing steps; the cord
        margin is always the card's.
        """
        settings = postprocessing or self.default_postprocessing
        runtime: dict[str, float] = {}
        start = time.perf_counter()
        margins = self.package.card.input.crop_margins_mm
        cord_margin = self.cord_margin_mm
        if cord is None:
            box, region, kept = CropBox.full(image.shape), None, None
            if cord_margin is not None:
                logger.info("-no-crop: no cord, so the lesion output is not constrained to within "
                            "%g mm of the cord", cord_margin)
                cord_margin = None
        else:
            box = crop_box_around(cord.mask, image.zooms, margins)
            # the cord lies inside the box, so the region within the box is grown from it alone
            cord_in_box = box.apply(cord.mask)
            region = region_around(cord_in_box, image.zooms, margins)
            kept = region if cord_margin is None else region & within_distance(
                cord_in_box, image.zooms, cord_margin)
        warnings = list(box.warnings)
        cropped = Volume(box.apply(image.data), image.zooms)
        runtime["crop"] = time.perf_counter() - start

        start = time.perf_counter()
        # the network runs on the region (its tiles unchanged), then the constraint zeroes what
        # lies beyond the cord margin: the probabilities kept are the unconstrained ones. Tiles are
        # planned slice by slice, so the slices where the constraint keeps nothing are skipped
        # without changing any other slice's output (at 512x512x15: 13 -> 9 slices, 786 k -> 679 k
        # network pixels).
        box_probabilities = self._segmenter.probabilities(
            cropped, region=None if region is None else _on_slices_of(region, kept),
            context_mm=self.context_mm)
        if kept is not None:
            box_probabilities[~kept] = 0.0
        probabilities = box.invert(box_probabilities, fill=0.0)
        searched_region = (np.ones(image.shape, dtype=bool) if kept is None
                           else box.invert(kept, fill=False))
        runtime["segment"] = time.perf_counter() - start

        start = time.perf_counter()
        mask = postprocess(probabilities, image.zooms, settings)
        if cord_margin is not None:
            mask[~searched_region] = 0  # a hole filled across the edge of the margin stays outside
        runtime["postprocess"] = time.perf_counter() - start
        result = LesionSegmentation(probabilities=probabilities, mask=mask, box=box,
                                    warnings=tuple(warnings), runtime_s=runtime,
                                    searched_region=searched_region, cord_margin_mm=cord_margin)
        if result.is_empty:
            result = dataclasses.replace(result, warnings=result.warnings + (
                f"no lesion found in {image.path}: the mask is empty",))
        logger.debug("segmentation of %s: box %s -> %s, %s", image.path, box.start, box.stop, runtime)
        return result


def _on_slices_of(region: np.ndarray, kept: np.ndarray | None) -> np.ndarray:
    """``region`` on the sagittal slices (axis 0) where ``kept`` has a voxel; all of it without ``kept``."""
    if kept is None:
        return region
    return region & kept.any(axis=(1, 2))[:, None, None]
