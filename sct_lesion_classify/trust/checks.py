"""The named trust checks: one small function each, returning a :class:`TrustCheck` when it fires
and None when the result passes it (or when the check does not apply, e.g. no cord mask).

Codes (the ``flags`` column of the cohort CSV; the table in ``models/README.md`` explains each):

=========================  ===========  ==========================================================
code                       severity     fires when
=========================  ===========  ==========================================================
cord_fragmented            review       the localizer found many pieces, or kept a small share
cord_size_implausible      unreliable   away from the lesion, the cord's area or A-P diameter is
                                        not an adult cord's even in its upper (lower) quartile
                                        (literature, :mod:`.ranges`)
cord_coverage_low          review       the cord covers a small part of the field of view (the
                                        stretch below a conus, where the cord ends in the body,
                                        counts as covered: :func:`.measures.inferior_end`)
cord_gap                   review       the cord mask stops over a stretch inside the image
lesion_larger_than_cord    unreliable   lesion volume > cord volume over the lesion's extent
lesion_outside_cord        unreliable   most of the lesion lies outside the cord mask
lesion_many_components     review       many separate lesions
lesion_at_fov_edge         review       the lesion reaches the R-L or A-P border of the image
acquisition_<measure>      review       spacing, thickness, orientation, field of view or
                                        cord/CSF contrast outside the model cards' training data
slice_spread               review       a classifier's slice probabilities disagree
group_disagreement         review       model 1's group is not that of the most likely class
low_confidence_band        info         a deciding probability lies in its model's band (the
                                        diagnosis's confidence is already low; 19% of the
                                        held-out phantoms: it does not change the level)
=========================  ===========  ==========================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from sct_lesion_classify.trust.measures import (CONUS_TAPER_SHARE, CORD_BELOW_SHARE, AcquisitionMeasures,
                                                CordProfile, LesionMeasures)
from sct_lesion_classify.trust.ranges import CORD_AP_DIAMETER_MM, CORD_CSA_MM2, THRESHOLDS, Range, Thresholds

INFO = "info"
REVIEW = "review"
UNRELIABLE = "unreliable"
SEVERITIES = (INFO, REVIEW, UNRELIABLE)


@dataclass(frozen=True)
class TrustCheck:
    """One check that fired.

    Attributes
    ----------
    code
        Machine-readable name (see the module docstring).
    message
        One line for a person.
    value
        What was measured (None when not finite, e.g. a lesion with no cord around it).
    expected
        The range ``value`` should lie in.
    severity
        ``info`` (reported, the level stays), ``review`` or ``unreliable``.
    """

    code: str
    message: str
    value: float | None
    expected: Range
    severity: str

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        value = None if self.value is None or not math.isfinite(self.value) else float(self.value)
        object.__setattr__(self, "value", value)

    def to_json(self) -> dict:
        """The entry of the diagnosis JSON's ``trust.checks``."""
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "value": None if self.value is None else round(self.value, 4),
                "expected": self.expected.to_json()}


def _outside(code: str, value: float, expected: Range, severity: str, message: str) -> TrustCheck | None:
    return None if expected.contains(value) else TrustCheck(code, message, value, expected, severity)


# ------------------------------------------------------------------------------ cord localization
def cord_fragmented(pieces: int, kept_share: float, limits: Thresholds = THRESHOLDS) -> TrustCheck | None:
    """The cord localizer found more than ``limits.cord_pieces`` pieces, or kept a small share."""
    if pieces > limits.cord_pieces:
        return TrustCheck("cord_fragmented", f"the cord localizer found {pieces} separate pieces "
                          f"(kept the largest, {kept_share:.0%} of the voxels)", pieces,
                          Range(None, limits.cord_pieces), REVIEW)
    return _outside("cord_fragmented", kept_share, Range(limits.cord_kept_share, 1.0), REVIEW,
                    f"the cord mask kept {kept_share:.0%} of the voxels the localizer found")


