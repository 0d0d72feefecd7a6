"""Evaluation metrics: the paper's Table 2 set with bootstrap confidence intervals, and Dice.

Binary classification metrics follow Zhuo et al. 2022 (Table 2): accuracy, sensitivity,
specificity, positive and negative predictive values, precision, recall and the area under the ROC
curve, each with a 95% confidence interval from a percentile bootstrap over patients.
:func:`volume_outside` measures how much of a predicted lesion lies beyond a margin in mm around
the true cord. numpy (1.x and 2.x) and scipy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt

METRIC_NAMES = ("accuracy", "sensitivity", "specificity", "ppv", "npv", "precision", "recall", "auc")


@dataclass(frozen=True)
class ConfusionCounts:
    """Counts of a binary decision against the truth (positive = the model's positive class)."""

    tp: int
    fp: int
    tn: int
    fn: int

    @classmethod
    def from_labels(cls, truth: np.ndarray, predicted: np.ndarray) -> "ConfusionCounts":
        """Counts from 0/1 truth and 0/1 predictions."""
        truth = np.asarray(truth, bool)
        predicted = np.asarray(predicted, bool)
        return cls(tp=int((truth & predicted).sum()), fp=int((~truth & predicted).sum()),
                   tn=int((~truth & ~predicted).sum()), fn=int((truth & ~predicted).sum()))

    def rates(self) -> dict[str, float]:
        """Accuracy, sensitivity, specificity, PPV, NPV, precision, recall (NaN when undefined)."""
        total = self.tp + self.fp + self.tn + self.fn
        sensitivity = _ratio(self.tp, self.tp + self.fn)
        ppv = _ratio(self.tp, self.tp + self.fp)
        return {
            "accuracy": _ratio(self.tp + self.tn, total),
            "sensitivity": sensitivity,
            "specificity": _ratio(self.tn, self.tn + self.fp),
            "ppv": ppv,
            "npv": _ratio(self.tn, self.tn + self.fn),
            "precision": ppv,
            "recall": sensitivity,
        }


def _ratio(numerator: int, denominator: int) -> float:
    return float(numerator) / denominator if denominator else float("nan")


def log_loss(probabilities: np.ndarray, labels: np.ndarray, eps: float = 1e-12) -> float:
    """Mean binary cross-entropy of ``probabilities`` (clipped to [eps, 1 - eps]) for 0/1 ``labels``."""
    p = np.clip(np.asarray(probabilities, float), eps, 1.0 - eps)
    y = np.asarray(labels, float)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def roc_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties counted one half); NaN for one class."""
    truth = np.asarray(truth, bool)
    scores = np.asarray(scores, float)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, float)
    sorted_scores = scores[order]
    # average ranks over ties
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [scores.size]])
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False positive rates, true positive rates and thresholds (descending), from (0, 0) to (1, 1)."""
    truth = np.asarray(truth, bool)
    scores = np.asarray(scores, float)
    thresholds = np.unique(scores)[::-1]
    n_pos, n_neg = max(int(truth.sum()), 1), max(int((~truth).sum()), 1)
    tpr = [0.0] + [float((truth & (scores >= t)).sum()) / n_pos for t in thresholds]
    fpr = [0.0] + [float((~truth & (scores >= t)).sum()) / n_neg for t in thresholds]
    return np.array(fpr), np.array(tpr), np.concatenate([[np.inf], thresholds])


