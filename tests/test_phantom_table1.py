"""The phantoms' class-conditional distributions stay within stated tolerances of Zhuo et al. Table 1
(the figures of ``cohort.PROFILES``; ``phantom.table1``, ``docs/phantoms.md``).

Parameters: 400 subjects per class (cheap). Masks: 60 realistic subjects per class at 13 x 96 x 224
(about 0.05 s each) and 3 randomised subjects per class on 1.5 mm voxels. Tolerances are about three
standard errors of the sample, or stated below.
"""

from __future__ import annotations

import numpy as np
import pytest

from sct_lesion_classify.phantom.cohort import DIAGNOSES
from sct_lesion_classify.phantom.table1 import (
    LOCATIONS, ClassSummary, Spread, class_summaries, comparison_markdown, draw_records, location_of,
    summarise, targets)

TARGETS = targets()


@pytest.fixture(scope="module")
def drawn() -> dict[str, ClassSummary]:
    return {d: summarise(draw_records(d, 400, seed=11, render=False)) for d in DIAGNOSES}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list]:
    return {d: draw_records(d, 60, seed=12) for d in DIAGNOSES}


@pytest.fixture(scope="module")
def measured(rendered) -> dict[str, ClassSummary]:
    return {d: summarise(records) for d, records in rendered.items()}


# ------------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("diagnosis", DIAGNOSES)
def test_drawn_parameters_follow_the_targets(drawn, diagnosis):
    s, t = drawn[diagnosis], TARGETS[diagnosis]
    np.testing.assert_allclose(s.location_drawn, t.location, atol=0.08)
    assert abs(s.enhancing - t.enhancement) < 0.07
    assert abs(s.female - t.female) < 0.08
    assert abs(s.age.mean - t.age[0]) < 2.5 and abs(s.age.sd / t.age[1] - 1) < 0.2
    assert s.count_drawn.median == t.count_median
    assert abs(s.single_lesion_drawn - t.single_lesion) < 0.07
    # extension: log-normal with Table 1's median; its quartiles within 0.75 segment of Table 1's
    median, q1, q3 = t.extent_segments
    assert abs(s.extent_drawn.median / median - 1) < 0.12
    assert abs(s.extent_drawn.q1 - q1) < 0.75 and abs(s.extent_drawn.q3 - q3) < 0.75
    # volume: log-normal with Table 1's mean and SD (its median is below the mean)
    mean, sd = t.volume_ml
    lognormal_median = mean / np.sqrt(1 + (sd / mean) ** 2)
    assert abs(np.log(s.volume_drawn.median / lognormal_median)) < np.log(1.15)


def test_the_classes_differ_as_in_table1(drawn):
    assert drawn["NMOSD"].extent_drawn.mean >= 3.0 > drawn["ependymoma"].extent_drawn.median
    assert drawn["astrocytoma"].extent_drawn.median > drawn["ependymoma"].extent_drawn.median
    assert drawn["astrocytoma"].age.mean < drawn["ependymoma"].age.mean
    assert drawn["NMOSD"].female > drawn["MS"].female > drawn["ependymoma"].female
    for demyelinating in ("MS", "NMOSD"):
        assert drawn[demyelinating].location_drawn[LOCATIONS.index("conus")] == 0.0
        assert drawn[demyelinating].enhancing < 0.25 < drawn["ependymoma"].enhancing


@pytest.mark.parametrize("style", ["randomised", "shifted"])
def test_random_styles_draw_the_same_patients(style):
    for diagnosis in DIAGNOSES:
        realistic = draw_records(diagnosis, 25, seed=5, render=False)
        styled = draw_records(diagnosis, 25, seed=5, style=style, render=False)
        assert [r.params for r in styled] == [r.params for r in realistic]


# ----------------------------------------------------------------------------- the masks


