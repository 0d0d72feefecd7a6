"""Phantom generator: orientation round trip, determinism, masks, class-conditional statistics."""

from __future__ import annotations

import dataclasses

import nibabel as nib
import numpy as np
import pytest

from sct_lesion_classify.io import bids
from sct_lesion_classify.io.image import load_image, load_mask, save_like, sct_orientation
from sct_lesion_classify.phantom import DIAGNOSES, generate_subject
from sct_lesion_classify.phantom.cohort import PROFILES
from sct_lesion_classify.phantom.dataset import subject_seed, write_dataset, write_subject
from sct_lesion_classify.phantom.geometry import STORAGE_ORIENTATIONS

SMALL = (11, 80, 160)  # canonical (RL, AP, SI)


@pytest.fixture(scope="module")
def subject():
    return generate_subject(7, "ependymoma", shape=SMALL, with_t1c=True)


@pytest.mark.parametrize("axcodes", STORAGE_ORIENTATIONS, ids=lambda a: "".join(a))
def test_orientation_round_trip_is_exact(tmp_path, subject, axcodes):
    stored = dataclasses.replace(subject, storage_axcodes=axcodes)
    paths = write_subject(tmp_path, stored)
    image = load_image(paths["t2w"])
    assert image.grid.orientation == sct_orientation(axcodes)
    assert image.shape == SMALL
    np.testing.assert_array_equal(image.data, subject.t2w)
    np.testing.assert_allclose(image.affine, subject.affine, atol=1e-4)
    np.testing.assert_array_equal(load_image(paths["t1c"]).data, subject.t1c)
    cord, warnings = load_mask(paths["cord_mask"], image.grid)
    lesion, _ = load_mask(paths["lesion_mask"], image.grid)
    assert warnings == []
    np.testing.assert_array_equal(cord, subject.cord_mask)
    np.testing.assert_array_equal(lesion, subject.lesion_mask)
    on_disk = nib.load(str(paths["t2w"]))
    assert on_disk.get_data_dtype() == np.int16
    assert int(on_disk.header["sform_code"]) == 1 and int(on_disk.header["qform_code"]) == 1
    assert nib.load(str(paths["lesion_mask"])).get_data_dtype() == np.uint8
    out = tmp_path / "back.nii.gz"
    save_like(image.data, image.grid, out, np.float32)
    back = nib.load(str(out))
    assert back.shape == on_disk.shape
    np.testing.assert_allclose(back.affine, on_disk.affine, atol=1e-6)
    for code in ("sform_code", "qform_code"):
        assert int(back.header[code]) == int(on_disk.header[code])
    np.testing.assert_array_equal(np.asarray(back.dataobj), np.asarray(on_disk.dataobj))


def test_generator_stores_in_listed_orientations():
    seen = {generate_subject(seed, "MS", shape=(5, 40, 80)).storage_axcodes for seed in range(12)}
    assert seen <= set(STORAGE_ORIENTATIONS)
    assert len(seen) >= 4