def cord_size_implausible(profile: CordProfile) -> TrustCheck | None:
    """The cord's cross-sectional area or A-P diameter is not that of an adult cord: even its
    upper quartile along the mask is below the range, or even its lower quartile above it (silent
    when the size could not be measured away from the lesion: NaN)."""
    if math.isnan(profile.csa_low_mm2):
        return None
    for what, unit, low, high, expected in (
            ("area", "mm2", profile.csa_low_mm2, profile.csa_high_mm2, CORD_CSA_MM2),
            ("A-P diameter", "mm", profile.ap_low_mm, profile.ap_high_mm, CORD_AP_DIAMETER_MM)):
        if high < expected.low:
            quartile, value = "upper", high
        elif low > expected.high:
            quartile, value = "lower", low
        else:
            continue
        return TrustCheck("cord_size_implausible", f"the {quartile} quartile of the cord {what} along the "
                          f"mask, {value:.3g} {unit}, is outside the adult range "
                          f"({expected.describe(unit, 3)}): the cord mask is probably not the cord",
                          value, expected, UNRELIABLE)
    return None


def cord_coverage_low(profile: CordProfile, limits: Thresholds = THRESHOLDS) -> TrustCheck | None:
    """The cord covers less than ``limits.cord_coverage`` of the image's S-I extent, counting the
    stretch below a conus (``CordProfile.coverage``: a cord that ends in the body loses nothing)."""
    message = f"the cord mask covers {profile.coverage:.0%} of the image's superior-inferior extent"
    end = profile.inferior_end
    if end is not None and not end.is_conus:
        if end.cord_below_share > CORD_BELOW_SHARE:
            why = f"the image still shows a cord in {end.cord_below_share:.0%} of the rows below it"
        elif end.taper > CONUS_TAPER_SHARE:
            why = "it ends at full width, not in a tapering conus"
        else:
            why = "its end could not be read as the conus"
        message += f"; it stops {end.distance_to_edge_mm:.0f} mm above the inferior border and {why}"
    return _outside("cord_coverage_low", profile.coverage, Range(limits.cord_coverage, None), REVIEW, message)


def cord_gap(profile: CordProfile, limits: Thresholds = THRESHOLDS) -> TrustCheck | None:
    """The cord mask is missing over more than ``limits.cord_gap_mm`` inside its extent."""
    return _outside("cord_gap", profile.longest_gap_mm, Range(0.0, limits.cord_gap_mm), REVIEW,
                    f"no cord found over {profile.longest_gap_mm:.0f} mm between its two ends")


# ------------------------------------------------------------------------------------------ lesion
def lesion_larger_than_cord(lesion: LesionMeasures, limits: Thresholds = THRESHOLDS) -> TrustCheck | None:
    """The lesion is larger than the cord over its S-I extent: not intramedullary."""
    if math.isnan(lesion.cord_ratio):
        return None
    return _outside("lesion_larger_than_cord", lesion.cord_ratio, Range(0.0, limits.lesion_cord_ratio),
                    UNRELIABLE, f"the lesion ({lesion.volume_mm3:.0f} mm3) is {lesion.cord_ratio:.1f} times "
                    "the cord's volume over its extent: it is not intramedullary")


def lesion_outside_cord(lesion: LesionMeasures, limits: Thresholds = THRESHOLDS) -> TrustCheck | None:
    """More than ``limits.lesion_outside_share`` of the lesion lies outside the cord mask."""
    if math.isnan(lesion.outside_share):
        return None
    return _outside("lesion_outside_cord", lesion.outside_share, Range(0.0, limits.lesion_outside_share),
                    UNRELIABLE, f"{lesion.outside_share:.0%} of the lesion lies outside the cord mask")


def lesion_many_components(count: int, limits: Thresholds = THRESHOLDS) -> TrustCheck | None:
    """More than ``limits.lesion_components`` separate lesions."""
    return _outside("lesion_many_components", count, Range(None, limits.lesion_components), REVIEW,
                    f"{count} separate lesions: the segmentation may have picked up noise or look-alikes")


