"""Training: a tiny end-to-end run of every family on the committed testing_data yields packages
that both pipeline commands load and run; ONNX parity; splits without patient leakage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")
pytest.importorskip("onnx")

from sct_lesion_classify.classify.document import validation_errors  # noqa: E402
from sct_lesion_classify.cli import classify_lesion, deepseg_imlesion  # noqa: E402
from sct_lesion_classify.cli.train import main as train_main  # noqa: E402
from sct_lesion_classify.io.bids import discover_subjects  # noqa: E402
from sct_lesion_classify.modelpkg.package import ModelPackage  # noqa: E402
from sct_lesion_classify.train.data import check_no_leakage, split_subjects  # noqa: E402
from sct_lesion_classify.train.recipes import RECIPES  # noqa: E402

TESTING_DATA = Path(__file__).resolve().parents[1] / "testing_data"
FAMILIES = ("cord", "lesion", "tumor_vs_demyelinating", "astrocytoma_vs_ependymoma", "ms_vs_nmosd")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """testing_data without its split column: 2 subjects per class, so each class has a validation
    subject in the deterministic per-patient split (testing_data keeps 2 tumours for testing)."""
    root = tmp_path_factory.mktemp("bids") / "ds"
    shutil.copytree(TESTING_DATA, root)
    lines = (root / "participants.tsv").read_text().splitlines()
    column = lines[0].split("\t").index("split")
    rows = [line.split("\t") for line in lines]
    (root / "participants.tsv").write_text(
        "\n".join("\t".join(v for i, v in enumerate(row) if i != column) for row in rows) + "\n")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset):
    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("trained")
    for family in FAMILIES:
        code = train_main([family, "--bids", str(dataset), "-o", str(out), "--epochs", "1",
                           "--steps-per-epoch", "1", "--batch-size", "2", "--seed", "3", "-v", "0"])
        assert code == 0, family
    return out


def test_every_family_gives_a_valid_verified_package(trained, dataset):
    for family in FAMILIES:
        name = RECIPES[family].name
        package = ModelPackage.load(trained / name)  # verifies the card schema and the sha256
        card = package.card
        assert card.training.seed == 3 and card.training.synthetic_data is True
        assert "sct_lesion_classify train" in card.training.command
        assert card.metrics["onnx_parity_max_abs_diff"] < 1e-4
        assert (trained / name / f"{name}_training_log.csv").is_file()
        if card.task == "classification":
            assert card.input.channels[0].name == "zeros"
        else:  # every subject is in train or validation, none in both
            assert card.training.subjects.train + card.training.subjects.val == len(discover_subjects(dataset))


def test_onnx_matches_pytorch_on_fresh_inputs(trained):
    """Independent parity check: the best checkpoint (weights rounded as exported) vs ONNX Runtime."""
    import onnxruntime as ort

    from sct_lesion_classify.train.storage import round_weights_to_float16

    rng = np.random.default_rng(11)
    classifier_hw = RECIPES["tumor_vs_demyelinating"].example_hw  # the card's fixed input size
    for family, shape in (("lesion", (2, 1, 64, 96)), ("tumor_vs_demyelinating", (3, 3, *classifier_hw))):
        recipe = RECIPES[family]
        model = recipe.build_network()
        model.load_state_dict(torch.load(trained / ".train_runs" / recipe.name / "best.pt", weights_only=True))
        model = round_weights_to_float16(model).eval()
        session = ort.InferenceSession(str(trained / recipe.name / f"{recipe.name}.onnx"),
                                       providers=["CPUExecutionProvider"])
        batch = rng.standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            expected = torch.sigmoid(model(torch.from_numpy(batch))).numpy()
        got = session.run(None, {"input": batch})[0]
        assert np.abs(got - expected).max() < 1e-4, family


def test_packages_run_in_both_commands(trained, tmp_path):
    subject = discover_subjects(TESTING_DATA)[1]
    folders = [str(trained / RECIPES[f].name) for f in FAMILIES]
    custom = [arg for folder in folders for arg in ("-custom-model", folder)]
    seg_out = tmp_path / "lesion.nii.gz"
    assert deepseg_imlesion.main(["-i", str(subject.t2w), "-o", str(seg_out), "-v", "0"] + custom) == 0
    import nibabel as nib

    assert nib.load(str(seg_out)).shape == nib.load(str(subject.t2w)).shape
    json_out = tmp_path / "diagnosis.json"
    assert classify_lesion.main(["-i", str(subject.t2w), "-lesion", str(subject.lesion_mask), "-o", str(json_out),
                                 "-v", "0"] + custom) == 0
    document = json.loads(json_out.read_text())
    assert validation_errors(document) == []
    assert set(document["classifiers"]) == {"tumor_vs_demyelinating", "astrocytoma_vs_ependymoma", "ms_vs_nmosd"}


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_split_has_no_patient_leakage_and_is_deterministic(seed):
    subjects = [s for s in discover_subjects(TESTING_DATA) if s.split != "test"]
    first = split_subjects(subjects, 0.3, seed)
    check_no_leakage(first)
    ids = [{s.participant_id for s in getattr(first, part)} for part in ("train", "val", "test")]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert set().union(*ids) == {s.participant_id for s in subjects}
    again = split_subjects(subjects, 0.3, seed)
    assert [s.participant_id for s in again.val] == [s.participant_id for s in first.val]


def test_bad_family_and_empty_dataset_are_usage_errors(tmp_path, capsys):
    assert train_main(["glioma", "--bids", str(TESTING_DATA), "-o", str(tmp_path)]) == 2
    assert "invalid choice" in capsys.readouterr().err
    # the classifiers' options are refused for a segmentation family, in one line, before any work
    for option in (["--input-contract", "whole_slice"], ["--with-t1c"], ["--prepare-inputs"]):
        assert train_main(["cord", "--bids", str(TESTING_DATA), "-o", str(tmp_path / "m")] + option) == 2
        err = capsys.readouterr().err
        assert "applies to the classifiers, not to cord" in err and err.count("\n") == 1
    assert not (tmp_path / "m" / "cord").exists()
    # the lesion model's grid and width options are refused for the other families
    for family in ("cord", "ms_vs_nmosd"):
        assert train_main([family, "--bids", str(TESTING_DATA), "-o", str(tmp_path / "m"),
                           "--grid-mm", "0.75"]) == 2
        err = capsys.readouterr().err
        assert f"apply to the lesion model, not to {family}" in err and err.count("\n") == 1


def test_resume_of_a_finished_run_reexports_without_training(trained, dataset):
    """``train --resume`` when every epoch is done exports the best checkpoint again (the way to add
    the CAM output to a classifier trained before it existed); the card's wall time still counts
    the training loop recorded in the checkpoint (not only the re-export), and the training log
    keeps its rows."""
    name = RECIPES["tumor_vs_demyelinating"].name
    card_path = trained / name / f"{name}.json"
    import torch

    checkpoint = torch.load(trained / ".train_runs" / name / "last.pt", weights_only=True)
    loop_s = float(checkpoint["state"]["elapsed_s"])
    card_path.unlink()  # the re-export must not depend on the previous card
    log_before = (trained / name / f"{name}_training_log.csv").read_text()
    code = train_main(["tumor_vs_demyelinating", "--bids", str(dataset), "-o", str(trained), "--epochs", "1",
                       "--steps-per-epoch", "1", "--batch-size", "2", "--seed", "3", "--resume", "-v", "0"])
    assert code == 0
    package = ModelPackage.load(trained / name)
    assert loop_s <= package.card.training.wall_time_s < loop_s + 600
    assert package.card.output.cam_tensor == "cam"
    assert package.card.metrics["epochs_run"] == 1
    assert (trained / name / f"{name}_training_log.csv").read_text() == log_before
