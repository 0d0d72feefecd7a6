"""Fitting a classifier's decision head on the validation split: calibration, then late fusion.

:func:`fit_decision_head` runs after training (``train.family.train_family``, classifier families)
on the validation patients' probabilities (the mean of their slice probabilities, the paper's
rule) and writes what :class:`sct_lesion_classify.classify.fusion.DecisionHead` applies at
inference:

1. **Temperature scaling** (:func:`fit_temperature`): the ``T > 0`` that minimises the log loss of
   ``sigmoid(logit(p) / T)`` on the validation patients (a bounded scalar search over ``log T``
   in :data:`TEMPERATURE_BOUNDS`). Fitted when the split holds both classes; the card's
   ``decision.calibration`` records T, the split, and the expected calibration error before
   and after (on the same patients).
2. **Late fusion** (:func:`fit_logistic`): an L2-regularised logistic regression (Newton's
   method on standardised features, NaN replaced by the column mean) on the calibrated logit
   and the :data:`~sct_lesion_classify.classify.fusion.MORPHOMETRY_FEATURES` of each patient's
   manual lesion mask (:func:`truth_morphometry`, with its cord mask when the subject has one).
   Fitted only with at least :data:`MIN_FUSION_PATIENTS` patients, :data:`MIN_FUSION_PER_CLASS`
   of each class; otherwise left out with a warning.

The card's metrics gain the ECE before and after calibration and the fused AUC / accuracy, on
the validation split (where the head was fitted: optimistic) and on the test split when there is
one (:func:`head_metrics`). The evaluation's morphometry baseline
(``train.evaluation.baseline``) uses the same features and :func:`fit_logistic`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from sct_lesion_classify.classify.fusion import (
    DENSENET_LOGIT,
    MORPHOMETRY_FEATURES,
    DecisionHead,
    LogisticModel,
    logit,
    morphometry_features,
    sigmoid,
)
from sct_lesion_classify.modelpkg.card import Calibration, Fusion
from sct_lesion_classify.train.evaluation.metrics import expected_calibration_error, log_loss, roc_auc

logger = logging.getLogger(__name__)

#: The temperature search interval (a fit on its edge is logged: the split separates too well,
#: or too badly, for the temperature to be measured).
TEMPERATURE_BOUNDS = (0.05, 20.0)
#: The fusion head is fitted only with this many validation patients, and this many of each class.
MIN_FUSION_PATIENTS = 8
MIN_FUSION_PER_CLASS = 3
#: L2 penalty of the fusion's logistic regression (on standardised features; the intercept is free).
FUSION_L2 = 1.0


def fit_temperature(probabilities: Sequence[float], labels: Sequence[int]) -> float:
    """The temperature ``T`` minimising the log loss of ``sigmoid(logit(p) / T)`` on these patients."""
    from scipy.optimize import minimize_scalar

    z = logit(np.asarray(probabilities, float))
    y = np.asarray(labels, float)

    def loss(log_t: float) -> float:
        return log_loss(sigmoid(z / math.exp(log_t)), y)

    low, high = (math.log(bound) for bound in TEMPERATURE_BOUNDS)
    found = minimize_scalar(loss, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    temperature = float(math.exp(found.x))
    if min(abs(found.x - low), abs(found.x - high)) < 1e-3:
        logger.warning("temperature scaling: T = %.3g is at the edge of the search interval %s "
                       "(the validation split separates the classes too well or too badly to measure it)",
                       temperature, TEMPERATURE_BOUNDS)
    return temperature


def fit_logistic(features: np.ndarray, labels: Sequence[int], *, l2: float = 1.0,
                 iterations: int = 50) -> LogisticModel:
    """L2-regularised logistic regression on standardised ``features`` (n, k), Newton's method.

    A NaN takes its column's mean (0 for a column without any value); each column is then
    standardised (a constant column gets sd 1 and, under the penalty, a zero coefficient). The
    intercept is not penalised.
    """
    x = np.asarray(features, float)
    y = np.asarray(labels, float)
    impute = np.array([np.nanmean(column) if (~np.isnan(column)).any() else 0.0 for column in x.T])
    x = np.where(np.isnan(x), impute, x)
    mean = x.mean(axis=0)
    sd = x.std(axis=0)
    sd = np.where(sd > 1e-9 * np.maximum(np.abs(mean), 1.0), sd, 1.0)  # a constant column (up to rounding)
    design = np.column_stack([(x - mean) / sd, np.ones(len(x))])
    theta = np.zeros(design.shape[1])
    penalty = np.diag([l2] * (design.shape[1] - 1) + [0.0])
    for _ in range(iterations):
        p = sigmoid(design @ theta)
        gradient = design.T @ (p - y) + penalty @ theta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(theta)), gradient)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return LogisticModel(impute=impute, mean=mean, sd=sd, coefficients=theta[:-1], intercept=float(theta[-1]))


def truth_morphometry(subject: Any):
    """The lesion morphometry of a BIDS subject's manual lesion mask (with its cord mask when it
    has one), as the pipeline measures it (``lesion.morphometry.measure_lesions``)."""
    from sct_lesion_classify.io.image import load_image, load_mask
    from sct_lesion_classify.lesion.morphometry import measure_lesions

    image = load_image(subject.t2w, what=f"{subject.participant_id} T2w image")
    lesion, _ = load_mask(subject.lesion_mask, image.grid, what=f"{subject.participant_id} manual lesion mask")
    cord = None
    if subject.cord_mask is not None:
        cord, _ = load_mask(subject.cord_mask, image.grid, what=f"{subject.participant_id} manual cord mask")
    return measure_lesions(lesion, image.zooms, image.affine, image=image.data, cord_mask=cord)


def fit_calibration(probabilities: Sequence[float], labels: Sequence[int], fitted_on: str) -> Calibration | None:
    """The card's ``decision.calibration`` fitted on these patients; None (with a warning) when
    they do not hold both classes."""
    y = np.asarray(labels, int)
    if len(y) < 2 or y.min() == y.max():
        logger.warning("no calibration in the card: the %s does not hold patients of both classes", fitted_on)
        return None
    p = np.asarray(probabilities, float)
    temperature = fit_temperature(p, y)
    return Calibration(method="temperature", temperature=_significant(temperature), fitted_on=fitted_on,
                       ece_before=round(expected_calibration_error(y, p), 6),
                       ece_after=round(expected_calibration_error(y, sigmoid(logit(p) / temperature)), 6))


def fusion_features(probabilities: Sequence[float], morphometries: Sequence[Any],
                    temperature: float | None) -> np.ndarray:
    """Rows ``[calibrated logit, morphometry features...]`` in the fusion's feature order."""
    logits = logit(np.asarray(probabilities, float)) / (temperature or 1.0)
    return np.column_stack([logits, np.array([morphometry_features(m) for m in morphometries], float)])


