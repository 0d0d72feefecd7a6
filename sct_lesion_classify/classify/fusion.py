"""A classifier's decision head: calibration and late fusion with lesion morphometry, as its card says.

The network gives a patient probability ``p`` (the mean of its slice probabilities). The card may
add two optional steps, fitted by ``train`` on the validation split
(:mod:`sct_lesion_classify.train.decision_head`):

- **calibration** (``decision.calibration``, temperature scaling): with the logit
  ``z = logit(p)`` (``p`` clipped to [1e-6, 1 - 1e-6]), the calibrated probability is
  ``sigmoid(z / T)`` (:func:`calibrate`);
- **fusion** (``fusion``): an L2-regularised logistic regression on the calibrated logit
  (``densenet_logit``: ``z / T``, or ``z`` for an uncalibrated model) and the lesion measures of
  :data:`MORPHOMETRY_FEATURES` (:func:`morphometry_features`). A missing measure (NaN) takes the
  card's ``impute`` value; each value is standardised with the card's ``mean`` and ``sd``.

:class:`DecisionHead` applies both; the probability the decision uses is the fused one when the
card has a fusion, else the calibrated one, else the network's (:attr:`HeadProbabilities.decided`).

The morphometry features (one subject; the measures of ``lesion.morphometry``):

=======================  ===========================================================================
``log_total_volume_mm3``  log(1 + total lesion volume in mm3)
``count``                 number of lesions
``max_length_si_mm``      largest superior-inferior extent of a lesion, mm
``vertebral_level``       the largest lesion's level along the spine: the mean SCT label value of the
                          levels it spans (1 = C1 ... 8 = T1 ...), known only with a vertebral label
                          map (``-vert``); NaN when the levels are estimated (the default), so the
                          fit's imputation value. The training datasets have no label maps, so a head
                          fitted on them gives this feature no weight (a constant column).
``eccentricity_ratio``    volume-weighted mean of the lesions' eccentricity ratios (needs a cord)
``intensity_ratio``       volume-weighted mean of the lesion/cord intensity ratios (needs a cord)
=======================  ===========================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.lesion.vertebrae import level_name

if TYPE_CHECKING:
    from sct_lesion_classify.lesion.morphometry import LesionMeasure, LesionMorphometry
    from sct_lesion_classify.modelpkg.card import Calibration, Fusion, ModelCard

#: The fusion feature holding the network's (calibrated) logit.
DENSENET_LOGIT = "densenet_logit"
#: The lesion measures a fusion head may use, in the order :func:`morphometry_features` returns them.
MORPHOMETRY_FEATURES = ("log_total_volume_mm3", "count", "max_length_si_mm", "vertebral_level",
                        "eccentricity_ratio", "intensity_ratio")
#: Every feature name a card's ``fusion.features`` may hold.
FEATURES = (DENSENET_LOGIT, *MORPHOMETRY_FEATURES)
#: Probabilities are clipped to [PROBABILITY_CLIP, 1 - PROBABILITY_CLIP] before their logit.
PROBABILITY_CLIP = 1e-6

#: SCT vertebral label value of each level name (``"C1"`` -> 1, ``"T1"`` -> 8, ``"Co"`` -> 30).
_LEVEL_VALUES = {level_name(value): value for value in range(1, 31)}


def logit(probability):
    """``log(p / (1 - p))`` of ``p`` clipped to [1e-6, 1 - 1e-6] (scalars or arrays)."""
    p = np.clip(np.asarray(probability, dtype=np.float64), PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
    return np.log(p) - np.log1p(-p)


def sigmoid(value):
    """``1 / (1 + exp(-z))``, without overflow (scalars or arrays)."""
    z = np.asarray(value, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def calibrate(probability, temperature: float):
    """Temperature scaling: ``sigmoid(logit(p) / temperature)``."""
    return sigmoid(logit(probability) / float(temperature))


def vertebral_level(lesion: LesionMeasure) -> float:
    """The lesion's mean SCT vertebral label value (1 = C1, 8 = T1, ...); NaN when estimated."""
    if lesion.levels_estimated or not lesion.vertebral_levels:
        return float("nan")
    values = [_LEVEL_VALUES[name] for name in lesion.vertebral_levels if name in _LEVEL_VALUES]
    return float(np.mean(values)) if values else float("nan")