def binary_metrics(truth: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """The Table 2 set at ``threshold`` (scores >= threshold are positive), plus the AUC."""
    truth = np.asarray(truth, bool)
    scores = np.asarray(scores, float)
    values = ConfusionCounts.from_labels(truth, scores >= threshold).rates()
    values["auc"] = roc_auc(truth, scores)
    return values


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap confidence interval."""

    value: float
    low: float
    high: float

    def to_json(self) -> dict:
        """``{"value", "ci95": [low, high]}`` with NaN written as null."""
        def clean(x: float):
            return None if x != x else round(float(x), 4)
        return {"value": clean(self.value), "ci95": [clean(self.low), clean(self.high)]}


def bootstrap_binary_metrics(truth: np.ndarray, scores: np.ndarray, *, threshold: float = 0.5,
                             n_resamples: int = 2000, seed: int = 0,
                             confidence: float = 0.95) -> dict[str, Estimate]:
    """Table 2 metrics with percentile bootstrap intervals (patients resampled with replacement).

    Resamples where a metric is undefined (e.g. no positive patient drawn) are left out of that
    metric's interval.
    """
    truth = np.asarray(truth, bool)
    scores = np.asarray(scores, float)
    point = binary_metrics(truth, scores, threshold)
    rng = np.random.default_rng(seed)
    samples = {name: [] for name in METRIC_NAMES}
    n = truth.size
    for _ in range(n_resamples):
        index = rng.integers(0, n, n)
        values = binary_metrics(truth[index], scores[index], threshold)
        for name in METRIC_NAMES:
            if values[name] == values[name]:
                samples[name].append(values[name])
    alpha = (1.0 - confidence) / 2.0
    result = {}
    for name in METRIC_NAMES:
        drawn = np.asarray(samples[name])
        if drawn.size == 0:
            result[name] = Estimate(point[name], float("nan"), float("nan"))
        else:
            result[name] = Estimate(point[name], float(np.quantile(drawn, alpha)),
                                    float(np.quantile(drawn, 1.0 - alpha)))
    return result


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient of two masks; 1 when both are empty."""
    prediction = np.asarray(prediction, bool)
    truth = np.asarray(truth, bool)
    total = int(prediction.sum()) + int(truth.sum())
    return 1.0 if total == 0 else 2.0 * int((prediction & truth).sum()) / total


@dataclass(frozen=True)
class OutsideVolume:
    """Predicted volume, and the part of it beyond a margin around a reference region (mm3)."""

    predicted_mm3: float
    outside_mm3: float
    margin_mm: float

    @property
    def share(self) -> float:
        """``outside_mm3 / predicted_mm3``; NaN when nothing is predicted."""
        return self.outside_mm3 / self.predicted_mm3 if self.predicted_mm3 > 0 else float("nan")


def volume_outside(prediction: np.ndarray, region: np.ndarray, zooms_mm, margin_mm: float = 2.0) -> OutsideVolume:
    """The predicted volume farther than ``margin_mm`` from ``region`` (e.g. the true cord).

    A voxel counts as inside when the distance from its centre to the nearest voxel centre of
    ``region`` is at most ``margin_mm``, measured in mm on the voxel grid (Euclidean distance
    transform with the voxel sizes as sampling, so anisotropic voxels are handled). An empty
    ``region`` puts the whole prediction outside.

    Parameters
    ----------
    prediction, region : np.ndarray
        Masks of the same shape (anything non-zero is in the mask).
    zooms_mm : sequence of float
        Voxel sizes in mm, one per axis.
    margin_mm : float
        Dilation of ``region`` in mm (default 2).
    """
    prediction = np.asarray(prediction, bool)
    region = np.asarray(region, bool)
    if prediction.shape != region.shape:
        raise ValueError(f"prediction {prediction.shape} and region {region.shape} differ in shape")
    zooms_mm = tuple(float(z) for z in zooms_mm)
    if len(zooms_mm) != prediction.ndim:
        raise ValueError(f"{len(zooms_mm)} voxel sizes for a {prediction.ndim}-D mask")
    voxel_mm3 = float(np.prod(zooms_mm))
    predicted = int(prediction.sum())
    if not region.any():
        outside = predicted
    elif predicted == 0:
        outside = 0
    else:
        distance_mm = distance_transform_edt(~region, sampling=zooms_mm)
        outside = int((prediction & (distance_mm > margin_mm)).sum())
    return OutsideVolume(predicted_mm3=predicted * voxel_mm3, outside_mm3=outside * voxel_mm3,
                         margin_mm=float(margin_mm))


@dataclass(frozen=True)
class ReliabilityBins:
    """Probabilities grouped in equal-width bins over [0, 1] (the non-empty bins, in order):
    how many fell in each, their mean, and the share of positives among them."""

    counts: np.ndarray
    mean_probability: np.ndarray
    positive_fraction: np.ndarray

    @property
    def expected_calibration_error(self) -> float:
        """Sum over the bins of (share of the scores) x |positive fraction - mean probability|."""
        if not self.counts.size:
            return 0.0
        weights = self.counts / self.counts.sum()
        return float(np.sum(weights * np.abs(self.positive_fraction - self.mean_probability)))


def reliability_bins(truth: np.ndarray, scores: np.ndarray, n_bins: int = 10) -> ReliabilityBins:
    """The reliability diagram's bins of ``scores`` against the 0/1 ``truth``."""
    truth = np.asarray(truth, float)
    scores = np.asarray(scores, float)
    bins = _bin_of(scores, n_bins)
    kept = [b for b in range(n_bins) if (bins == b).any()]
    return ReliabilityBins(counts=np.array([int((bins == b).sum()) for b in kept], dtype=np.int64),
                           mean_probability=np.array([scores[bins == b].mean() for b in kept], float),
                           positive_fraction=np.array([truth[bins == b].mean() for b in kept], float))


def _bin_of(scores: np.ndarray, n_bins: int) -> np.ndarray:
    """Index of each score's equal-width bin over [0, 1] (1.0 falls in the last bin)."""
    return np.minimum((scores * n_bins).astype(int), n_bins - 1)


def expected_calibration_error(truth: np.ndarray, scores: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error of probabilities (equal-width bins over [0, 1])."""
    return reliability_bins(truth, scores, n_bins).expected_calibration_error


@dataclass(frozen=True)
class CalibratedEce:
    """The ECE that perfectly calibrated probabilities would show on a set of this size.

    Attributes
    ----------
    median, p95 : float
        Median and 95th percentile of the ECE over ``draws`` label sets drawn from the
        probabilities themselves (each subject positive with its probability).
    draws : int
        Number of label sets drawn.
    """

    median: float
    p95: float
    draws: int

    def to_json(self) -> dict:
        return {"median": round(self.median, 4), "p95": round(self.p95, 4), "draws": self.draws}


def ece_if_calibrated(scores: np.ndarray, *, n_bins: int = 10, draws: int = 2000,
                      seed: int = 0) -> CalibratedEce:
    """The ECE a perfectly calibrated model would show with these probabilities on this many
    subjects (consistency resampling, Broecker & Smith, Weather and Forecasting 2007).

    Labels are drawn with ``P(positive) = score`` (the truth a calibrated model implies) and the
    ECE of ``scores`` against each draw is computed with the same bins as
    :func:`expected_calibration_error`. The ECE of a few dozen subjects is far from 0 even for a
    calibrated model; an observed ECE below ``p95`` is consistent with calibration at this size.

    Raises
    ------
    ValueError
        No scores, or a score outside [0, 1].
    """
    scores = np.asarray(scores, float).ravel()
    if scores.size == 0:
        raise ValueError("no probabilities")
    if not np.all((scores >= 0.0) & (scores <= 1.0)):
        raise ValueError("probabilities must lie in [0, 1]")
    bins = _bin_of(scores, n_bins)
    kept = np.unique(bins)
    members = bins[None, :] == kept[:, None]                                  # (bins, subjects)
    counts = members.sum(axis=1)
    mean_probability = (members * scores).sum(axis=1) / counts
    labels = np.random.default_rng(seed).random((draws, scores.size)) < scores  # (draws, subjects)
    positive_fraction = (labels.astype(float) @ members.T) / counts            # (draws, bins)
    eces = (np.abs(positive_fraction - mean_probability) * (counts / scores.size)).sum(axis=1)
    return CalibratedEce(median=float(np.median(eces)), p95=float(np.percentile(eces, 95)), draws=draws)