def lesion_at_fov_edge(lesion: LesionMeasures) -> TrustCheck | None:
    """The lesion reaches the right-left or anterior-posterior border of the image."""
    if not lesion.touches_edge:
        return None
    return TrustCheck("lesion_at_fov_edge", "the lesion reaches the right-left or anterior-posterior "
                      "border of the image: it is probably not in the cord, or incomplete", 1.0,
                      Range(0.0, 0.0), REVIEW)


# ------------------------------------------------------------------------------------- acquisition
#: AcquisitionMeasures field -> (what it is, unit) for the messages.
ACQUISITION_NAMES = {
    "in_plane_spacing_mm": ("in-plane voxel size", "mm"),
    "slice_thickness_mm": ("slice thickness (right-left voxel size)", "mm"),
    "thickness_ratio": ("right-left / superior-inferior voxel size (orientation: below 1 is an axial "
                        "acquisition resliced to sagittal)", ""),
    "fov_ap_mm": ("anterior-posterior field of view", "mm"),
    "fov_si_mm": ("superior-inferior field of view", "mm"),
    "cord_csf_ratio": ("cord/CSF intensity ratio (above 1: CSF darker than the cord, as on T1w)", ""),
}


def acquisition_outside_training(measure: str, value: float, trained: Range, model: str,
                                 limits: Thresholds = THRESHOLDS) -> TrustCheck | None:
    """``value`` of ``measure`` (a field of ``AcquisitionMeasures``) lies outside the range the
    model ``model`` was trained on, widened by ``limits.acquisition_slack`` on each side."""
    if value is None or math.isnan(value):
        return None
    slack = limits.acquisition_slack
    allowed = Range(trained.low * (1 - slack), trained.high * (1 + slack))
    what, unit = ACQUISITION_NAMES[measure]
    return _outside(f"acquisition_{measure}", value, allowed, REVIEW,
                    f"{what} {value:.3g}{' ' + unit if unit else ''} is outside the training data of "
                    f"{model} ({trained.describe(unit, 3)})")


def acquisition_checks(measures: AcquisitionMeasures, trained: Mapping[str, Range], model: str,
                       limits: Thresholds = THRESHOLDS) -> list[TrustCheck]:
    """:func:`acquisition_outside_training` for every measure the card gives a range for."""
    checks = [acquisition_outside_training(name, getattr(measures, name), trained[name], model, limits)
              for name in ACQUISITION_NAMES if name in trained]
    return [check for check in checks if check is not None]


# -------------------------------------------------------------------------------------- classifiers
def slice_spread(role: str, slice_probabilities: Iterable[float],
                 limits: Thresholds = THRESHOLDS) -> TrustCheck | None:
    """The standard deviation of a classifier's slice probabilities exceeds ``limits.slice_spread``."""
    values = np.asarray(list(slice_probabilities), float)
    if values.size < 2:
        return None
    spread = float(values.std())
    return _outside("slice_spread", spread, Range(0.0, limits.slice_spread), REVIEW,
                    f"{role}: the slice probabilities disagree (standard deviation {spread:.2f} over "
                    f"{values.size} slices)")


def group_disagreement(group: str, most_likely_group: str) -> TrustCheck | None:
    """Model 1 chose one group, models 2/3 made the other group's class the most likely."""
    if group == most_likely_group:
        return None
    return TrustCheck("group_disagreement", f"model 1 chose {group}, but the most likely class is "
                      f"{most_likely_group}", 1.0, Range(0.0, 0.0), REVIEW)


def low_confidence_band(name: str, probability: float, band: float) -> TrustCheck | None:
    """A deciding probability lies within its model's low-confidence band around 0.5.

    The value is the distance ``|p - 0.5|``; it should be at least ``band``. Severity ``info``: the
    model says so itself (the diagnosis's confidence is low), and it is no sign of an input the
    models do not know (it fires on 34 of 176 held-out in-distribution phantoms, seeds 2002, 7007,
    8008, 9009 and 10010).
    """
    distance = abs(float(probability) - 0.5)
    return _outside("low_confidence_band", distance, Range(band, 0.5), INFO,
                    f"{name} = {probability:.2f} lies within {band} of 0.5")