def morphometry_features(morphometry: LesionMorphometry) -> np.ndarray:
    """The :data:`MORPHOMETRY_FEATURES` of one subject (NaN where a measure is unavailable)."""
    lesions = morphometry.lesions
    if not lesions:
        return np.array([0.0, 0.0, 0.0, np.nan, np.nan, np.nan])
    volumes = np.array([lesion.volume_mm3 for lesion in lesions])

    def weighted(values) -> float:
        values = np.array([np.nan if v is None else v for v in values], float)
        keep = ~np.isnan(values)
        return float(np.average(values[keep], weights=volumes[keep])) if keep.any() else float("nan")

    return np.array([
        np.log1p(morphometry.total_volume_mm3),
        float(morphometry.count),
        max(lesion.length_si_mm for lesion in lesions),
        vertebral_level(lesions[0]),
        weighted(lesion.eccentricity_ratio for lesion in lesions),
        weighted(lesion.intensity_ratio for lesion in lesions),
    ])


@dataclass(frozen=True)
class LogisticModel:
    """A fitted logistic regression on standardised features (NaN replaced by ``impute`` first).

    ``probability(x) = sigmoid(((x - mean) / sd) . coefficients + intercept)``.
    """

    impute: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    coefficients: np.ndarray
    intercept: float

    @classmethod
    def of_card(cls, fusion: Fusion) -> "LogisticModel":
        """The card's ``fusion`` regression."""
        return cls(impute=np.asarray(fusion.impute, float), mean=np.asarray(fusion.mean, float),
                   sd=np.asarray(fusion.sd, float), coefficients=np.asarray(fusion.coefficients, float),
                   intercept=float(fusion.intercept))

    def probability(self, features: np.ndarray) -> np.ndarray:
        """Probability of the positive class for each row of ``features`` (n, k), or for one row (k,)."""
        x = np.asarray(features, float)
        x = np.where(np.isnan(x), self.impute, x)
        return sigmoid(((x - self.mean) / self.sd) @ self.coefficients + self.intercept)


@dataclass(frozen=True)
class HeadProbabilities:
    """The probabilities of one patient: the network's, calibrated (None: no calibration) and
    fused (None: no fusion, or no morphometry given)."""

    densenet: float
    calibrated: float | None
    fused: float | None

    @property
    def decided(self) -> float:
        """The one the decision uses: fused, else calibrated, else the network's."""
        return next(p for p in (self.fused, self.calibrated, self.densenet) if p is not None)


@dataclass(frozen=True)
class DecisionHead:
    """The calibration and fusion of one classifier card (either may be absent)."""

    temperature: float | None = None
    fusion: LogisticModel | None = None
    fusion_features: tuple[str, ...] = ()

    @classmethod
    def of_card(cls, card: ModelCard, *, source: str = "model card") -> "DecisionHead":
        """The card's ``decision.calibration`` and ``fusion``.

        Raises
        ------
        ModelError
            A fusion feature this version cannot compute (named with ``source``).
        """
        return cls.of(None if card.decision is None else card.decision.calibration, card.fusion,
                      source=source)

    @classmethod
    def of(cls, calibration: Calibration | None, fusion: Fusion | None, *,
           source: str = "model card") -> "DecisionHead":
        """The head of a card's ``decision.calibration`` and ``fusion`` sections (either may be None).

        Raises
        ------
        ModelError
            A fusion feature this version cannot compute (named with ``source``).
        """
        if fusion is not None:
            unknown = [name for name in fusion.features if name not in FEATURES]
            if unknown:
                raise ModelError(f"{source}: unknown fusion feature(s) {unknown}; known: {list(FEATURES)}")
        return cls(temperature=None if calibration is None else float(calibration.temperature),
                   fusion=None if fusion is None else LogisticModel.of_card(fusion),
                   fusion_features=() if fusion is None else tuple(fusion.features))

    @property
    def calibrated(self) -> bool:
        """Whether the card has a calibration."""
        return self.temperature is not None

    def apply(self, densenet_probability: float,
              morphometry: LesionMorphometry | None = None) -> HeadProbabilities:
        """Calibrate ``densenet_probability`` and fuse it with ``morphometry`` (when both exist)."""
        densenet = float(densenet_probability)
        calibrated = None if self.temperature is None else float(calibrate(densenet, self.temperature))
        fused = None
        if self.fusion is not None and morphometry is not None:
            values = dict(zip(MORPHOMETRY_FEATURES, morphometry_features(morphometry)))
            values[DENSENET_LOGIT] = float(logit(densenet)) / (self.temperature or 1.0)
            row = np.array([values[name] for name in self.fusion_features], float)
            fused = float(self.fusion.probability(row))
        if fused is not None and not math.isfinite(fused):
            fused = None
        return HeadProbabilities(densenet=densenet, calibrated=calibrated, fused=fused)
