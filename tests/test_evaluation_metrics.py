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
    ece_if_calibrated,
    expected_calibration_error,
    roc_auc,
    roc_curve,
    volume_outside,
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


def test_ece_if_calibrated_is_the_ece_of_labels_drawn_from_the_probabilities():
    scores = np.random.default_rng(1).random(40)
    floor = ece_if_calibrated(scores, draws=400, seed=3)
    # the same draws, one at a time, through the report's own ECE
    labels = np.random.default_rng(3).random((400, scores.size)) < scores
    eces = [expected_calibration_error(draw, scores) for draw in labels]
    assert floor.median == pytest.approx(np.median(eces))
    assert floor.p95 == pytest.approx(np.percentile(eces, 95))
    assert floor.to_json()["draws"] == 400


def test_ece_if_calibrated_shrinks_with_the_number_of_subjects():
    rng = np.random.default_rng(0)
    small, large = ece_if_calibrated(rng.random(40)), ece_if_calibrated(rng.random(1000))
    assert large.p95 < small.median  # about 1 / sqrt(n): 0.15 at 40 subjects, 0.03 at 1000
    assert ece_if_calibrated(np.array([0.0, 1.0, 1.0, 0.0])).p95 == 0.0  # certain and right


def test_a_calibrated_model_lies_under_the_95th_percentile_most_of_the_time():
    rng = np.random.default_rng(5)
    scores = rng.random(60)
    floor = ece_if_calibrated(scores, draws=1000, seed=6)
    observed = [expected_calibration_error(rng.random(60) < scores, scores) for _ in range(300)]
    assert 0.90 <= np.mean(np.array(observed) <= floor.p95) <= 0.99
    # a miscalibrated model (the truth of 0.5 for every score) does not
    assert expected_calibration_error(rng.random(60) < 0.5, scores) > floor.p95


@pytest.mark.parametrize("scores", [np.array([]), np.array([0.2, 1.2]), np.array([np.nan])])
def test_ece_if_calibrated_refuses_what_is_not_probabilities(scores):
    with pytest.raises(ValueError):
        ece_if_calibrated(scores)


def test_volume_outside_counts_voxels_beyond_the_margin_in_mm():
    """Cord: one voxel column. Voxels 1, 2 and 3 mm away along the 1 mm axis: only the 3 mm one is
    beyond a 2 mm margin; along the 3 mm axis one slice away (3 mm) is already outside."""
    cord = np.zeros((9, 9, 5), bool)
    cord[4, 4, :] = True
    prediction = np.zeros_like(cord)
    prediction[4, 4, 2] = True        # inside the cord
    prediction[5, 4, 2] = True        # 1 mm
    prediction[6, 4, 2] = True        # 2 mm: on the margin, inside
    prediction[7, 4, 2] = True        # 3 mm: outside
    prediction[6, 6, 2] = True        # sqrt(8) = 2.83 mm: outside
    result = volume_outside(prediction, cord, (1.0, 1.0, 1.0), margin_mm=2.0)
    assert result.predicted_mm3 == pytest.approx(5.0)
    assert result.outside_mm3 == pytest.approx(2.0)
    assert result.share == pytest.approx(2 / 5)
    # anisotropic voxels (0.5 x 1 x 3 mm): distances follow the voxel sizes, volumes 1.5 mm3 a voxel
    cord = np.zeros((12, 5, 5), bool)
    cord[:2, :, 2] = True             # a slab in slice 2, rows 0-1
    prediction = np.zeros_like(cord)
    prediction[5, 2, 2] = True        # 4 rows of 0.5 mm from row 1: 2.0 mm, inside
    prediction[6, 2, 2] = True        # 2.5 mm, outside
    prediction[0, 2, 3] = True        # next slice: 3 mm, outside
    result = volume_outside(prediction, cord, (0.5, 1.0, 3.0), margin_mm=2.0)
    assert result.predicted_mm3 == pytest.approx(4.5)
    assert result.outside_mm3 == pytest.approx(3.0)
    assert volume_outside(prediction, cord, (0.5, 1.0, 3.0), margin_mm=3.0).outside_mm3 == 0.0


def test_volume_outside_empty_masks():
    cord = np.zeros((4, 4, 4), bool)
    cord[1:3, 1:3, :] = True
    empty = np.zeros_like(cord)
    nothing = volume_outside(empty, cord, (1, 1, 1))
    assert nothing.predicted_mm3 == 0.0 and nothing.outside_mm3 == 0.0 and np.isnan(nothing.share)
    everything = volume_outside(cord, empty, (2, 2, 2))   # no cord: every predicted voxel is outside
    assert everything.outside_mm3 == everything.predicted_mm3 == 16 * 8.0 and everything.share == 1.0
    with pytest.raises(ValueError):
        volume_outside(cord, cord[:3], (1, 1, 1))
