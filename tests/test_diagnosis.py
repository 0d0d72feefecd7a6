"""Hierarchical composition of the three classifiers and the diagnosis JSON schema."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sct_lesion_classify.classify.diagnosis import (
    ASTROCYTOMA_VS_EPENDYMOMA,
    MS_VS_NMOSD,
    TUMOR_VS_DEMYELINATING,
    ClassifierResult,
    compose_diagnosis,
)
from sct_lesion_classify.classify.document import DISCLAIMER, validation_errors, write_diagnosis
from sct_lesion_classify.errors import ProcessingError

SHA = "a" * 64


def result(role, positive, p, slices=(5, 6, 7)) -> ClassifierResult:
    per_slice = tuple(min(1.0, max(0.0, p + d)) for d in (-0.05, 0.0, 0.05)[: len(slices)])
    return ClassifierResult(role, f"{role}_model", "1.0.0", SHA, positive, p, per_slice, tuple(slices))


def results(p_tumor, p_astro, p_ms, positives=("tumor", "astrocytoma", "MS")):
    flip = {"tumor": lambda p: p, "demyelinating": lambda p: 1 - p, "astrocytoma": lambda p: p,
            "ependymoma": lambda p: 1 - p, "MS": lambda p: p, "NMOSD": lambda p: 1 - p}
    return {
        TUMOR_VS_DEMYELINATING: result(TUMOR_VS_DEMYELINATING, positives[0], flip[positives[0]](p_tumor)),
        ASTROCYTOMA_VS_EPENDYMOMA: result(ASTROCYTOMA_VS_EPENDYMOMA, positives[1], flip[positives[1]](p_astro)),
        MS_VS_NMOSD: result(MS_VS_NMOSD, positives[2], flip[positives[2]](p_ms)),
    }


probabilities = st.floats(0.0, 1.0, allow_nan=False)


def bands(value: float) -> dict[str, float]:
    return {TUMOR_VS_DEMYELINATING: value, ASTROCYTOMA_VS_EPENDYMOMA: value, MS_VS_NMOSD: value}


@given(probabilities, probabilities, probabilities, st.floats(0.0, 0.49))
def test_four_class_probabilities_sum_to_one(p1, p2, p3, band):
    diagnosis = compose_diagnosis(results(p1, p2, p3), bands(band))
    assert sum(diagnosis.probabilities.values()) == pytest.approx(1.0)
    assert all(0.0 <= p <= 1.0 for p in diagnosis.probabilities.values())
    assert diagnosis.probabilities[diagnosis.most_likely_class] == max(diagnosis.probabilities.values())


def test_hierarchical_products():
    diagnosis = compose_diagnosis(results(0.9, 0.2, 0.7), bands(0.1))
    assert diagnosis.probabilities["astrocytoma"] == pytest.approx(0.9 * 0.2)
    assert diagnosis.probabilities["ependymoma"] == pytest.approx(0.9 * 0.8)
    assert diagnosis.probabilities["MS"] == pytest.approx(0.1 * 0.7)
    assert diagnosis.probabilities["NMOSD"] == pytest.approx(0.1 * 0.3)
    assert diagnosis.most_likely_class == "ependymoma"
    assert diagnosis.group == "tumor"
    assert diagnosis.confidence == "high"


def test_positive_class_of_each_card_is_honoured():
    as_tumor = compose_diagnosis(results(0.8, 0.3, 0.6), bands(0.1))
    flipped = compose_diagnosis(results(0.8, 0.3, 0.6, positives=("demyelinating", "ependymoma", "NMOSD")), bands(0.1))
    for name in as_tumor.probabilities:
        assert flipped.probabilities[name] == pytest.approx(as_tumor.probabilities[name])


@pytest.mark.parametrize(
    "p1, p2, p3, low",
    [
        (0.55, 0.9, 0.1, True),   # model 1 near 0.5
        (0.95, 0.52, 0.1, True),  # deciding sub-model (tumour branch) near 0.5
        (0.95, 0.9, 0.5, False),  # MS-vs-NMOSD near 0.5, but it does not decide a tumour
        (0.05, 0.5, 0.45, True),  # demyelinating branch near 0.5
        (0.9, 0.9, 0.9, False),
    ],
)
def test_low_confidence_flag(p1, p2, p3, low):
    diagnosis = compose_diagnosis(results(p1, p2, p3), bands(0.1))
    assert (diagnosis.confidence == "low") is low
    assert bool(diagnosis.reasons) is low


def test_group_disagreement_is_low_confidence():
    # P(tumor)=0.52 picks "tumor", yet MS (0.48*0.95) outweighs each tumour class (0.52*0.5).
    diagnosis = compose_diagnosis(results(0.52, 0.5, 0.95), bands(0.01))
    assert diagnosis.group == "tumor" and diagnosis.most_likely_class == "MS"
    assert diagnosis.confidence == "low"
    assert any("not in the group" in reason for reason in diagnosis.reasons)


def test_each_model_uses_its_own_band():
    per_model = {TUMOR_VS_DEMYELINATING: 0.01, ASTROCYTOMA_VS_EPENDYMOMA: 0.2, MS_VS_NMOSD: 0.01}
    diagnosis = compose_diagnosis(results(0.9, 0.65, 0.9), per_model)
    assert diagnosis.confidence == "low"
    assert diagnosis.reasons == ("P(astrocytoma | tumor) = 0.650 is within 0.2 of 0.5",)


def test_results_are_checked():
    with pytest.raises(ValueError, match="positive class"):
        ClassifierResult(MS_VS_NMOSD, "m", "1.0.0", SHA, "tumor", 0.5, (0.5,), (1,))
    with pytest.raises(ValueError, match="outside"):
        ClassifierResult(MS_VS_NMOSD, "m", "1.0.0", SHA, "MS", 1.5, (0.5,), (1,))
    with pytest.raises(ValueError, match="missing classifier"):
        compose_diagnosis({}, bands(0.1))


def document(diagnosis=True) -> dict:
    res = results(0.9, 0.3, 0.6)
    return {
        "schema_version": "1",
        "input": {"path": "/data/sub-01_T2w.nii.gz", "sha256": SHA, "shape": [512, 512, 15],
                  "voxel_size_mm": [0.6, 0.6, 3.5], "orientation": "ASR"},
        "lesion_mask": {"path": "/data/sub-01_T2w_lesion_seg.nii.gz", "source": "automatic"},
        "cord_mask": {"path": None, "source": "automatic"},
        "lesions": {"count": 1, "total_volume_mm3": 1234.5,
                    "lesions": [{"label": 1, "volume_mm3": 1234.5, "length_si_mm": 40.0, "width_ap_mm": 8.0, "width_rl_mm": 7.0, "max_equivalent_diameter_mm": 9.0, "eccentricity_ratio": 0.2, "position": "central", "max_axial_damage_ratio": 0.8, "intensity_ratio": 1.9, "vertebral_levels": ["C3", "C4"], "levels_estimated": False, "n_segments_spanned": 2.0,
                                 "centroid_mm": [0.0, 10.0, -50.0]}]},
        "classifiers": {role: r.to_json() for role, r in res.items()},
        "diagnosis": compose_diagnosis(res, bands(0.1)).to_json() if diagnosis else None,
        "warnings": [],
        "provenance": {"package": "sct_lesion_classify", "version": "0.1.0",
                       "command_line": "sct_classify_lesion -i x", "date": "2026-11-23T12:00:00+00:00",
                       "runtime_s": {"load": 0.1, "classify": 0.4},
                       "models": [{"name": "m", "version": "1.0.0", "sha256": SHA,
                                   "synthetic_training_data": True}]},
        "disclaimer": DISCLAIMER,
    }


def test_complete_document_is_valid_and_written(tmp_path):
    assert validation_errors(document()) == []
    assert validation_errors(document(diagnosis=False)) == []
    path = tmp_path / "d.json"
    write_diagnosis(path, document())
    assert json.loads(path.read_text())["diagnosis"]["group"] == "tumor"


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda d: d.pop("disclaimer"), "(root)"),
        (lambda d: d.__setitem__("extra", 1), "(root)"),
        (lambda d: d["input"].__setitem__("orientation", "XYZ"), "input/orientation"),
        (lambda d: d["classifiers"]["ms_vs_nmosd"].__setitem__("probability", 1.2),
         "classifiers/ms_vs_nmosd/probability"),
        (lambda d: d["diagnosis"].__setitem__("most_likely_class", "glioma"), "diagnosis"),
        (lambda d: d["lesion_mask"].__setitem__("source", "guess"), "lesion_mask/source"),
    ],
)
def test_invalid_documents_are_refused_and_not_written(tmp_path, mutate, where):
    doc = document()
    mutate(doc)
    problems = validation_errors(doc)
    assert problems and any(p.startswith(where) for p in problems)
    path = tmp_path / "d.json"
    with pytest.raises(ProcessingError, match="breaks its schema"):
        write_diagnosis(path, doc)
    assert list(tmp_path.iterdir()) == []


def typed_document(gradcam=None, with_results=True):
    from sct_lesion_classify.classify.document import (
        DiagnosisDocument, InputRecord, MaskRecord, ModelRecord, Provenance)
    from sct_lesion_classify.lesion.morphometry import LesionMorphometry
    from sct_lesion_classify.trust import assess

    res = results(0.9, 0.3, 0.6) if with_results else {}
    return DiagnosisDocument(
        input=InputRecord(path="/data/sub-01_T2w.nii.gz", sha256=SHA, shape=(512, 512, 15),
                          voxel_size_mm=(0.6, 0.6, 3.5), orientation="ASR"),
        lesion_mask=MaskRecord(path="/data/lesion.nii.gz", source="user"),
        cord_mask=None,
        lesions=LesionMorphometry(count=0, total_volume_mm3=0.0, lesions=()),
        classifiers=res,
        diagnosis=compose_diagnosis(res, bands(0.1)) if with_results else None,
        warnings=("w1", "w2"),
        provenance=Provenance(command_line="sct_classify_lesion -i x", date="2026-11-23T12:00:00+00:00",
                              runtime_s={"load": 0.123456, "morphometry": 0.5},
                              models=(ModelRecord("m", "1.0.0", SHA, True),)),
        trust=assess([]), gradcam=gradcam)


def test_schema_is_valid_against_its_meta_schema():
    """Checked here once, not on every run (classify.document._validator skips it)."""
    import jsonschema

    from sct_lesion_classify.classify.document import SCHEMA_PATH

    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.validators.validator_for(schema).check_schema(schema)


def test_typed_document_gives_the_schema_object_in_its_order(tmp_path):
    from sct_lesion_classify.classify.document import SCHEMA_PATH, GradcamRecord

    schema = json.loads(SCHEMA_PATH.read_text())
    plain = typed_document().to_json()
    # no gradcam key without -gradcam 1; trust (schema version 2 on) after the warnings
    assert [key for key in plain if key != "trust"] == schema["required"]
    assert list(plain).index("trust") == list(plain).index("warnings") + 1
    assert plain["schema_version"] == "3" and plain["trust"] == {"level": "ok", "checks": []}
    assert validation_errors(plain) == []
    assert plain["provenance"]["runtime_s"] == {"load": 0.1235, "morphometry": 0.5}
    assert plain["provenance"]["models"] == [{"name": "m", "version": "1.0.0", "sha256": SHA,
                                              "synthetic_training_data": True}]
    assert plain["input"]["shape"] == [512, 512, 15] and plain["input"]["t1c_path"] is None
    assert plain["warnings"] == ["w1", "w2"] and plain["cord_mask"] is None
    assert typed_document(gradcam={}).to_json()["gradcam"] == {}  # -gradcam 1, no map written
    entry = GradcamRecord(path="/out/x_gradcam-ms_vs_nmosd.nii.gz", model_name="m", normalization="relu")
    with_map = typed_document(gradcam={"ms_vs_nmosd": entry})
    assert with_map.to_json()["gradcam"] == {"ms_vs_nmosd": {"path": entry.path, "model_name": "m",
                                                             "normalization": "relu"}}
    path = tmp_path / "d.json"
    with_map.write(path)
    assert json.loads(path.read_text()) == with_map.to_json()
    empty = typed_document(with_results=False).to_json()
    assert empty["classifiers"] == {} and empty["diagnosis"] is None and validation_errors(empty) == []


def test_input_record_writes_shape_as_ints_and_voxel_sizes_as_floats():
    import numpy as np

    from sct_lesion_classify.classify.document import InputRecord

    record = InputRecord(path="/data/x.nii.gz", sha256=SHA, shape=tuple(np.int64([64, 48, 12])),
                         voxel_size_mm=(1, np.float32(0.5), 3), orientation="RPI")
    assert json.dumps(record.to_json()) == (
        f'{{"path": "/data/x.nii.gz", "sha256": "{SHA}", "shape": [64, 48, 12], '
        '"voxel_size_mm": [1.0, 0.5, 3.0], "orientation": "RPI", "t1c_path": null}')
