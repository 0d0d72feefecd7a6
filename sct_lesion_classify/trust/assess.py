"""The trust checks of one result, combined into one level: ``ok``, ``review`` or ``unreliable``.

:func:`segmentation_checks` needs what ``sct_deepseg_imlesion`` has (image, cord, lesion mask,
the packages' cards); :func:`classification_checks` adds what the classifiers said.
:func:`assess` turns the checks that fired into a :class:`TrustAssessment`: the level is the
most severe of them (``ok`` when none fired).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np

from sct_lesion_classify.trust import checks
from sct_lesion_classify.trust.acquisition import card_ranges
from sct_lesion_classify.trust.checks import REVIEW, UNRELIABLE, TrustCheck
from sct_lesion_classify.trust.measures import acquisition_measures, cord_profile, lesion_measures
from sct_lesion_classify.trust.ranges import THRESHOLDS, Thresholds

if TYPE_CHECKING:
    from sct_lesion_classify.classify.diagnosis import ClassifierResult, Diagnosis
    from sct_lesion_classify.cord.localize import CordLocalization
    from sct_lesion_classify.modelpkg.package import ModelPackage

OK = "ok"
LEVELS = (OK, REVIEW, UNRELIABLE)


@dataclass(frozen=True)
class TrustAssessment:
    """The checks that fired on one result, and the overall level.

    Attributes
    ----------
    level
        ``ok`` (no check fired, or only ``info`` ones), ``review`` (look at the QC before using the result) or
        ``unreliable`` (the input or the masks are not what the models can read).
    checks
        The checks that fired, in pipeline order.
    """

    level: str
    checks: tuple[TrustCheck, ...]

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"unknown trust level {self.level!r}")

    @property
    def codes(self) -> tuple[str, ...]:
        """The codes of the checks that fired (each once, in order)."""
        return tuple(dict.fromkeys(check.code for check in self.checks))

    def to_json(self) -> dict:
        """The ``trust`` section of the diagnosis JSON and of the segmentation sidecar."""
        return {"level": self.level, "checks": [check.to_json() for check in self.checks]}


def assess(fired: Iterable[TrustCheck | None]) -> TrustAssessment:
    """The assessment of the checks that fired (None entries are checks that passed); ``info``
    checks are kept but leave the level ``ok``."""
    kept = tuple(check for check in fired if check is not None)
    severities = {check.severity for check in kept}
    level = UNRELIABLE if UNRELIABLE in severities else REVIEW if REVIEW in severities else OK
    return TrustAssessment(level=level, checks=kept)


def segmentation_checks(image: np.ndarray, zooms_mm: Sequence[float], cord: CordLocalization | None,
                        lesion_mask: np.ndarray, packages: Sequence[ModelPackage] = (),
                        limits: Thresholds = THRESHOLDS) -> list[TrustCheck | None]:
    """The cord, lesion and acquisition checks (canonical arrays; ``packages``: the cards to
    compare the acquisition with, the first one with ``training_data`` answering each measure)."""
    zooms = tuple(float(z) for z in zooms_mm)
    fired: list[TrustCheck | None] = []
    cord_mask = None if cord is None else cord.mask
    if cord is not None:
        fired.append(checks.cord_fragmented(cord.pieces, cord.kept_share, limits))
        profile = cord_profile(cord.mask, zooms, lesion_mask, image)
        if profile is not None:
            fired += [checks.cord_size_implausible(profile), checks.cord_coverage_low(profile, limits),
                      checks.cord_gap(profile, limits)]
    lesion = lesion_measures(lesion_mask, cord_mask, zooms)
    if lesion is not None:
        fired += [checks.lesion_larger_than_cord(lesion, limits), checks.lesion_outside_cord(lesion, limits),
                  checks.lesion_many_components(lesion.components, limits), checks.lesion_at_fov_edge(lesion)]
    fired += acquisition_checks(image, zooms, cord_mask, packages, limits)
    return fired


def acquisition_checks(image: np.ndarray, zooms_mm: Sequence[float], cord_mask: np.ndarray | None,
                       packages: Sequence[ModelPackage], limits: Thresholds = THRESHOLDS) -> list[TrustCheck]:
    """The image against the ``training_data`` of the packages' cards (none without that section)."""
    measured = acquisition_measures(image, tuple(zooms_mm), cord_mask)
    fired: dict[str, TrustCheck] = {}
    for package in packages:
        for check in checks.acquisition_checks(measured, card_ranges(package.card), package.name, limits):
            fired.setdefault(check.code, check)
    return list(fired.values())


def classification_checks(results: Mapping[str, ClassifierResult], diagnosis: Diagnosis | None,
                          limits: Thresholds = THRESHOLDS) -> list[TrustCheck | None]:
    """Slice spread of each classifier, model 1 against models 2/3, and the low-confidence bands."""
    from sct_lesion_classify.classify.diagnosis import DECIDING_ROLE, GROUP_OF

    fired: list[TrustCheck | None] = [checks.slice_spread(role, result.slice_probabilities, limits)
                                      for role, result in results.items()]
    if diagnosis is None:
        return fired
    fired.append(checks.group_disagreement(diagnosis.group, GROUP_OF[diagnosis.most_likely_class]))
    fired += [checks.low_confidence_band(name, probability, diagnosis.low_confidence_bands[DECIDING_ROLE[name]])
              for name, probability in diagnosis.deciding_probabilities.items()]
    return fired
