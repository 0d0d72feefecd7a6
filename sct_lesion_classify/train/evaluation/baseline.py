"""The morphometry-only baseline: logistic regression on lesion measures.

The report puts it beside each DenseNet on the same split, so it shows what the images add to
what volume, count, extent, position and signal alone tell. Pure numpy (L2-regularised logistic
regression fitted by Newton's method on standardised features).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sct_lesion_classify.lesion.morphometry import LesionMorphometry

#: Features of the baseline, in order.
FEATURES = ("log_total_volume_mm3", "count", "max_length_si_mm", "eccentricity_ratio", "intensity_ratio")


def morphometry_features(morphometry: LesionMorphometry) -> np.ndarray:
    """The baseline's features of one subject (NaN where a measure is unavailable)."""
    lesions = morphometry.lesions
    if not lesions:
        return np.array([0.0, 0.0, 0.0, np.nan, np.nan])
    volumes = np.array([lesion.volume_mm3 for lesion in lesions])

    def weighted(values) -> float:
        values = np.array([np.nan if v is None else v for v in values], float)
        keep = ~np.isnan(values)
        return float(np.average(values[keep], weights=volumes[keep])) if keep.any() else float("nan")

    return np.array([
        np.log1p(morphometry.total_volume_mm3),
        float(morphometry.count),
        max(lesion.length_si_mm for lesion in lesions),
        weighted(lesion.eccentricity_ratio for lesion in lesions),
        weighted(lesion.intensity_ratio for lesion in lesions),
    ])


@dataclass(frozen=True)
class LogisticBaseline:
    """A fitted logistic regression (feature means/scales for standardising, weights, bias)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, *, l2: float = 1.0,
            iterations: int = 50) -> "LogisticBaseline":
        """Fit on ``features`` (n, k; NaN replaced by the column mean) and 0/1 ``labels``."""
        x = np.asarray(features, float)
        y = np.asarray(labels, float)
        mean = np.nanmean(x, axis=0)
        mean = np.where(np.isnan(mean), 0.0, mean)
        x = np.where(np.isnan(x), mean, x)
        scale = x.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        z = np.column_stack([(x - mean) / scale, np.ones(len(x))])
        theta = np.zeros(z.shape[1])
        penalty = np.diag([l2] * (z.shape[1] - 1) + [0.0])
        for _ in range(iterations):
            p = 1.0 / (1.0 + np.exp(-z @ theta))
            gradient = z.T @ (p - y) + penalty @ theta
            hessian = (z * (p * (1 - p))[:, None]).T @ z + penalty
            step = np.linalg.solve(hessian + 1e-9 * np.eye(len(theta)), gradient)
            theta -= step
            if np.abs(step).max() < 1e-8:
                break
        return cls(mean=mean, scale=scale, weights=theta[:-1], bias=float(theta[-1]))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probability of the positive class for each row of ``features``."""
        x = np.asarray(features, float)
        x = np.where(np.isnan(x), self.mean, x)
        return 1.0 / (1.0 + np.exp(-(((x - self.mean) / self.scale) @ self.weights + self.bias)))
