"""Ranges a trustworthy result lies in: adult cord anatomy from the literature, and the measured
thresholds of the trust checks.

The anatomy ranges are wide on purpose: they are not a diagnostic reference (a swollen cord is what
the tool looks for), but a plausibility bound on the *median* along the cord, which a few swollen
slices do not move. A cord mask whose median area or A-P diameter lies outside them is not a cord
(neck muscle, fat, CSF taken for cord: the failure of issue 18).

Sources (adult cervical cord, MRI):

- Kato F, Yukawa Y, Suda K, Yamagata M, Ueta T. Normal morphology, age-related changes and abnormal
  findings of the cervical spine. Part II: magnetic resonance imaging of over 1,200 asymptomatic
  subjects. Eur Spine J 2012;21:1499-1507. Cord cross-sectional area 78.1 +- 9.4 mm2 (men) and
  74.4 +- 9.4 mm2 (women) at mid-C5; 70.6 +- 11.7 / 68.9 +- 11.3 mm2 at the C5/6 disc.
- Sherman JL, Nassaux PY, Citrin CM. Measurements of the normal cervical spinal cord on MR imaging.
  AJNR 1990;11:369-372. A-P diameter 8.8 mm at C2, 8.7 mm at C4, 7.4 mm at C7 (66 subjects).
- Frostell A, Hakim R, Thelin EP, Mattsson P, Svensson M. A review of the segmental diameter of the
  healthy human spinal cord. Front Neurol 2016;7:238. Pooled cervical A-P diameters of about
  7-9 mm (11 studies), with between-study differences of up to several mm.

:data:`THRESHOLDS` are the limits of the checks that have no literature value (shares, ratios,
counts); they were chosen on held-out phantoms, the shifted style and the real scan
(``bench/trust_levels.py``; the table is in ``models/README.md``, section "Trust flags").
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """A closed interval; ``None`` for an open end."""

    low: float | None = None
    high: float | None = None

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the range (a NaN does not)."""
        if value is None or math.isnan(value):
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def describe(self, unit: str = "", digits: int = 2) -> str:
        """``"40-130 mm2"``, ``">= 0.6"``, ``"<= 3"``."""
        suffix = f" {unit}" if unit else ""
        if self.low is not None and self.high is not None:
            return f"{self.low:.{digits}g}-{self.high:.{digits}g}{suffix}"
        if self.low is not None:
            return f">= {self.low:.{digits}g}{suffix}"
        return f"<= {self.high:.{digits}g}{suffix}"

    def to_json(self) -> dict:
        """``{"min": low, "max": high}`` (null for an open end; 6 significant digits)."""
        return {"min": None if self.low is None else float(f"{self.low:.6g}"),
                "max": None if self.high is None else float(f"{self.high:.6g}")}


#: Adult cord cross-sectional area (mm2). Kato 2012: 69-78 mm2 (SD 9-12) in the lower cervical
#: cord, so about 40-110 mm2 for mean +- 3 SD.
NORMAL_CORD_CSA_MM2 = Range(40.0, 110.0)
#: Adult cord A-P diameter (mm). Sherman 1990: 7.4-8.8 mm from C2 to C7; Frostell 2016: 7-9 mm.
NORMAL_CORD_AP_DIAMETER_MM = Range(6.0, 10.0)
#: What the check accepts for the *median* along the cord's mask: the normal ranges widened for a
#: cord swollen by a long lesion (the held-out phantoms reach a median of 219 mm2 and 15 mm with
#: a holocord tumour) and for a thin cord (down to 42 mm2, 5.9 mm): a muscle or fat mask is far
#: larger, a stray piece of CSF far smaller.
CORD_CSA_MM2 = Range(25.0, 250.0)
CORD_AP_DIAMETER_MM = Range(4.0, 16.0)


@dataclass(frozen=True)
class Thresholds:
    """Limits of the checks without a literature value (measured, see the module docstring)."""

    #: The builtin localizer's mask: pieces found before keeping the largest (held-out phantoms:
    #: up to 7; issue 18's failure: 22), and the share kept (phantoms: 0.78 and more).
    cord_pieces: int = 8
    cord_kept_share: float = 0.7
    #: Share of the image's S-I extent that the cord spans (phantoms: 0.83 and more).
    cord_coverage: float = 0.6
    #: Longest S-I stretch without cord between the cord's two ends (mm; phantoms: 0).
    cord_gap_mm: float = 10.0
    #: Lesion volume / cord volume over the lesion's S-I extent (phantoms: up to 0.92).
    lesion_cord_ratio: float = 1.0
    #: Share of the lesion's voxels outside the cord mask (phantoms: up to 0.46).
    lesion_outside_share: float = 0.6
    #: Connected lesion components (phantoms: up to 9, look-alikes segmented beside the lesion).
    lesion_components: int = 10
    #: Per classifier: standard deviation of the slice probabilities (phantoms: up to 0.42).
    slice_spread: float = 0.45
    #: Slack around the training data's acquisition ranges (fraction of the range's value).
    acquisition_slack: float = 0.1


THRESHOLDS = Thresholds()
