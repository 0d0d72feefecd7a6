"""Whether a result should be trusted: named checks of the input, the masks and the classifiers
(issue 18), combined into a level ``ok | review | unreliable``.

- :mod:`.ranges`: literature ranges (cited) and the measured thresholds;
- :mod:`.measures`: the numbers the checks read (cord profile, lesion against cord, acquisition);
- :mod:`.checks`: one function per check, returning a :class:`~.checks.TrustCheck` or None;
- :mod:`.acquisition`: the model cards' ``training_data`` ranges (written by ``train``);
- :mod:`.assess`: :func:`~.assess.assess` -> :class:`~.assess.TrustAssessment`.
"""

from sct_lesion_classify.trust.assess import (
    LEVELS,
    TrustAssessment,
    assess,
    classification_checks,
    segmentation_checks,
)
from sct_lesion_classify.trust.checks import TrustCheck

__all__ = ["LEVELS", "TrustAssessment", "TrustCheck", "assess", "classification_checks", "segmentation_checks"]
