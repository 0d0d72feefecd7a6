"""Trust checks (issue 18): each check fires on a case built to trigger it and stays silent on a
clean one; the levels; the diagnosis JSON (schema 2, old version 1 still read); the cohort CSV's
trust columns; the cards' training_data section; the QC badge."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
from pathlib import Path

import numpy as np
import pytest

from sct_lesion_classify.batch.table import COLUMNS, COLUMNS_WITHOUT_TRUST, outcome_from_document, read_table
from sct_lesion_classify.classify.diagnosis import ClassifierResult, compose_diagnosis
from sct_lesion_classify.classify.document import validation_errors
from sct_lesion_classify.cord.localize import CordLocalization
from sct_lesion_classify.modelpkg.card import ModelCard, TrainingDataRanges, ValueRange
from sct_lesion_classify.trust import assess, classification_checks, segmentation_checks
from sct_lesion_classify.trust import checks
from sct_lesion_classify.trust.acquisition import card_ranges, ranges_of, training_data_ranges
from sct_lesion_classify.trust.measures import acquisition_measures, cord_profile, lesion_measures
from sct_lesion_classify.trust.ranges import Range

ROOT = Path(__file__).resolve().parents[1]
SHA = "a" * 64
ZOOMS = (3.0, 0.8, 0.8)  # sagittal: 3 mm slices, 0.8 mm in plane
SHAPE = (9, 64, 100)


def cord_mask() -> np.ndarray:
    """A straight cord: 3 slices (9 mm) x 10 voxels (8 mm) A-P over the whole S-I extent (72 mm2)."""
    mask = np.zeros(SHAPE, bool)
    mask[3:6, 28:38, :] = True
    return mask


def cord_with_thin_tail(rows: int) -> np.ndarray:
    """:func:`cord_mask` whose lowest ``rows`` are a thin tail of 2 x 2 voxels (9.6 mm2), as the
    conus and the mask the localizer draws below it."""
    mask = cord_mask()
    mask[:, :, :rows] = False
    mask[4:6, 32:34, :rows] = True
    return mask


def image(csf: float = 200.0) -> np.ndarray:
    data = np.full(SHAPE, 50.0, np.float32)
    data[:, 22:44, :] = csf
    data[cord_mask()] = 100.0
    return data


def lesion_inside() -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[4, 30:35, 40:56] = True
    return mask


def cord(mask=None, pieces=1, kept_share=1.0) -> CordLocalization:
    return CordLocalization(mask=cord_mask() if mask is None else mask, source="builtin", pieces=pieces,
                            kept_share=kept_share)


def codes(fired) -> list[str]:
    return [check.code for check in fired if check is not None]


# ------------------------------------------------------------------------------------- each check
def test_clean_case_fires_nothing():
    assert codes(segmentation_checks(image(), ZOOMS, cord(), lesion_inside())) == []
    profile = cord_profile(cord_mask(), ZOOMS)
    assert profile.csa_low_mm2 == profile.csa_high_mm2 == pytest.approx(72.0)
    assert profile.ap_low_mm == profile.ap_high_mm == pytest.approx(8.0)
    assert profile.coverage == profile.mask_coverage == 1.0 and profile.longest_gap_mm == 0.0
    assert assess(segmentation_checks(image(), ZOOMS, cord(), lesion_inside())).level == "ok"


def test_cord_fragmented():
    assert checks.cord_fragmented(1, 1.0) is None
    fired = checks.cord_fragmented(22, 0.4)
    assert fired.code == "cord_fragmented" and fired.value == 22 and fired.severity == "review"
    assert checks.cord_fragmented(2, 0.5).value == 0.5  # few pieces, but most voxels dropped


def test_cord_size_implausible():
    wide = np.zeros(SHAPE, bool)
    wide[1:8, 10:50, :] = True  # 40 voxels A-P = 32 mm: neck muscle, not cord
    fired = checks.cord_size_implausible(cord_profile(wide, ZOOMS))
    assert fired.code == "cord_size_implausible" and fired.severity == "unreliable"
    assert checks.cord_size_implausible(cord_profile(cord_mask(), ZOOMS)) is None


def test_cord_size_is_judged_away_from_the_lesion():
    swollen = cord_mask()
    swollen[1:8, 20:46, 5:95] = True  # a tumour swells the cord to 21 x 21 mm over 72 mm
    lesion = np.zeros(SHAPE, bool)
    lesion[2:7, 24:42, 8:92] = True
    assert checks.cord_size_implausible(cord_profile(swollen, ZOOMS)) is not None  # rows 5-94 dominate
    profile = cord_profile(swollen, ZOOMS, lesion)
    assert profile.csa_low_mm2 == pytest.approx(72.0)  # the cord above and below the lesion
    assert checks.cord_size_implausible(profile) is None
    holocord = np.zeros(SHAPE, bool)
    holocord[2:7, 24:42, 2:98] = True  # 4 rows (3.2 mm) of cord outside the lesion: not judged
    assert np.isnan(cord_profile(swollen, ZOOMS, holocord).csa_low_mm2)
    assert checks.cord_size_implausible(cord_profile(swollen, ZOOMS, holocord)) is None


def test_cord_size_reads_quartiles_a_tapering_conus_is_no_thin_cord():
    # a long lesion leaves the conus and a thin tail of mask below it (rows 0-44, 2 x 2 voxels:
    # 9.6 mm2) and 72 mm2 of cord above it (rows 75-99): most of the judged rows are the tail, so
    # their median is the tail's
    tapered = cord_with_thin_tail(45)
    lesion = np.zeros(SHAPE, bool)
    lesion[4, 30:35, 45:75] = True
    profile = cord_profile(tapered, ZOOMS, lesion)
    assert profile.csa_low_mm2 == pytest.approx(9.6) and profile.csa_high_mm2 == pytest.approx(72.0)
    assert checks.cord_size_implausible(profile) is None
    thread = np.zeros(SHAPE, bool)
    thread[4:6, 32:34, :] = True  # thin everywhere: a stray strip of CSF, not a cord
    fired = checks.cord_size_implausible(cord_profile(thread, ZOOMS))
    assert fired.value == pytest.approx(9.6) and "upper quartile" in fired.message


def test_cord_size_counts_the_normal_cord_between_lesions():
    # the README's quick-start case: a thin tail of mask below the conus (rows 0-49, 9.6 mm2), a
    # small false lesion in that tail (rows 10-12), the tumour (rows 50-64) and a false one at the
    # top (row 98). The lesions' whole S-I extent (rows 10-98) would leave only the tail to judge;
    # row by row, the normal cord of rows 65-97 is there too.
    tail = cord_with_thin_tail(50)
    lesion = np.zeros(SHAPE, bool)
    lesion[4, 32:34, 10:13] = True
    lesion[4, 30:35, 50:65] = True
    lesion[4, 30:32, 98] = True
    profile = cord_profile(tail, ZOOMS, lesion)
    assert profile.csa_high_mm2 == pytest.approx(72.0)
    assert checks.cord_size_implausible(profile) is None
    assert codes(segmentation_checks(image(), ZOOMS, cord(tail), lesion)).count("cord_size_implausible") == 0


def test_cord_coverage_and_gap():
    short = cord_mask()
    short[:, :, 40:] = False
    assert checks.cord_coverage_low(cord_profile(short, ZOOMS)).value == pytest.approx(0.4)
    assert checks.cord_gap(cord_profile(short, ZOOMS)) is None
    gapped = cord_mask()
    gapped[:, :, 50:70] = False
    assert checks.cord_gap(cord_profile(gapped, ZOOMS)).value == pytest.approx(16.0)
    assert checks.cord_coverage_low(cord_profile(gapped, ZOOMS)) is None


def ending_cord(taper: bool = True) -> np.ndarray:
    """A cord over rows 50-99 whose inferior end lies inside the image: a conus tip (rows 44-49,
    2 voxels: 4.8 mm2) when ``taper``, else cut at full width at row 50."""
    mask = cord_mask()
    mask[:, :, :50] = False
    if taper:
        mask[4, 32:34, 44:50] = True
    return mask


def canal_below(mask: np.ndarray, cord_below: bool) -> np.ndarray:
    """The image of ``mask``: below its end either the cord runs on (a cord the localizer lost) or
    the sac holds CSF and one thin root (the cauda equina)."""
    data = np.full(SHAPE, 50.0, np.float32)
    data[:, 22:44, :] = 200.0
    data[mask] = 100.0
    if cord_below:
        data[3:6, 28:38, :44] = 100.0
    else:
        data[4, 33, :44] = 100.0  # a root: 0.8 mm
    return data


def test_a_cord_that_ends_in_the_conus_covers_the_image():
    conus = ending_cord()
    profile = cord_profile(conus, ZOOMS, None, canal_below(conus, cord_below=False))
    end = profile.inferior_end
    assert end.distance_to_edge_mm == pytest.approx(44 * 0.8)
    assert end.taper == pytest.approx(4.8 / 72.0) and end.cord_below_share == 0.0 and end.is_conus
    assert profile.mask_coverage == pytest.approx(0.56) and profile.coverage == 1.0
    assert checks.cord_coverage_low(profile) is None
    fired = segmentation_checks(canal_below(conus, cord_below=False), ZOOMS, cord(conus), lesion_inside() & conus)
    assert "cord_coverage_low" not in codes(fired)
    # without the image (a caller that has none), the end is not read: the mask's extent counts
    assert cord_profile(conus, ZOOMS).inferior_end is None
    assert cord_profile(conus, ZOOMS).coverage == pytest.approx(0.56)


def test_a_cord_lost_over_a_stretch_is_low_coverage():
    conus = ending_cord()
    lost = cord_profile(conus, ZOOMS, None, canal_below(conus, cord_below=True))
    assert lost.inferior_end.cord_below_share == 1.0 and not lost.inferior_end.is_conus
    fired = checks.cord_coverage_low(lost)
    assert fired.value == pytest.approx(0.56) and "still shows a cord" in fired.message
    cut = ending_cord(taper=False)
    abrupt = cord_profile(cut, ZOOMS, None, canal_below(cut, cord_below=False))
    assert abrupt.inferior_end.taper == pytest.approx(1.0) and not abrupt.inferior_end.is_conus
    assert "full width" in checks.cord_coverage_low(abrupt).message
    # a T1-like contrast (CSF darker than the cord) gives nothing to read a cord by: not a conus
    dark_csf = canal_below(conus, cord_below=False)
    dark_csf[:, 22:44, :] = 20.0
    dark_csf[conus] = 100.0
    unread = cord_profile(conus, ZOOMS, None, dark_csf).inferior_end
    assert math.isnan(unread.cord_below_share) and not unread.is_conus
    # a mask that reaches the inferior border has no end to read
    assert cord_profile(cord_mask(), ZOOMS, None, image()).inferior_end is None


def test_lesion_larger_than_cord_and_outside():
    muscle = np.zeros(SHAPE, bool)
    muscle[:, 0:20, 40:60] = True  # posterior muscle taken for lesion
    measured = lesion_measures(muscle, cord_mask(), ZOOMS)
    assert checks.lesion_larger_than_cord(measured).severity == "unreliable"
    assert checks.lesion_outside_cord(measured).value == 1.0
    clean = lesion_measures(lesion_inside(), cord_mask(), ZOOMS)
    assert checks.lesion_larger_than_cord(clean) is None and checks.lesion_outside_cord(clean) is None
    no_cord = lesion_measures(muscle, None, ZOOMS)  # no cord mask: the checks do not apply
    assert checks.lesion_larger_than_cord(no_cord) is None and checks.lesion_outside_cord(no_cord) is None


def test_lesion_many_components_and_fov_edge():
    dots = np.zeros(SHAPE, bool)
    dots[4, 32, 2:98:4] = True  # 24 separate dots
    measured = lesion_measures(dots, cord_mask(), ZOOMS)
    assert measured.components == 24 and checks.lesion_many_components(measured.components).value == 24
    assert checks.lesion_many_components(1) is None
    for face in ((slice(0, 1), slice(30, 35)), (slice(4, 5), slice(60, 64))):  # R-L, then A-P border
        at_edge = lesion_inside()
        at_edge[face[0], face[1], 40:45] = True
        assert checks.lesion_at_fov_edge(lesion_measures(at_edge, cord_mask(), ZOOMS)).code == "lesion_at_fov_edge"
    cut = lesion_inside()
    cut[4, 30:35, 0:10] = True  # cut by the superior-inferior field of view: common, not flagged
    assert checks.lesion_at_fov_edge(lesion_measures(cut, cord_mask(), ZOOMS)) is None
    assert checks.lesion_at_fov_edge(lesion_measures(lesion_inside(), cord_mask(), ZOOMS)) is None
    # a cord that reaches the first sagittal slice, its lesion with it: the lesion is in the cord
    lateral_cord = cord_mask()
    lateral_cord[0:3, 28:38, 30:60] = True
    lateral = lesion_inside()
    lateral[0:4, 30:35, 40:45] = True
    assert checks.lesion_at_fov_edge(lesion_measures(lateral, lateral_cord, ZOOMS)) is None
    assert checks.lesion_at_fov_edge(lesion_measures(lateral, None, ZOOMS)) is not None  # no cord mask


def trained_ranges() -> dict[str, Range]:
    clean = acquisition_measures(image(), ZOOMS, cord_mask())
    return {name: Range(getattr(clean, name) * 0.9, getattr(clean, name) * 1.1)
            for name in checks.ACQUISITION_NAMES}


def test_acquisition_checks():
    trained = trained_ranges()
    clean = acquisition_measures(image(), ZOOMS, cord_mask())
    assert clean.cord_csf_ratio == pytest.approx(0.5) and clean.thickness_ratio == pytest.approx(3.75)
    assert checks.acquisition_checks(clean, trained, "m") == []
    assert checks.acquisition_checks(clean, {}, "m") == []  # a card without training_data
    inverted = acquisition_measures(image(csf=20.0), ZOOMS, cord_mask())  # CSF darker: T1w-like
    assert codes(checks.acquisition_checks(inverted, trained, "m")) == ["acquisition_cord_csf_ratio"]
    axial = acquisition_measures(image(), (0.8, 0.8, 3.0), cord_mask())  # axial resliced to sagittal
    fired = codes(checks.acquisition_checks(axial, trained, "m"))
    assert "acquisition_thickness_ratio" in fired and "acquisition_slice_thickness_mm" in fired
    coarse = acquisition_measures(image(), (3.0, 2.0, 2.0), cord_mask())
    assert {"acquisition_in_plane_spacing_mm", "acquisition_fov_si_mm"} <= set(
        codes(checks.acquisition_checks(coarse, trained, "m")))


def results(p_tumor, p_astro, p_ms, slices=(0.5, 0.5)):
    def one(role, positive, p):
        return ClassifierResult(role, role, "1.0.0", SHA, positive, p, tuple(slices), tuple(range(len(slices))))
    return {"tumor_vs_demyelinating": one("tumor_vs_demyelinating", "tumor", p_tumor),
            "astrocytoma_vs_ependymoma": one("astrocytoma_vs_ependymoma", "astrocytoma", p_astro),
            "ms_vs_nmosd": one("ms_vs_nmosd", "MS", p_ms)}


BANDS = {"tumor_vs_demyelinating": 0.1, "astrocytoma_vs_ependymoma": 0.1, "ms_vs_nmosd": 0.1}


def test_classifier_checks():
    assert checks.slice_spread("r", (0.0, 1.0, 0.0, 1.0)).value == pytest.approx(0.5)
    assert checks.slice_spread("r", (0.6, 0.62)) is None and checks.slice_spread("r", (0.1,)) is None
    assert checks.group_disagreement("tumor", "demyelinating").code == "group_disagreement"
    assert checks.group_disagreement("tumor", "tumor") is None
    in_band = checks.low_confidence_band("P(tumor)", 0.55, 0.1)
    assert in_band.value == pytest.approx(0.05) and in_band.severity == "info"
    assert assess([in_band]).level == "ok" and assess([in_band]).codes == ("low_confidence_band",)
    assert checks.low_confidence_band("P(tumor)", 0.9, 0.1) is None
    clear = results(0.95, 0.9, 0.5)
    assert codes(classification_checks(clear, compose_diagnosis(clear, BANDS))) == []
    # P(tumor) 0.52 (in the band); astrocytoma vs ependymoma 0.5/0.5 while MS is sure: the most
    # likely class (MS) is not in model 1's group
    torn = results(0.52, 0.5, 0.99, slices=(0.0, 1.0))
    fired = codes(classification_checks(torn, compose_diagnosis(torn, BANDS)))
    assert fired.count("slice_spread") == 3 and "group_disagreement" in fired and "low_confidence_band" in fired


def test_levels():
    assert assess([None, None]).level == "ok"
    review = assess([checks.cord_fragmented(12, 0.9), None])
    assert review.level == "review" and review.codes == ("cord_fragmented",)
    assert assess([checks.cord_fragmented(12, 0.9), checks.group_disagreement("tumor", "MS")]).level == "review"
    muscle = np.zeros(SHAPE, bool)
    muscle[:, 0:20, 40:60] = True
    assert assess(segmentation_checks(image(), ZOOMS, cord(), muscle)).level == "unreliable"


# ------------------------------------------------------------------------------------ the outputs
def typed_document(trust):
    from sct_lesion_classify.classify.document import (
        DiagnosisDocument, InputRecord, MaskRecord, ModelRecord, Provenance)
    from sct_lesion_classify.lesion.morphometry import LesionMorphometry

    res = results(0.9, 0.3, 0.6)
    return DiagnosisDocument(
        input=InputRecord(path="/d/sub-01_T2w.nii.gz", sha256=SHA, shape=SHAPE, voxel_size_mm=ZOOMS,
                          orientation="RPI"),
        lesion_mask=MaskRecord(path="/d/lesion.nii.gz", source="user"), cord_mask=None,
        lesions=LesionMorphometry(count=1, total_volume_mm3=10.0, lesions=()), classifiers=res,
        diagnosis=compose_diagnosis(res, BANDS), warnings=(),
        provenance=Provenance(command_line="x", date="2026-11-23T12:00:00+00:00", runtime_s={"load": 0.1},
                              models=(ModelRecord("m", "1.0.0", SHA, True),)),
        trust=trust)


def unreliable():
    muscle = np.zeros(SHAPE, bool)
    muscle[:, 0:20, 40:60] = True
    return assess(segmentation_checks(image(), ZOOMS, cord(pieces=22, kept_share=0.3), muscle))


def test_json_validates_and_old_version_still_reads():
    document = typed_document(unreliable()).to_json()
    assert validation_errors(document) == []
    assert document["schema_version"] == "3" and document["trust"]["level"] == "unreliable"
    check = document["trust"]["checks"][0]
    assert set(check) == {"code", "severity", "message", "value", "expected"}
    assert math.isfinite(check["value"]) and set(check["expected"]) == {"min", "max"}
    missing = dict(document)
    del missing["trust"]
    assert any("trust" in problem for problem in validation_errors(missing))  # required in version 2
    old = {**missing, "schema_version": "1"}  # a document written before the trust section
    assert validation_errors(old) == []
    row = outcome_from_document("sub-01", old, diagnosis_json="d.json", lesion_mask="l.nii.gz").to_row()
    assert row["trust"] == "" and row["flags"] == ""


def test_confidence_is_low_unless_trusted():
    from sct_lesion_classify.pipeline.classification import _trusted_diagnosis

    res = results(0.95, 0.9, 0.5)
    diagnosis = compose_diagnosis(res, BANDS)
    assert diagnosis.confidence == "high"
    assert _trusted_diagnosis(diagnosis, assess([])) is diagnosis
    lowered = _trusted_diagnosis(diagnosis, unreliable())
    assert lowered.confidence == "low" and lowered.reasons[-1].startswith("trust level unreliable: ")


def test_cohort_csv_has_trust_columns(tmp_path):
    from sct_lesion_classify.batch.table import format_table, write_table

    assert COLUMNS.index("trust") == COLUMNS.index("confidence") + 1 and "flags" in COLUMNS
    document = typed_document(unreliable()).to_json()
    row = outcome_from_document("sub-01", document, diagnosis_json="d.json", lesion_mask="l.nii.gz").to_row()
    assert row["trust"] == "unreliable"
    assert row["flags"].split(";")[:2] == ["cord_fragmented", "lesion_larger_than_cord"]
    table = tmp_path / "diagnoses.csv"
    write_table(table, [row])
    parsed = list(csv.DictReader(io.StringIO(table.read_text())))
    assert parsed[0]["trust"] == "unreliable" and parsed[0]["flags"] == row["flags"]
    # a table written before the trust columns is still read back (empty trust columns)
    old = tmp_path / "old.csv"
    old.write_text(format_table([row]).replace(",trust,flags", "").replace(",unreliable," + row["flags"], ""))
    assert next(csv.reader(io.StringIO(old.read_text()))) == list(COLUMNS_WITHOUT_TRUST)
    assert read_table(old)["sub-01"]["trust"] == "" and read_table(old)["sub-01"]["confidence"] == "high"


def test_card_training_data_section_round_trips_and_feeds_the_checks():
    card = ModelCard.load(ROOT / "models" / "ms_vs_nmosd" / "ms_vs_nmosd.json")
    section = TrainingDataRanges(subjects=2, **{name: ValueRange(1.0, 2.0) for name in checks.ACQUISITION_NAMES})
    with_section = dataclasses.replace(card, training_data=section)
    document = with_section.to_json()
    assert document["training_data"]["fov_si_mm"] == {"min": 1.0, "max": 2.0}
    assert ModelCard.from_json(document).training_data == section
    assert card_ranges(with_section)["cord_csf_ratio"] == Range(1.0, 2.0)
    without = dataclasses.replace(card, training_data=None)
    assert "training_data" not in without.to_json() and card_ranges(without) == {}
    bad = {**document, "training_data": {**document["training_data"], "extra": 1}}
    with pytest.raises(Exception, match="training_data"):
        ModelCard.from_json(bad)


def test_training_data_ranges_of_a_bids_dataset():
    from sct_lesion_classify.io.bids import discover_subjects

    subjects = discover_subjects(ROOT / "testing_data")[:2]
    section = training_data_ranges(subjects)
    assert section.subjects == 2
    assert 0.0 < section.cord_csf_ratio.min <= section.cord_csf_ratio.max < 1.0  # T2w: bright CSF
    assert section.slice_thickness_mm.min >= section.in_plane_spacing_mm.min
    with pytest.raises(ValueError, match="no training subjects"):
        ranges_of([])


# ------------------------------------------------------------------------------------ QC badge
def _trust_draft(level):
    from sct_lesion_classify.qc import classification_entry

    return classification_entry(command="sct_classify_lesion", input_path="/d/sub-01_T2w.nii.gz",
                                image=image(), zooms_mm=ZOOMS, lesion=lesion_inside(),
                                probabilities={"m": 0.9}, diagnosis="MS", confidence="low",
                                cord_mask=cord_mask(), trust_level=level)


def test_qc_badge_is_in_the_entry(tmp_path):
    from sct_lesion_classify.qc import add_entry

    add_entry(tmp_path, _trust_draft("unreliable"))
    page = (tmp_path / "index.html").read_text()
    assert re.search(r'<h2>.*<span class="trust trust-unreliable">trust: unreliable</span></h2>', page)
    assert ".trust-unreliable{background:" in page
    assert "trust-" not in _without_badges(page)


def _without_badges(page: str) -> str:
    return re.sub(r'<span class="trust trust-[a-z]+">[^<]*</span>', "", page.split("</style>", 1)[1])


def test_qc_badge_renders_in_headless_chromium(tmp_path):
    from test_qc_report import _chromium, _run_chromium

    from sct_lesion_classify.qc import add_entry

    executable = _chromium()
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    add_entry(tmp_path, _trust_draft("review"))
    dom = _run_chromium(executable, "--dump-dom", (tmp_path / "index.html").as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<span class="trust trust-review">trust: review</span>' in dom.stdout
    assert 'data-images-broken="0"' in dom.stdout


def test_segmentation_qc_entry_has_the_sidecar_trust_level(tmp_path):
    """sct_deepseg_imlesion: the QC badge and the trust rows say what the sidecar's Trust says."""
    import json

    from sct_lesion_classify.cli.deepseg_imlesion import main

    t2w = ROOT / "testing_data" / "sub-002" / "anat" / "sub-002_T2w.nii.gz"
    out = tmp_path / "sub-002_T2w_lesion_seg.nii.gz"
    assert main(["-i", str(t2w), "-o", str(out), "-qc", str(tmp_path / "qc"), "-v", "0"]) == 0
    trust = json.loads(out.with_name("sub-002_T2w_lesion_seg.json").read_text())["Trust"]
    page = (tmp_path / "qc" / "index.html").read_text()
    badges = re.findall(r'<span class="trust trust-([a-z]+)">', page.split("</style>", 1)[1])
    assert badges == [trust["level"]]
    for check in trust["checks"]:
        assert f"trust check {check['code']}" in page


def test_train_writes_the_training_data_of_its_training_split(caplog):
    pytest.importorskip("torch")
    from sct_lesion_classify.io.bids import discover_subjects
    from sct_lesion_classify.train.data import SubjectSplit
    from sct_lesion_classify.train.family import TrainingData, acquisition_ranges

    subjects = tuple(discover_subjects(ROOT / "testing_data"))
    split = SubjectSplit(train=subjects[:3], val=subjects[3:4], test=(), source="test")
    section = acquisition_ranges(TrainingData(subjects, split, [], [], []))
    assert section == training_data_ranges(subjects[:3]) and section.subjects == 3
    no_cords = tuple(dataclasses.replace(s, cord_mask=None) for s in subjects[:3])
    blind = SubjectSplit(train=no_cords, val=(), test=(), source="test")
    assert acquisition_ranges(TrainingData(no_cords, blind, [], [], [])) is None  # no cord/CSF ratio
    assert "no training_data section" in caplog.text