def enough_for_fusion(labels: Sequence[int], fitted_on: str) -> bool:
    """Whether ``labels`` hold :data:`MIN_FUSION_PATIENTS` patients, :data:`MIN_FUSION_PER_CLASS`
    of each class (else a warning says why there is no fusion head)."""
    y = np.asarray(labels, int)
    per_class = min(int((y == 0).sum()), int((y == 1).sum()))
    if len(y) >= MIN_FUSION_PATIENTS and per_class >= MIN_FUSION_PER_CLASS:
        return True
    logger.warning("no fusion head in the card: the %s has %d patients, %d of the smaller class "
                   "(at least %d and %d needed)", fitted_on, len(y), per_class, MIN_FUSION_PATIENTS,
                   MIN_FUSION_PER_CLASS)
    return False


def fit_fusion(probabilities: Sequence[float], morphometries: Sequence[Any], labels: Sequence[int],
               temperature: float | None, fitted_on: str, *, l2: float = FUSION_L2) -> Fusion | None:
    """The card's ``fusion`` fitted on these patients; None (with a warning) with too few of them."""
    y = np.asarray(labels, int)
    if not enough_for_fusion(y, fitted_on):
        return None
    model = fit_logistic(fusion_features(probabilities, morphometries, temperature), y, l2=l2)

    def numbers(values: np.ndarray) -> tuple[float, ...]:
        return tuple(_significant(v) for v in values)

    return Fusion(method="logistic_regression", features=(DENSENET_LOGIT, *MORPHOMETRY_FEATURES),
                  impute=numbers(model.impute), mean=numbers(model.mean), sd=numbers(model.sd),
                  coefficients=numbers(model.coefficients), intercept=_significant(model.intercept),
                  l2=float(l2), fitted_on=fitted_on)


