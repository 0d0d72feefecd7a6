"""``sct_classify_lesion`` in process on the committed testing_data.

The classifier packages are tiny real ONNX graphs (mean of each channel -> logistic), so these
tests check the command's mechanics and contract: schema-valid JSON, hierarchical probabilities,
the slices used, empty masks, user vs automatic masks, cT1w handling and bad inputs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES
from sct_lesion_classify.classify.document import validation_errors
from sct_lesion_classify.cli.classify_lesion import main
from sct_lesion_classify.io.bids import discover_subjects
from sct_lesion_classify.io.image import load_image, load_mask
from sct_lesion_classify.modelpkg.testing import tiny_card, write_tiny_package

TESTING_DATA = Path(__file__).resolve().parents[1] / "testing_data"
SUBJECTS = discover_subjects(TESTING_DATA)
MIN_AREA = 5.0


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    folders = []
    for k, (role, classes) in enumerate(ROLE_CLASSES.items()):
        card = tiny_card(role, "classification", spatial_size=(32, 32))
        output = dict(card["output"], classes=list(classes), positive_class=classes[k % 2])
        inputs = dict(card["input"], min_lesion_area_mm2=MIN_AREA)
        folders.append(write_tiny_package(root, role, "classification", spatial_size=(32, 32), weight=0.7,
                                          bias=-0.4 + 0.2 * k, card_overrides={"output": output, "input": inputs}))
    t1c_card = tiny_card("ms_vs_nmosd_t1c", "classification", spatial_size=(32, 32))
    t1c_inputs = dict(t1c_card["input"], channels=[{"name": "cT1w", "description": "cT1w"}] + t1c_card["input"]["channels"][1:])
    t1c = write_tiny_package(root, "ms_vs_nmosd_t1c", "classification", spatial_size=(32, 32),
                             card_overrides={"output": dict(t1c_card["output"], classes=["MS", "NMOSD"],
                                                            positive_class="NMOSD"), "input": t1c_inputs})
    lesion = write_tiny_package(root, "tiny_lesion", "lesion_segmentation", weight=4.0, bias=-10.0)
    return {"classifiers": folders, "t1c": t1c, "lesion": lesion}


def custom(folders):
    return [arg for folder in folders for arg in ("-custom-model", str(folder))]


def copy_subject(subject, folder: Path) -> dict[str, Path]:
    paths = {}
    for key in ("t2w", "cord_mask", "lesion_mask"):
        paths[key] = folder / getattr(subject, key).name
        shutil.copy(getattr(subject, key), paths[key])
    return paths


@pytest.mark.parametrize("subject", SUBJECTS, ids=[s.participant_id for s in SUBJECTS])
def test_json_valid_for_every_test_subject(tmp_path, packages, subject):
    paths = copy_subject(subject, tmp_path)
    out = tmp_path / "diagnosis.json"
    assert main(["-i", str(paths["t2w"]), "-lesion", str(paths["lesion_mask"]), "-s", str(paths["cord_mask"]),
                 "-o", str(out), "-v", "0"] + custom(packages["classifiers"])) == 0
    document = json.loads(out.read_text())
    assert validation_errors(document) == []
    assert document["lesion_mask"]["source"] == "user"
    diagnosis = document["diagnosis"]
    assert sum(diagnosis["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert diagnosis["most_likely_class"] == max(diagnosis["probabilities"], key=diagnosis["probabilities"].get)
    assert any("synthetic" in w for w in document["warnings"])
    assert "not a medical device" in document["disclaimer"]

    image = load_image(paths["t2w"])
    lesion, _ = load_mask(paths["lesion_mask"], image.grid)
    area = lesion.sum(axis=(1, 2)) * image.zooms[1] * image.zooms[2]
    expected = [int(i) for i in np.flatnonzero(area >= MIN_AREA)]
    for role, entry in document["classifiers"].items():
        assert entry["slices_used"] == expected, role
        assert len(entry["slice_probabilities"]) == len(expected)
        assert entry["probability"] == pytest.approx(np.mean(entry["slice_probabilities"]), abs=1e-5)
    assert document["lesions"]["count"] >= 1
    assert document["lesions"]["lesions"][0]["eccentricity_ratio"] is not None  # cord mask given


def test_empty_lesion_mask_gives_null_diagnosis(tmp_path, packages, capsys):
    paths = copy_subject(SUBJECTS[0], tmp_path)
    empty = nib.load(str(paths["lesion_mask"]))
    nib.save(nib.Nifti1Image(np.zeros(empty.shape, np.uint8), empty.affine, empty.header), str(tmp_path / "empty.nii.gz"))
    out = tmp_path / "d.json"
    assert main(["-i", str(paths["t2w"]), "-lesion", str(tmp_path / "empty.nii.gz"), "-o", str(out)]
                + custom(packages["classifiers"])) == 0
    document = json.loads(out.read_text())
    assert document["diagnosis"] is None and document["classifiers"] == {}
    assert document["lesions"]["count"] == 0
    assert any("empty" in w for w in document["warnings"])
    assert validation_errors(document) == []


def test_without_lesion_mask_the_segmentation_runs_and_is_saved(tmp_path, packages):
    paths = copy_subject(SUBJECTS[2], tmp_path)
    assert main(["-i", str(paths["t2w"]), "-s", str(paths["cord_mask"])]
                + custom(packages["classifiers"] + [packages["lesion"]])) == 0
    stem = paths["t2w"].name.replace(".nii.gz", "")
    document = json.loads((tmp_path / f"{stem}_diagnosis.json").read_text())
    assert document["lesion_mask"] == {"path": str(tmp_path / f"{stem}_lesion_seg.nii.gz"), "source": "automatic"}
    assert (tmp_path / f"{stem}_lesion_seg.nii.gz").is_file()
    assert "tiny_lesion" in [m["name"] for m in document["provenance"]["models"]]
    assert set(document["provenance"]["runtime_s"]) >= {"load", "morphometry", "segmentation_segment",
                                                         "classify_tumor_vs_demyelinating"}


def test_t1c_on_another_grid_is_refused(tmp_path, packages, capsys):
    paths = copy_subject(SUBJECTS[0], tmp_path)
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((10, 12, 14)).astype(np.float32), np.eye(4)),
             str(tmp_path / "t1c.nii.gz"))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["-i", str(paths["t2w"]), "-lesion", str(paths["lesion_mask"]), "-i-t1c", str(tmp_path / "t1c.nii.gz")]
                + custom(packages["classifiers"])) == 2
    err = capsys.readouterr().err
    assert "cT1w image is not on the grid of the T2w image" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_no_session_is_still_being_built_when_main_returns_after_an_error(tmp_path, packages,
                                                                         slow_classifier_sessions):
    (tmp_path / "broken_T2w.nii.gz").write_bytes(b"not a NIfTI file")
    assert main(["-i", str(tmp_path / "broken_T2w.nii.gz"), "-lesion", str(tmp_path / "broken_T2w.nii.gz")]
                + custom(packages["classifiers"])) == 2
    assert not slow_classifier_sessions()


def test_t1c_uses_the_t1c_model_where_installed_and_warns_elsewhere(tmp_path, packages, monkeypatch):
    # only the custom cT1w variant is installed: no bundled or cached ones
    monkeypatch.setenv("SCT_LESION_CLASSIFY_BUNDLED_DIR", str(tmp_path / "no_bundled"))
    monkeypatch.setenv("SCT_LESION_CLASSIFY_MODELS_DIR", str(tmp_path / "no_cache"))
    paths = copy_subject(SUBJECTS[0], tmp_path)
    out = tmp_path / "d.json"
    assert main(["-i", str(paths["t2w"]), "-lesion", str(paths["lesion_mask"]), "-i-t1c", str(paths["t2w"]),
                 "-o", str(out)] + custom(packages["classifiers"] + [packages["t1c"]])) == 0
    document = json.loads(out.read_text())
    assert document["classifiers"]["ms_vs_nmosd"]["model"] == "ms_vs_nmosd_t1c"
    assert document["classifiers"]["tumor_vs_demyelinating"]["model"] == "tumor_vs_demyelinating"
    assert any("no cT1w-aware model is installed for tumor_vs_demyelinating, astrocytoma_vs_ependymoma" in w
               for w in document["warnings"])


def test_lesion_mask_of_another_shape_is_refused(tmp_path, packages, capsys):
    paths = copy_subject(SUBJECTS[0], tmp_path)
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.eye(4)), str(tmp_path / "bad.nii.gz"))
    assert main(["-i", str(paths["t2w"]), "-lesion", str(tmp_path / "bad.nii.gz")] + custom(packages["classifiers"])) == 2
    assert "lesion mask is not on the image grid" in capsys.readouterr().err
    assert not list(tmp_path.glob("*_diagnosis.json"))


def test_with_o_the_segmented_mask_goes_beside_the_json_not_the_input(tmp_path, packages):
    (tmp_path / "data").mkdir()
    paths = copy_subject(SUBJECTS[2], tmp_path / "data")
    before = sorted(p.name for p in (tmp_path / "data").rglob("*"))
    out = tmp_path / "results" / "dx.json"
    assert main(["-i", str(paths["t2w"]), "-s", str(paths["cord_mask"]), "-o", str(out)]
                + custom(packages["classifiers"] + [packages["lesion"]])) == 0
    stem = paths["t2w"].name.replace(".nii.gz", "")
    mask = tmp_path / "results" / f"{stem}_lesion_seg.nii.gz"
    assert json.loads(out.read_text())["lesion_mask"] == {"path": str(mask), "source": "automatic"}
    assert mask.is_file() and (tmp_path / "results" / f"{stem}_lesion_seg.json").is_file()
    assert sorted(p.name for p in (tmp_path / "data").rglob("*")) == before