def test_same_seed_same_subject():
    a = generate_subject(11, "NMOSD", shape=SMALL, with_t1c=True)
    b = generate_subject(11, "NMOSD", shape=SMALL, with_t1c=True)
    for field in ("t2w", "t1c", "cord_mask", "lesion_mask", "affine"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.lesion_stats == b.lesion_stats and a.storage_axcodes == b.storage_axcodes
    c = generate_subject(12, "NMOSD", shape=SMALL)
    assert not np.array_equal(a.t2w, c.t2w)


def test_subject_k_does_not_depend_on_n(tmp_path):
    small = write_dataset(tmp_path / "a", 2, seed=5, shape=(5, 48, 96))
    large = write_dataset(tmp_path / "b", 5, seed=5, shape=(5, 48, 96))
    for s, t in zip(small, large):
        assert (s.participant_id, s.diagnosis, s.split, s.age, s.sex) == (
            t.participant_id, t.diagnosis, t.split, t.age, t.sex)
        np.testing.assert_array_equal(load_image(s.t2w).data, load_image(t.t2w).data)


@pytest.mark.parametrize("diagnosis", DIAGNOSES)
def test_masks_lie_inside_the_cord(diagnosis):
    for seed in range(3):
        s = generate_subject(seed, diagnosis, shape=SMALL)
        assert s.lesion_mask.any()
        assert not (s.lesion_mask & ~s.cord_mask).any()
        assert s.t2w.shape == s.cord_mask.shape == s.lesion_mask.shape == SMALL
        assert s.cord_mask.dtype == bool and s.t2w.dtype == np.float32
        assert s.lesion_stats.count >= 1 and s.lesion_stats.total_volume_ml > 0
        # the cord shows up darker than the CSF around it, the air outside the body is dark
        assert np.median(s.t2w[s.cord_mask & ~s.lesion_mask]) < np.percentile(s.t2w, 99)
        assert np.percentile(s.t2w, 2) < 0.1 * np.percentile(s.t2w, 99)


def test_unknown_diagnosis_is_refused():
    with pytest.raises(ValueError, match="unknown diagnosis"):
        generate_subject(0, "glioma", shape=SMALL)


def test_lesion_signs_in_intensity():
    """Cysts are brighter than the solid tumour, which is brighter than the cord."""
    s = generate_subject(3, "astrocytoma", shape=(13, 120, 240))
    cord = np.median(s.t2w[s.cord_mask & ~s.lesion_mask])
    lesion = np.median(s.t2w[s.lesion_mask])
    assert lesion > 1.2 * cord


# ----------------------------------------------------------------------------------------------
# class-conditional statistics over 200 subjects, measured from the generated masks


@pytest.fixture(scope="module")
def cohort_stats():
    per_class: dict[str, list] = {d: [] for d in DIAGNOSES}
    for k in range(200):
        diagnosis = DIAGNOSES[k % 4]
        s = generate_subject(subject_seed(2024, k), diagnosis, shape=(13, 96, 224))
        assert not (s.lesion_mask & ~s.cord_mask).any()
        per_class[diagnosis].append(s)
    return per_class


def _values(subjects, name):
    return np.array([getattr(s.lesion_stats, name) for s in subjects], dtype=float)


TARGET_EXTENT = {d: PROFILES[d].extent_segments[0] for d in DIAGNOSES}


@pytest.mark.parametrize("diagnosis", DIAGNOSES)
def test_volume_median_matches_target(cohort_stats, diagnosis):
    mu, _ = PROFILES[diagnosis].log_volume()  # log-normal with the published mean and SD
    measured = np.median(_values(cohort_stats[diagnosis], "total_volume_ml"))
    assert abs(np.log(measured) - mu) < np.log(1.3), (measured, np.exp(mu))
    mean = _values(cohort_stats[diagnosis], "total_volume_ml").mean()
    assert 0.6 * PROFILES[diagnosis].volume_ml[0] < mean < 1.4 * PROFILES[diagnosis].volume_ml[0]


@pytest.mark.parametrize("diagnosis", DIAGNOSES)
def test_extent_and_count_medians_match_target(cohort_stats, diagnosis):
    extent = _values(cohort_stats[diagnosis], "extent_segments")
    assert abs(np.median(extent) - TARGET_EXTENT[diagnosis]) <= 0.75
    count = _values(cohort_stats[diagnosis], "count")
    single = np.mean(count == 1)
    # published: tumours 1; MS median 2 (IQR 1-3); NMOSD median 1 (IQR 1-2)
    expected = {"astrocytoma": (1, 0.95, 1.0), "ependymoma": (1, 0.95, 1.0), "MS": (2, 0.15, 0.5),
                "NMOSD": (1, 0.45, 0.8)}
    median, low, high = expected[diagnosis]
    assert np.median(count) == median
    assert low <= single <= high
    assert np.percentile(count, 75) <= median + 2  # 50 subjects: sampling noise on the IQR


def test_classes_overlap_but_differ(cohort_stats):
    vol = {d: _values(cohort_stats[d], "total_volume_ml") for d in DIAGNOSES}
    ext = {d: _values(cohort_stats[d], "extent_segments") for d in DIAGNOSES}
    ecc = {d: _values(cohort_stats[d], "eccentricity") for d in DIAGNOSES}

    def overlap(a, b):  # share of a inside the 10-90% range of b
        lo, hi = np.percentile(b, [10, 90])
        return np.mean((a >= lo) & (a <= hi))

    # siblings overlap in volume and extension...
    assert overlap(vol["astrocytoma"], vol["ependymoma"]) > 0.5
    assert overlap(vol["MS"], vol["NMOSD"]) > 0.4
    assert overlap(ext["MS"], ext["NMOSD"]) > 0.5
    assert overlap(ext["astrocytoma"], ext["ependymoma"]) > 0.4
    # ...tumours and demyelinating lesions overlap a little, not much
    tumor = np.concatenate([vol["astrocytoma"], vol["ependymoma"]])
    demyel = np.concatenate([vol["MS"], vol["NMOSD"]])
    assert 0.0 < overlap(demyel, tumor) < 0.5
    # position in the cord differs on average (central ependymoma / NMOSD)
    assert np.median(ecc["astrocytoma"]) > 2 * np.median(ecc["ependymoma"])
    assert np.median(ecc["MS"]) > 2 * np.median(ecc["NMOSD"])
    # some but not most subjects are difficult
    difficult = np.mean([s.difficult for d in DIAGNOSES for s in cohort_stats[d]])
    assert 0.05 < difficult < 0.5


def test_demographics_and_enhancement(cohort_stats):
    def female(d):
        return np.mean([s.sex == "F" for s in cohort_stats[d]])

    assert female("NMOSD") > 0.7 and female("MS") > 0.5 and female("astrocytoma") < 0.65
    ages = {d: np.median([s.age for s in cohort_stats[d]]) for d in DIAGNOSES}
    assert ages["astrocytoma"] < ages["ependymoma"]
    for d in DIAGNOSES:
        rate = np.mean([s.lesion_stats.enhancing for s in cohort_stats[d]])
        assert abs(rate - PROFILES[d].enhancement_rate) < 0.2
    ependymoma_levels = [s.lesion_stats.levels[0][0] for s in cohort_stats["ependymoma"]]
    assert 0.45 < np.mean([c == "C" for c in ependymoma_levels]) < 0.9