def _significant(value: float) -> float:
    """``value`` with 10 significant digits (what the card stores; a small sd stays non-zero)."""
    return float(f"{float(value):.10g}")


@dataclass(frozen=True)
class HeadFit:
    """What :func:`fit_decision_head` fitted (None: left out) and the metrics for the card."""

    calibration: Calibration | None
    fusion: Fusion | None
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)  # split -> metrics


def head_metrics(head: DecisionHead, probabilities: Sequence[float], morphometries: Sequence[Any],
                 labels: Sequence[int]) -> dict[str, float | None]:
    """ECE of the network's and the calibrated probabilities; AUC, accuracy and ECE of the fused ones."""
    y = np.asarray(labels, int)
    applied = [head.apply(p, m) for p, m in zip(probabilities, morphometries)]
    metrics: dict[str, float | None] = {
        "patient_ece": round(expected_calibration_error(y, [a.densenet for a in applied]), 6)}
    if head.calibrated:
        metrics["patient_ece_calibrated"] = round(expected_calibration_error(y, [a.calibrated for a in applied]), 6)
    if head.fusion is not None:
        fused = np.array([a.fused for a in applied], float)
        auc = roc_auc(y.astype(bool), fused)
        metrics["fused_patient_auc"] = None if math.isnan(auc) else round(auc, 6)
        metrics["fused_patient_accuracy"] = round(float(np.mean((fused >= 0.5) == (y == 1))), 6)
        metrics["fused_patient_ece"] = round(expected_calibration_error(y, fused), 6)
    return metrics


def fit_decision_head(objective: Any, data: Any, predict: Callable[[Any], Any]) -> HeadFit:
    """Fit the calibration, then the fusion, on the validation patients of a classifier's training.

    Parameters
    ----------
    objective
        The :class:`~sct_lesion_classify.train.objectives.ClassifierObjective` that trained the
        network (its ``evaluable`` and ``patient_probabilities``).
    data
        The run's :class:`~sct_lesion_classify.train.family.TrainingData` (samples per split and
        the BIDS subjects of each split, whose manual masks give the morphometry).
    predict
        ``inputs -> logits`` of the trained network (the best weights).
    """
    bids_subjects = {s.participant_id: s for s in (*data.split.val, *data.split.test)}
    patients = {"val": objective.evaluable(data.val), "test": objective.evaluable(data.test)}
    probabilities = {split: objective.patient_probabilities(samples, predict) if samples else np.zeros(0)
                     for split, samples in patients.items()}
    labels = {split: [int(s.label) for s in samples] for split, samples in patients.items()}
    fitted_on = f"validation split, {len(patients['val'])} patients"
    calibration = fit_calibration(probabilities["val"], labels["val"], fitted_on)
    temperature = None if calibration is None else calibration.temperature
    fusion = None
    morphometries: dict[str, list[Any]] = {split: [None] * len(samples) for split, samples in patients.items()}
    if enough_for_fusion(labels["val"], fitted_on):  # the manual masks are measured only when needed
        morphometries = {split: [truth_morphometry(bids_subjects[s.participant_id]) for s in samples]
                         for split, samples in patients.items()}
        fusion = fit_fusion(probabilities["val"], morphometries["val"], labels["val"], temperature, fitted_on)
    head = DecisionHead.of(calibration, fusion, source="fitted decision head")
    metrics = {split: head_metrics(head, probabilities[split], morphometries[split], labels[split])
               for split in patients if patients[split]}
    logger.info("decision head: %s, %s", "calibrated (T = %.3g)" % temperature if temperature else "uncalibrated",
                "fused with the morphometry" if fusion else "no fusion")
    return HeadFit(calibration=calibration, fusion=fusion, metrics=metrics)
