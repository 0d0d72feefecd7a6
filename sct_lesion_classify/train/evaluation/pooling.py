"""Segmentation figures pooled over several ``evaluate`` reports (for example the validation splits
of a realistic and a domain-randomised phantom set), from their per-subject records.

``models/adoption_check.sh`` compares a retrained segmentation package with the bundled one this
way; the reports' own tables give each set on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES

#: The tumour diagnoses (the positive class of model 2's parent, model 1).
TUMOURS = ROLE_CLASSES["astrocytoma_vs_ependymoma"]


@dataclass(frozen=True)
class PooledSegmentation:
    """Lesion and cord figures over the pooled subjects (NaN where no subject has the figure).

    Attributes
    ----------
    subjects
        Subjects processed with a lesion diagnosis (a missed lesion counts as Dice 0).
    lesion_dice_tumours, lesion_dice_demyelinating, lesion_dice_all
        Mean lesion Dice.
    volume_ratio
        Summed predicted over summed manual lesion volume.
    outside_cord_share, margin_mm
        Share of the predicted lesion volume beyond the true cord dilated by ``margin_mm`` (the
        reports' margin).
    cord_dice
        Mean cord Dice.
    trust_recorded, cord_fragmented
        Subjects whose trust checks the reports recorded, and how many of them the check
        ``cord_fragmented`` flagged (0 and 0 for reports written before records carried them).
    """

    subjects: int
    lesion_dice_tumours: float
    lesion_dice_demyelinating: float
    lesion_dice_all: float
    volume_ratio: float
    outside_cord_share: float
    margin_mm: float
    cord_dice: float
    trust_recorded: int = 0
    cord_fragmented: int = 0

    def describe(self) -> str:
        """One line of text with every figure."""
        return (f"n {self.subjects}; lesion Dice tumours {self.lesion_dice_tumours:.3f} / demyelinating "
                f"{self.lesion_dice_demyelinating:.3f} / all {self.lesion_dice_all:.3f}; predicted / true "
                f"volume {self.volume_ratio:.3f}; beyond the cord + {self.margin_mm:g} mm {100 * self.outside_cord_share:.2f}%; "
                f"cord Dice {self.cord_dice:.3f}; cord fragmented (trust check) "
                + (f"{self.cord_fragmented} of {self.trust_recorded}" if self.trust_recorded else "not recorded"))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def pool_segmentation(reports: Iterable[Mapping]) -> PooledSegmentation:
    """Pool the records of ``evaluate`` reports (the parsed ``evaluation.json`` of each).

    Only subjects processed without error and with a lesion diagnosis count. Refused: reports
    with different margins around the cord, and a report written before records carried
    ``true_lesion_mm3`` (the volume ratio needs it).
    """
    reports = list(reports)
    margins = {report["segmentation"]["outside_cord"]["margin_mm"] for report in reports}
    if len(margins) != 1:
        raise ValueError(f"the reports measure the volume beyond the cord with different margins: {sorted(margins)}")
    records = [record for report in reports for record in report["records"]
               if record["status"] == "ok" and record["diagnosis"]]
    missing = [r["participant_id"] for r in records if r.get("true_lesion_mm3") is None]
    if missing:
        raise ValueError(f"records without true_lesion_mm3 (a report from an older evaluate?): {missing[:3]}")
    dice = [(r["lesion_dice"] or 0.0, r["diagnosis"] in TUMOURS) for r in records]
    with_outside = [r for r in records if r["outside_cord_mm3"] is not None]
    checked = [r for r in records if r.get("trust_checks") is not None]
    return PooledSegmentation(
        subjects=len(records),
        lesion_dice_tumours=_mean([d for d, tumour in dice if tumour]),
        lesion_dice_demyelinating=_mean([d for d, tumour in dice if not tumour]),
        lesion_dice_all=_mean([d for d, _ in dice]),
        volume_ratio=_ratio(sum(r["predicted_lesion_mm3"] for r in records),
                            sum(r["true_lesion_mm3"] for r in records)),
        outside_cord_share=_ratio(sum(r["outside_cord_mm3"] for r in with_outside),
                                  sum(r["predicted_lesion_mm3"] for r in with_outside)),
        margin_mm=margins.pop(),
        cord_dice=_mean([r["cord_dice"] for r in records if r["cord_dice"] is not None]),
        trust_recorded=len(checked),
        cord_fragmented=sum("cord_fragmented" in r["trust_checks"] for r in checked))
