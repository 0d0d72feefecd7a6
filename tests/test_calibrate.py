"""``sct_lesion_classify calibrate``: the decision heads refitted on the pipeline's segmented masks.

Tiny real packages (a lesion model and the three classifiers, one cT1w-aware variant) in one
models folder, the bundled cord localizer, and the committed testing_data subjects as the
validation split.
"""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES, role_label
from sct_lesion_classify.cli.calibrate import bumped, main
from sct_lesion_classify.cli.classify_lesion import main as classify_main
from sct_lesion_classify.io.bids import subject_paths
from sct_lesion_classify.modelpkg.package import ModelPackage
from sct_lesion_classify.modelpkg.testing import write_tiny_package
from sct_lesion_classify.train.decision_head import fit_temperature

from evaluation_data import SUBJECTS, make_set, row, tiny_classifier

NMOSD_MS = ("sub-001", "sub-003", "sub-006", "sub-008")


@pytest.fixture()
def models(tmp_path):
    root = tmp_path / "models"
    write_tiny_package(root, "tiny_lesion", "lesion_segmentation", weight=4.0, bias=-10.0)
    for role in ROLE_CLASSES:
        tiny_classifier(root, role, t1c=False, weight=0.7)
    tiny_classifier(root, "ms_vs_nmosd", t1c=True, weight=-1.3)
    return root


def card(root, name):
    return json.loads((root / name / f"{name}.json").read_text())


def test_heads_are_refitted_on_the_segmented_masks(tmp_path, models):
    bids = make_set(tmp_path / "bids", [row(pid, split="val") for pid in sorted(SUBJECTS)], t1c=NMOSD_MS)
    before = {name: card(models, name) for name in (*ROLE_CLASSES, "ms_vs_nmosd_t1c")}
    untouched = shutil.copytree(models, tmp_path / "models_before")
    masks = tmp_path / "masks"
    assert main(["--bids", str(bids), "--models", str(models), "-o", str(masks), "-v", "0"]) == 0

    # the T2w-only tumour model: recomputed from the kept masks with the cards as trained
    probabilities, labels = [], []
    for folder in sorted(masks.iterdir()):
        pid = folder.name.split("_", 1)[1]
        mask = next(folder.glob("*_lesion-seg.nii.gz"), None) or next(folder.glob("*.nii.gz"))
        out = tmp_path / "check" / f"{pid}.json"
        assert classify_main(["-i", str(SUBJECTS[pid].t2w), "-lesion", str(mask), "-o", str(out), "-v", "0"]
                             + [a for name in ROLE_CLASSES for a in ("-custom-model", str(untouched / name))]) == 0
        result = json.loads(out.read_text())["classifiers"]["tumor_vs_demyelinating"]
        probabilities.append(result["densenet_probability"])
        labels.append(int(role_label(SUBJECTS[pid].diagnosis, "tumor_vs_demyelinating") == result["positive_class"]))
    assert len(probabilities) == 8 and 0 < sum(labels) < 8

    after = card(models, "tumor_vs_demyelinating")
    calibration = after["decision"]["calibration"]
    assert calibration["temperature"] == pytest.approx(fit_temperature(probabilities, labels), rel=1e-6)
    assert "8 patients, lesion masks segmented by" in calibration["fitted_on"]
    assert "tiny_lesion" in calibration["fitted_on"] and "cord_localizer" in calibration["fitted_on"]
    assert after["fusion"]["fitted_on"] == calibration["fitted_on"]  # 8 patients, 4 per class: fused
    head = after["metrics"]["decision_head"]
    assert head["patients"] == 8 and 0.0 <= head["fused_patient_auc"] <= 1.0
    trained = before["tumor_vs_demyelinating"]["metrics"]
    assert {key: after["metrics"][key] for key in trained} == trained  # training's figures kept
    assert after["files"] == before["tumor_vs_demyelinating"]["files"]  # the network is not touched
    assert after["version"] == before["tumor_vs_demyelinating"]["version"]  # no --version: kept
    ModelPackage.load(models / "tumor_vs_demyelinating")  # still verifies

    # 4 patients per second-level model: calibrated, too few for a fusion head
    for name in ("astrocytoma_vs_ependymoma", "ms_vs_nmosd"):
        refitted = card(models, name)
        assert refitted["metrics"]["decision_head"]["patients"] == 4
        assert "4 patients" in refitted["decision"]["calibration"]["fitted_on"]
        assert refitted.get("fusion") is None
    # the cT1w-aware variant: only the subjects that have a cT1w
    variant = card(models, "ms_vs_nmosd_t1c")
    assert variant["metrics"]["decision_head"]["patients"] == len(NMOSD_MS)
    assert variant["decision"]["calibration"] != before["ms_vs_nmosd_t1c"]["decision"].get("calibration")


