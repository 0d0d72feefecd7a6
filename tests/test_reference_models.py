"""The bundled reference models on the committed testing_data and on the shared real scan.

testing_data (seed 20240) was never used to train the reference models (training phantoms: seed
1001; held-out evaluation: seed 2002). Each command runs in process through ``main([...])``.
Thresholds sit below the figures measured when the models were committed (see models/README.md
and models/evaluation/), so a regression in the inference path or a worse retrain fails here.

The real scan (``../shared/realdata``, a healthy cervical cord) checks that the pipeline runs on a
real image, writes on its native grid, and how well the phantom-trained cord localizer transfers.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sct_lesion_classify.classify.document import validation_errors
from sct_lesion_classify.cli import classify_lesion, deepseg_imlesion
from sct_lesion_classify.io.bids import discover_subjects, read_participants
from sct_lesion_classify.pipeline.models import DEFAULT_PACKAGES
from sct_lesion_classify.modelpkg.registry import resolve

ROOT = Path(__file__).resolve().parents[1]
TESTING_DATA = ROOT / "testing_data"
REALDATA = ROOT.parent / "shared" / "realdata"
TUMORS = ("astrocytoma", "ependymoma")

# Measured on testing_data with the committed models (models/README.md); since the lesion network
# runs only within the margins of the cord (tiles), the demyelinating figure rose from 0.618 and
# model 1 from 5 of 8 (false lesions far from the cord were removed):
# (lesion model 2.1.0 with cord localizer 2.2.0; with cord localizer 2.1.0: 0.929 and 0.886;
# lesion model 2.0.0: 0.913 and 0.877)
MIN_LESION_DICE_TUMOR = 0.80  # measured 0.930 (1.0.0: 0.849), 4 tumours
MIN_LESION_DICE_DEMYELINATING = 0.75  # measured 0.886 (1.0.0: 0.744), 4 demyelinating
MIN_CORD_DICE = 0.93  # measured 0.966 with cord localizer 2.2.0, lowest subject 0.952 (2.1.0: 0.963; 2.0.0: 0.941)
# Model 1 through the whole command (segmented masks): measured 8 of 8 with cord localizer 2.1.0
# and the heads refitted on its masks, and again with lesion model 2.1.0 and the heads refitted on
# its masks, and again with cord localizer 2.2.0 (cord localizer 2.0.0: 6 of 8, the demyelinating
# sub-001 and sub-003 called tumour).
# The bar guards against a regression, it does not claim the accuracy target, which these
# CPU-trained phantom models miss (models/README.md).
MIN_MODEL1_CORRECT = 7  # of 8
MIN_REAL_CORD_DICE = 0.87  # measured 0.894 with cord localizer 2.2.0 and 2.1.0 (2.0.0: 0.866); issue 14 asks 0.92
# The real scan, untouched (healthy) and with 8 lesions painted in its cord by insert-lesions
# (seed 5, two of each class), through sct_deepseg_imlesion with the bundled models:
MAX_REAL_FALSE_LESION_MM3 = 20.0  # issue target; measured 0 mm3
MIN_REAL_INSERTED_DICE = 0.70  # measured 0.798 with lesion model 2.1.0, either cord localizer (2.0.0: 0.826; issue target 0.60)
MAX_REAL_INSERTED_OUTSIDE = 0.10  # of the predicted volume beyond the cord + 2 mm (issue target); measured 0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return float(2.0 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def test_reference_models_are_bundled():
    """Every default package resolves from the repository and passes its sha256 check."""
    for name in DEFAULT_PACKAGES.values():
        package = resolve(name)
        assert package.card.training.synthetic_data is True
        assert package.onnx_path.stat().st_size > 100_000


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    """sct_deepseg_imlesion on every testing_data subject: (subject, outputs folder)."""
    out = tmp_path_factory.mktemp("reference-seg")
    results = []
    for subject in discover_subjects(TESTING_DATA):
        folder = out / subject.participant_id
        folder.mkdir()
        mask = folder / "lesion.nii.gz"
        assert deepseg_imlesion.main(["-i", str(subject.t2w), "-o", str(mask), "-save-cord", "1",
                                      "-v", "0"]) == 0
        results.append((subject, folder))
    return results


def test_lesion_and_cord_dice_on_testing_data(segmented):
    participants = read_participants(TESTING_DATA)
    tumor, demyelinating, cord = [], [], []
    for subject, folder in segmented:
        image = nib.load(str(subject.t2w))
        predicted = nib.load(str(folder / "lesion.nii.gz"))
        assert predicted.shape == image.shape
        np.testing.assert_allclose(predicted.affine, image.affine, atol=1e-5)
        truth = nib.load(str(subject.lesion_mask)).get_fdata()
        score = dice(predicted.get_fdata(), truth)
        (tumor if participants[subject.participant_id]["diagnosis"] in TUMORS else demyelinating).append(score)
        cord_mask = folder / f"{subject.t2w.name.removesuffix('.nii.gz')}_seg.nii.gz"
        cord.append(dice(nib.load(str(cord_mask)).get_fdata(), nib.load(str(subject.cord_mask)).get_fdata()))
    assert np.mean(tumor) >= MIN_LESION_DICE_TUMOR, tumor
    assert np.mean(demyelinating) >= MIN_LESION_DICE_DEMYELINATING, demyelinating
    assert np.mean(cord) >= MIN_CORD_DICE, cord


def test_classification_on_testing_data(tmp_path):
    """The whole command (segmentation included) on each subject: valid JSON, sensible diagnosis."""
    participants = read_participants(TESTING_DATA)
    correct_model1 = 0
    for subject in discover_subjects(TESTING_DATA):
        output = tmp_path / f"{subject.participant_id}.json"
        assert classify_lesion.main(["-i", str(subject.t2w), "-o", str(output), "-v", "0"]) == 0
        document = json.loads(output.read_text())
        assert validation_errors(document) == []
        diagnosis = document["diagnosis"]
        assert diagnosis is not None
        probabilities = diagnosis["probabilities"]
        # the JSON rounds each of the 4 probabilities to 6 decimals: the sum is 1 within 4 x 0.5e-6
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=2e-6)
        assert all(0.0 <= p <= 1.0 for p in probabilities.values())
        assert any("synthetic" in warning for warning in document["warnings"])
        truth = participants[subject.participant_id]["diagnosis"]
        tumor_probability = probabilities["astrocytoma"] + probabilities["ependymoma"]
        correct_model1 += (tumor_probability >= 0.5) == (truth in TUMORS)
    assert correct_model1 >= MIN_MODEL1_CORRECT


@pytest.mark.skipif(not (REALDATA / "sub-unf01").is_dir(), reason="../shared/realdata is not on this machine")
def test_real_scan_runs_on_native_grid(tmp_path):
    """The real healthy scan: runs, outputs on its grid; the cord Dice is recorded in the README."""
    image_path = REALDATA / "sub-unf01" / "anat" / "sub-unf01_T2w.nii.gz"
    manual = REALDATA / "derivatives" / "labels" / "sub-unf01" / "anat" / "sub-unf01_T2w_seg-manual.nii.gz"
    before = image_path.read_bytes()
    mask = tmp_path / "lesion.nii.gz"
    assert deepseg_imlesion.main(["-i", str(image_path), "-o", str(mask), "-save-cord", "1", "-v", "0"]) == 0
    image = nib.load(str(image_path))
    for output in (mask, tmp_path / "sub-unf01_T2w_seg.nii.gz"):
        written = nib.load(str(output))
        assert written.shape == image.shape
        np.testing.assert_allclose(written.affine, image.affine, atol=1e-5)
    cord_dice = dice(nib.load(str(tmp_path / "sub-unf01_T2w_seg.nii.gz")).get_fdata(),
                     nib.load(str(manual)).get_fdata())
    assert cord_dice >= MIN_REAL_CORD_DICE
    # The cord Dice is of the largest piece; stray pieces beside the cord show in the trust check.
    # The bundled localizer finds 11 pieces here (the check's limit); the withdrawn 2.3.0 found 17
    # (319 stray voxels against 76) with the same cord Dice (models/README.md, "Eighteenth session").
    trust = json.loads(mask.with_name("lesion.json").read_text())["Trust"]
    assert "cord_fragmented" not in [check["code"] for check in trust["checks"]], trust
    assert image_path.read_bytes() == before
    voxel_mm3 = float(np.prod(image.header.get_zooms()[:3]))
    assert float(nib.load(str(mask)).get_fdata().sum()) * voxel_mm3 <= MAX_REAL_FALSE_LESION_MM3


@pytest.mark.skipif(not (REALDATA / "sub-unf01").is_dir(), reason="../shared/realdata is not on this machine")
def test_lesions_inserted_in_the_real_scan_are_found_inside_the_cord(tmp_path):
    """Lesions of the four classes painted in the real cord (insert-lesions, never used for
    training): mean Dice and the share of the predicted volume beyond the cord dilated by 2 mm."""
    from sct_lesion_classify.cli import insert_lesions
    from sct_lesion_classify.train.evaluation.metrics import volume_outside

    manual = REALDATA / "derivatives" / "labels" / "sub-unf01" / "anat" / "sub-unf01_T2w_seg-manual.nii.gz"
    dataset = tmp_path / "inserted"
    assert insert_lesions.main(["-i", str(REALDATA / "sub-unf01" / "anat" / "sub-unf01_T2w.nii.gz"),
                                "-s", str(manual), "-o", str(dataset), "-n", "8", "--seed", "5",
                                "--allow-partial", "-v", "0"]) == 0
    cord = nib.load(str(manual))
    cord_mask, zooms = cord.get_fdata() > 0, cord.header.get_zooms()[:3]
    diagnoses = {row["diagnosis"] for row in read_participants(dataset).values()}
    assert diagnoses == {"astrocytoma", "ependymoma", "MS", "NMOSD"}
    scores, predicted_total, outside_total = [], 0.0, 0.0
    for subject in discover_subjects(dataset):
        mask = tmp_path / f"{subject.participant_id}_lesion.nii.gz"
        assert deepseg_imlesion.main(["-i", str(subject.t2w), "-o", str(mask), "-v", "0"]) == 0
        predicted = nib.load(str(mask)).get_fdata() > 0
        scores.append(dice(predicted, nib.load(str(subject.lesion_mask)).get_fdata()))
        outside = volume_outside(predicted, cord_mask, zooms, margin_mm=2.0)
        predicted_total += outside.predicted_mm3
        outside_total += outside.outside_mm3
    assert len(scores) == 8
    assert np.mean(scores) >= MIN_REAL_INSERTED_DICE, scores
    assert outside_total <= MAX_REAL_INSERTED_OUTSIDE * max(predicted_total, 1.0)
