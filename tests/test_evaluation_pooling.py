"""Segmentation figures pooled over several evaluate reports (train.evaluation.pooling), as
models/adoption_check.sh reads them."""

from __future__ import annotations

import math

import pytest

from sct_lesion_classify.train.evaluation.pooling import pool_segmentation


def _record(pid, diagnosis, dice, predicted, true, outside=0.0, cord=0.9, status="ok"):
    return {"participant_id": pid, "diagnosis": diagnosis, "status": status, "lesion_dice": dice,
            "predicted_lesion_mm3": predicted, "true_lesion_mm3": true, "outside_cord_mm3": outside,
            "cord_dice": cord}


def _report(records, margin_mm=2.0):
    return {"segmentation": {"outside_cord": {"margin_mm": margin_mm}}, "records": records}


def test_two_reports_are_pooled_subject_by_subject():
    realistic = _report([_record("sub-001", "astrocytoma", 0.8, 90.0, 100.0, outside=9.0, cord=0.96),
                             _record("sub-002", "MS", 0.6, 30.0, 20.0, cord=0.94)])
    randomised = _report([_record("sub-001", "ependymoma", None, 0.0, 50.0, cord=0.70),  # missed: Dice 0
                              _record("sub-002", "NMOSD", 0.4, 40.0, 30.0, outside=1.0, cord=None),
                              _record("sub-003", "MS", None, None, None, status="failed: truncated file"),
                              _record("sub-004", "", None, 12.0, None)])  # a healthy scan: not a lesion subject
    pooled = pool_segmentation([realistic, randomised])
    assert pooled.subjects == 4
    assert pooled.lesion_dice_tumours == pytest.approx((0.8 + 0.0) / 2)
    assert pooled.lesion_dice_demyelinating == pytest.approx((0.6 + 0.4) / 2)
    assert pooled.lesion_dice_all == pytest.approx((0.8 + 0.6 + 0.0 + 0.4) / 4)
    assert pooled.volume_ratio == pytest.approx((90 + 30 + 0 + 40) / (100 + 20 + 50 + 30))
    assert pooled.outside_cord_share == pytest.approx(10.0 / 160.0)
    assert pooled.cord_dice == pytest.approx((0.96 + 0.94 + 0.70) / 3)
    line = pooled.describe()
    assert "n 4;" in line and "volume 0.800" in line and "cord + 2 mm 6.25%" in line


def test_no_lesion_subject_gives_nan_not_a_number_made_up():
    pooled = pool_segmentation([_report([_record("sub-001", "", None, 5.0, None)])])
    assert pooled.subjects == 0
    assert math.isnan(pooled.lesion_dice_all) and math.isnan(pooled.volume_ratio)


def test_a_report_without_true_volumes_is_refused():
    old = _record("sub-001", "MS", 0.5, 10.0, None)
    with pytest.raises(ValueError, match="true_lesion_mm3"):
        pool_segmentation([_report([old])])


def test_reports_with_different_margins_are_refused():
    record = _record("sub-001", "MS", 0.5, 10.0, 12.0)
    with pytest.raises(ValueError, match="different margins"):
        pool_segmentation([_report([record]), _report([record], margin_mm=3.0)])


def test_the_scans_flagged_for_a_fragmented_cord_are_counted():
    flagged = dict(_record("sub-001", "MS", 0.5, 10.0, 12.0), trust_checks=["cord_fragmented", "acquisition_fov_si_mm"])
    clean = dict(_record("sub-002", "NMOSD", 0.5, 10.0, 12.0), trust_checks=[])
    unrecorded = _record("sub-003", "MS", 0.5, 10.0, 12.0)  # a report written before the checks were recorded
    pooled = pool_segmentation([_report([flagged, clean, unrecorded])])
    assert (pooled.trust_recorded, pooled.cord_fragmented) == (2, 1)
    assert "cord fragmented (trust check) 1 of 2" in pooled.describe()
    assert "not recorded" in pool_segmentation([_report([unrecorded])]).describe()
