"""The morphometry-only baseline: logistic regression on lesion measures.

The report puts it beside each DenseNet (and its fusion with the morphometry) on the same split,
so it shows what the images add to what volume, count, extent, level, position and signal alone
tell. The features are the fusion head's (:data:`sct_lesion_classify.classify.fusion.MORPHOMETRY_FEATURES`,
:func:`~sct_lesion_classify.classify.fusion.morphometry_features`) and the fit is the fusion's
(:func:`sct_lesion_classify.train.decision_head.fit_logistic`: L2-regularised, Newton's method on
standardised features, pure numpy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sct_lesion_classify.classify.fusion import MORPHOMETRY_FEATURES, LogisticModel, morphometry_features
from sct_lesion_classify.train.decision_head import fit_logistic

#: Features of the baseline, in order.
FEATURES = MORPHOMETRY_FEATURES

__all__ = ["FEATURES", "LogisticBaseline", "morphometry_features"]


@dataclass(frozen=True)
class LogisticBaseline:
    """A fitted logistic regression on the morphometry features."""

    model: LogisticModel

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, *, l2: float = 1.0,
            iterations: int = 50) -> "LogisticBaseline":
        """Fit on ``features`` (n, k; NaN replaced by the column mean) and 0/1 ``labels``."""
        return cls(fit_logistic(features, labels, l2=l2, iterations=iterations))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probability of the positive class for each row of ``features``."""
        return self.model.probability(features)