def test_a_subject_the_pipeline_refuses_is_skipped(tmp_path, models, capsys):
    bids = make_set(tmp_path / "bids", [row(pid, split="val") for pid in ("sub-002", "sub-003")])
    t2w = subject_paths(bids, "sub-003")["t2w"]
    image = nib.load(str(t2w))
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.float32), image.affine), str(t2w))  # an empty image
    before = card(models, "tumor_vs_demyelinating")
    assert main(["--bids", str(bids), "--models", str(models), "-v", "1"]) == 1  # one patient: nothing fitted
    err = capsys.readouterr().err
    assert "sub-003: skipped" in err and "tumor_vs_demyelinating: not calibrated (1 validation patients)" in err
    assert card(models, "tumor_vs_demyelinating") == before


def test_bump_version_renames_the_refitted_cards_only(tmp_path, models):
    bids = make_set(tmp_path / "bids", [row(pid, split="val") for pid in ("sub-002", "sub-003")])
    before = card(models, "tumor_vs_demyelinating")["version"]
    untouched = card(models, "astrocytoma_vs_ependymoma")
    # one tumour, one demyelinating patient: only model 1 has two patients to fit
    assert main(["--bids", str(bids), "--models", str(models), "--bump-version", "patch", "-v", "0"]) == 1
    expected = bumped(before, "patch")
    assert expected != before and card(models, "tumor_vs_demyelinating")["version"] == expected
    assert ModelPackage.load(models / "tumor_vs_demyelinating").version == expected
    assert card(models, "astrocytoma_vs_ependymoma") == untouched  # not refitted: not renamed either


def test_bump_version_given_twice_applies_both(tmp_path, models):
    bids = make_set(tmp_path / "bids", [row(pid, split="val") for pid in ("sub-002", "sub-003")])
    before = card(models, "tumor_vs_demyelinating")["version"]
    assert main(["--bids", str(bids), "--models", str(models), "--bump-version", "patch",
                 "--bump-version", "patch", "-v", "0"]) == 1
    assert card(models, "tumor_vs_demyelinating")["version"] == bumped(bumped(before, "patch"), "patch")


@pytest.mark.parametrize("version, part, expected", [
    ("2.0.0", "patch", "2.0.1"), ("2.1.0", "patch", "2.1.1"), ("2.1.3", "minor", "2.2.0"),
    ("2.1.3", "major", "3.0.0"), ("2.1.0-rc1+build.5", "patch", "2.1.1")])
def test_bumped(version, part, expected):
    assert bumped(version, part) == expected


def test_no_validation_subject_is_an_input_error(tmp_path, models, capsys):
    bids = make_set(tmp_path / "bids", [row("sub-002", split="test")])
    before = card(models, "tumor_vs_demyelinating")
    assert main(["--bids", str(bids), "--models", str(models), "-v", "0"]) == 2
    err = capsys.readouterr().err
    assert "no validation subjects with a diagnosis" in err and err.count("\n") == 1
    assert card(models, "tumor_vs_demyelinating") == before


def test_a_folder_without_classifiers_is_refused(tmp_path, capsys):
    root = tmp_path / "models"
    write_tiny_package(root, "tiny_lesion", "lesion_segmentation", weight=4.0, bias=-10.0)
    bids = make_set(tmp_path / "bids", [row("sub-002", split="val")])
    assert main(["--bids", str(bids), "--models", str(root), "-v", "0"]) == 2
    assert "no classifier package to calibrate" in capsys.readouterr().err
