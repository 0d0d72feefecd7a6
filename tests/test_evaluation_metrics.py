"""Metric functions: the paper's Table 2 figures from its own counts, bootstrap intervals, Dice."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sct_lesion_classify.train.evaluation.metrics import (
    ConfusionCounts,
    binary_metrics,
    bootstrap_binary_metrics,
    dice,
    expected_calibration_error,
    roc_auc,
    roc_curve,
)


def test_paper_table2_model1_from_its_counts():
    """Zhuo et al. 2022, model 1 on the test set: sensitivity 76/78 = 97%, specificity 74/79 = 94%."""
    counts = ConfusionCounts(tp=76, fn=2, tn=74, fp=5)
    rates = counts.rates()
    assert round(rates["sensitivity"] * 100) == 97
    assert round(rates["specificity"] * 100) == 94
    assert round(rates["accuracy"] * 100) == 96  # (76 + 74) / 157 = 95.5%, reported as 96%
    assert rates["ppv"] == pytest.approx(76 / 81)
    assert rates["npv"] == pytest.approx(74 / 76)
    assert rates["precision"] == rates["ppv"] and rates["recall"] == rates["sensitivity"]


def test_counts_from_labels():
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    predicted = np.array([1, 0, 1, 0, 1, 0, 0, 1])
    assert ConfusionCounts.from_labels(truth, predicted) == ConfusionCounts(tp=3, fp=1, tn=3, fn=1)


def test_auc_known_values():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    # 2 positives, 2 negatives: pairs (p, n) ordered correctly: 3 of 4
    assert roc_auc([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.75)
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=2, max_size=40))
def test_auc_equals_area_under_roc_curve(pairs):
    truth = np.array([p[0] for p in pairs])
    scores = np.array([p[1] for p in pairs])
    if truth.all() or not truth.any():
        return
    fpr, tpr, _ = roc_curve(truth, scores)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert roc_auc(truth, scores) == pytest.approx(area)


def test_bootstrap_interval_contains_the_point_estimate():
    rng = np.random.default_rng(1)
    truth = rng.random(80) < 0.5
    scores = np.clip(truth * 0.35 + rng.random(80) * 0.65, 0, 1)
    estimates = bootstrap_binary_metrics(truth, scores, n_resamples=500, seed=3)
    for name, estimate in estimates.items():
        assert estimate.low <= estimate.value <= estimate.high, name
        assert estimate.high - estimate.low > 0, name
    again = bootstrap_binary_metrics(truth, scores, n_resamples=500, seed=3)
    assert again == estimates


def test_binary_metrics_threshold():
    values = binary_metrics([1, 0, 1, 0], [0.6, 0.4, 0.45, 0.7], threshold=0.5)
    assert values["sensitivity"] == 0.5 and values["specificity"] == 0.5


def test_dice():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    assert dice(a, b) == 1.0
    a[:2] = True
    b[1:3] = True
    assert dice(a, b) == pytest.approx(2 * 4 / 16)


def test_expected_calibration_error():
    truth = np.array([0, 1] * 50)
    assert expected_calibration_error(truth, np.full(100, 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(truth, truth.astype(float)) == pytest.approx(0.0)
    assert expected_calibration_error(truth, 1.0 - truth) == pytest.approx(1.0)