@pytest.mark.parametrize("diagnosis", DIAGNOSES)
def test_masks_measure_what_was_drawn(rendered, diagnosis):
    """Paired per subject: the rendering does not shorten the lesion, nor change its volume beyond
    the stated factor (the astrocytomas' former extension factor of 0.87 and volume factor of 1.2,
    which the masks did not need, fail here)."""
    records = [r for r in rendered[diagnosis] if r.stats.total_volume_ml > 0]
    assert len(records) >= 57
    extent = np.array([r.stats.extent_segments / r.params.extent_segments for r in records])
    assert 0.93 < np.median(extent) < 1.07, np.median(extent)
    volume = np.array([r.stats.total_volume_ml / r.params.volume_ml for r in records])
    # astrocytomas are never clipped: measured = drawn. The largest ependymomas, MS plaques and NMOSD
    # lesions are clipped to the cord, which their volume factor (lesions.VOLUME_CALIBRATION, 1.12-1.2)
    # makes up on the mean by inflating the typical lesion by 5-20%
    low, high = (0.93, 1.07) if diagnosis == "astrocytoma" else (1.0, 1.25)
    assert low < np.median(volume) < high, np.median(volume)
    counted = np.array([r.stats.count for r in records])
    drawn_count = np.array([r.params.count for r in records])
    assert np.mean(counted == drawn_count) > 0.8


@pytest.mark.parametrize("diagnosis", DIAGNOSES)
def test_measured_figures_near_table1(measured, diagnosis):
    s, t = measured[diagnosis], TARGETS[diagnosis]
    assert abs(s.extent_measured.median - t.extent_segments[0]) < 0.75
    assert abs(s.single_lesion_measured - t.single_lesion) < 0.15
    np.testing.assert_allclose(s.location_measured, t.location, atol=0.2)


def test_ms_plaques_are_short_and_nmosd_lesions_long(measured):
    ms, nmosd = measured["MS"], measured["NMOSD"]
    assert ms.lesion_extent_measured.q3 < 2.0          # most MS plaques span less than 2 segments
    assert nmosd.extent_measured.mean >= 3.0           # NMOSD: longitudinally extensive on average
    assert nmosd.lesion_extent_measured.median > 1.5 * ms.lesion_extent_measured.median
    assert measured["astrocytoma"].volume_measured.median < measured["ependymoma"].volume_measured.median


def test_randomised_masks_measure_what_was_drawn():
    ratios = []
    for diagnosis in DIAGNOSES:
        for record in draw_records(diagnosis, 3, seed=21, style="randomised", voxel_floor_mm=1.5):
            if record.stats is not None:  # not cut by a crop
                ratios.append(record.stats.extent_segments / record.params.extent_segments)
    assert len(ratios) >= 9
    assert 0.9 < np.median(ratios) < 1.1, ratios


# ------------------------------------------------------------------------- the tool itself


def test_location_rule():
    assert location_of(2.0, 5.0, 20.0) == "cervical"
    assert location_of(5.0, 10.0, 20.0) == "thoracic"     # middle at T1
    assert location_of(16.0, 19.2, 20.0) == "conus"       # ends within one segment of the conus tip
    assert location_of(12.0, 18.5, 20.0) == "thoracic"


def test_spread_and_summary_errors():
    spread = Spread.of([1, 2, 3, 4])
    assert (spread.n, spread.mean, spread.median, spread.q1, spread.q3) == (4, 2.5, 2.5, 1.75, 3.25)
    assert Spread.of([]).n == 0 and np.isnan(Spread.of([]).mean)
    with pytest.raises(ValueError, match="no records"):
        summarise([])
    mixed = draw_records("MS", 1, render=False) + draw_records("NMOSD", 1, render=False)
    with pytest.raises(ValueError, match="several"):
        summarise(mixed)
    with pytest.raises(ValueError, match="unknown diagnosis"):
        draw_records("glioma", 1)
    with pytest.raises(ValueError, match="unknown style"):
        draw_records("MS", 1, style="synthseg")


def test_comparison_table_lists_every_class_with_its_targets():
    text = comparison_markdown(class_summaries(4, styles=("realistic",), render=False))
    for diagnosis in DIAGNOSES:
        assert f"| {diagnosis} | target | realistic (drawn ; measured) |" in text
    assert "| volume, ml: mean +/- SD | 12.6 +/- 10.8 |" in text     # astrocytoma, Table 1
    assert "| enhancement on cT1w | 13% |" in text                   # MS, Table 1
