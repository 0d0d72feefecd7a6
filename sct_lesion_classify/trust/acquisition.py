"""The model cards' ``training_data`` section: the acquisitions a model was trained on.

``train`` calls :func:`training_data_ranges` on its training subjects (the T2w image and its
ground-truth cord mask) and writes the result into the new card; at inference
:func:`card_ranges` reads it back for the acquisition checks. Both measure with
:func:`sct_lesion_classify.trust.measures.acquisition_measures`, so they compare like with like.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Iterable

from sct_lesion_classify.modelpkg.card import ModelCard, TrainingDataRanges, ValueRange
from sct_lesion_classify.trust.measures import AcquisitionMeasures, acquisition_measures
from sct_lesion_classify.trust.ranges import Range

logger = logging.getLogger(__name__)

MEASURES = tuple(f.name for f in dataclasses.fields(AcquisitionMeasures))


def ranges_of(measures: Iterable[AcquisitionMeasures]) -> TrainingDataRanges:
    """The smallest and largest value of each measure (NaNs left out) over ``measures``.

    Raises
    ------
    ValueError
        No measures, or a measure that is NaN for every subject.
    """
    measures = list(measures)
    if not measures:
        raise ValueError("no training subjects to measure")
    bounds = {}
    for name in MEASURES:
        values = [getattr(m, name) for m in measures if not math.isnan(getattr(m, name))]
        if not values:
            raise ValueError(f"{name}: not measurable on any training subject")
        bounds[name] = ValueRange(min=round(float(min(values)), 4), max=round(float(max(values)), 4))
    return TrainingDataRanges(subjects=len(measures), **bounds)


def subject_measures(subject: Any) -> AcquisitionMeasures:
    """The acquisition measures of one BIDS subject (T2w and ground-truth cord mask)."""
    from sct_lesion_classify.io.image import load_image, load_mask

    image = load_image(subject.t2w, what=f"{subject.participant_id} T2w image")
    cord = None
    if subject.cord_mask is not None:
        cord, _ = load_mask(subject.cord_mask, image.grid, what=f"{subject.participant_id} cord mask")
    return acquisition_measures(image.data, image.zooms, cord)


def training_data_ranges(subjects: Iterable[Any]) -> TrainingDataRanges:
    """The card's ``training_data`` section for the training subjects (``io.bids.BidsSubject``)."""
    return ranges_of(subject_measures(subject) for subject in subjects)


def card_ranges(card: ModelCard) -> dict[str, Range]:
    """Measure -> trained range of a card; empty when the card has no ``training_data``."""
    if card.training_data is None:
        return {}
    return {name: Range(getattr(card.training_data, name).min, getattr(card.training_data, name).max)
            for name in MEASURES}
