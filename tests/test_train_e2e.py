"""Tiny end-to-end training runs on 8 phantoms: packages that the pipeline loads and runs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")
pytest.importorskip("onnxscript")

from sct_lesion_classify.io.image import load_image, load_mask  # noqa: E402
from sct_lesion_classify.modelpkg.package import ModelPackage  # noqa: E402
from sct_lesion_classify.phantom.dataset import write_dataset  # noqa: E402
from sct_lesion_classify.train.family import TrainOptions, train_family  # noqa: E402
from sct_lesion_classify.train.recipes import LESION, TUMOR_VS_DEMYELINATING  # noqa: E402

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms") / "bids"
    write_dataset(root, 8, seed=3, shape=(5, 48, 64), split="train")
    return root


def options(phantoms, out, **kw):
    base = dict(bids=phantoms, models_dir=out, epochs=2, steps_per_epoch=2, batch_size=4, seed=1,
                use_split_column=False, progress=False)
    return TrainOptions(**{**base, **kw})


def test_cord_command_writes_a_package_the_segmenter_runs(phantoms, tmp_path):
    """With --intensity-curve and --paint-lesions, which the card records."""
    from sct_lesion_classify.cli.sct_lesion_classify import main
    from sct_lesion_classify.runtime.sagittal import SagittalSegmenter
    from sct_lesion_classify.runtime.session import Predictor

    out = tmp_path / "models"
    code = main(["train", "cord", "--bids", str(phantoms), "-o", str(out), "--epochs", "1",
                 "--steps-per-epoch", "2", "--batch-size", "2", "--ignore-split-column",
                 "--seed", "2", "--intensity-curve", "0.5", "--paint-lesions", "0.5", "-v", "0"])
    assert code == 0
    folder = out / "cord_localizer"
    assert {p.name for p in folder.iterdir()} == {
        "cord_localizer.onnx", "cord_localizer.json", "cord_localizer_training_log.csv"}
    package = ModelPackage.load(folder)  # schema + sha256 verified
    card = json.loads((folder / "cord_localizer.json").read_text())
    assert card["training"]["synthetic_data"] is True and card["training"]["seed"] == 2
    assert "train cord" in card["training"]["command"]
    assert card["architecture"]["details"]["intensity_curve_prob"] == 0.5
    assert card["architecture"]["details"]["painted_lesion_prob"] == 0.5
    assert card["training"]["subjects"] == {"train": 4, "val": 4}
    assert card["metrics"]["onnx_parity_max_abs_diff"] < 1e-4
    image = load_image(sorted(phantoms.glob("sub-*/anat/*_T2w.nii.gz"))[0])
    probabilities = SagittalSegmenter(Predictor.create(package, threads=1)).probabilities(image)
    assert probabilities.shape == image.shape and 0 <= probabilities.min() <= probabilities.max() <= 1


def test_cord_localizer_with_neighbour_slices_from_the_bundled_2d_package(phantoms, tmp_path):
    """--neighbour-slices 1 --init-from the bundled (one-slice) localizer: a 2.5D package with
    three named channels, started from the widened 2D weights, that the segmenter runs."""
    from sct_lesion_classify.cli.sct_lesion_classify import main
    from sct_lesion_classify.runtime.sagittal import SagittalSegmenter
    from sct_lesion_classify.runtime.session import Predictor

    out = tmp_path / "models"
    code = main(["train", "cord", "--bids", str(phantoms), "-o", str(out), "--epochs", "1",
                 "--steps-per-epoch", "2", "--batch-size", "2", "--ignore-split-column", "--seed", "2",
                 "--neighbour-slices", "1", "--init-from", str(REPO / "models" / "cord_localizer"),
                 "--lr", "1e-5", "-v", "0"])
    assert code == 0
    package = ModelPackage.load(out / "cord_localizer")
    card = package.card
    assert [c.name for c in card.input.channels] == ["T2w_sagittal-1", "T2w", "T2w_sagittal+1"]
    assert card.architecture.details["in_channels"] == 3
    assert card.architecture.details["initial_weights"].startswith("cord_localizer ")
    assert "--neighbour-slices 1" in card.training.command
    assert card.metrics["onnx_parity_max_abs_diff"] < 1e-4
    image = load_image(sorted(phantoms.glob("sub-*/anat/*_T2w.nii.gz"))[0])
    probabilities = SagittalSegmenter(Predictor.create(package, threads=1)).probabilities(image)
    assert probabilities.shape == image.shape and 0 <= probabilities.min() <= probabilities.max() <= 1


def test_classifier_package_runs_in_the_classification_step(phantoms, tmp_path):
    from sct_lesion_classify.classify.inference import Classifier
    from sct_lesion_classify.io.bids import discover_subjects

    recipe = replace(TUMOR_VS_DEMYELINATING, spatial_size=(64, 64))
    outcome = train_family(recipe, options(phantoms, tmp_path))
    card = outcome.card
    assert card["output"]["positive_class"] == "tumor" and card["decision"]["aggregation"] == "mean"
    assert card["input"]["channels"][0]["name"] == "zeros"
    assert set(card["metrics"]["val"]) >= {"patient_auc", "patient_accuracy", "patient_loss"}
    assert card["metrics"]["onnx_parity_max_abs_diff"] < 1e-4
    # the decision head, fitted on the validation patients (too few of them for a fusion head)
    calibration = card["decision"]["calibration"]
    assert calibration["method"] == "temperature" and calibration["temperature"] > 0
    assert calibration["fitted_on"].startswith("validation split")
    assert 0 <= calibration["ece_after"] <= 1 and "fusion" not in card
    assert card["metrics"]["val"]["patient_ece"] == pytest.approx(calibration["ece_before"], abs=1e-6)
    assert card["metrics"]["val"]["patient_ece_calibrated"] == pytest.approx(calibration["ece_after"], abs=1e-6)
    package = ModelPackage.load(outcome.package_dir)
    classifier = Classifier(package, "tumor_vs_demyelinating", threads=1)
    subject = discover_subjects(phantoms)[0]
    image = load_image(subject.t2w)
    lesion, _ = load_mask(subject.lesion_mask, image.grid)
    result = classifier.classify(classifier.inputs(image, lesion))
    assert 0.0 <= result.probability <= 1.0 and len(result.slices_used) >= 1
    assert result.calibrated and not result.fused and result.probability == result.calibrated_probability


def test_lesion_multiresunet_package_and_resume(phantoms, tmp_path):
    recipe = LESION.with_grid(spacing_mm=2.0)  # train lesion --grid-mm 2: small patches, quick
    assert recipe.patch_size == (32, 48)  # 48 x 96 mm at 2 mm, rounded to multiples of 16
    first = train_family(recipe, options(phantoms, tmp_path, epochs=1, batch_size=2))
    assert first.card["input"]["spacing_mm"] == [2.0, 2.0]
    assert first.card["architecture"]["details"]["base_filters"] == 16
    assert first.card["architecture"]["parameters"] == 1_804_818  # MultiResUNet, 16 base filters
    assert first.card["input"]["crop_margins_mm"] == list(LESION.crop_margins_mm)
    resumed = train_family(recipe, options(phantoms, tmp_path, epochs=2, batch_size=2, resume=True))
    assert resumed.card["metrics"]["epochs_run"] == 2
    rows = resumed.log_path.read_text().strip().splitlines()
    assert len(rows) == 3  # header + 2 epochs
    ModelPackage.load(resumed.package_dir)


def test_classifier_on_two_datasets_with_the_input_cache(phantoms, tmp_path):
    from sct_lesion_classify.train.recipes import MS_VS_NMOSD

    second = tmp_path / "second"
    write_dataset(second, 8, seed=4, shape=(5, 48, 64), split="train")
    recipe = replace(TUMOR_VS_DEMYELINATING, spatial_size=(32, 64))
    outcome = train_family(recipe, options((phantoms, second), tmp_path / "models", epochs=1))
    card = outcome.card
    assert card["training"]["subjects"]["train"] + card["training"]["subjects"]["val"] == 16
    assert "BIDS datasets bids + second" in card["training"]["data"]
    assert card["input"]["centred_on"] == "lesion" and card["input"]["spacing_mm"] == [1.25, 1.25]
    assert card["architecture"]["details"]["input_contract"] == "lesion_roi"
    assert "val_patient_auc_then_loss" in outcome.log_path.read_text().splitlines()[0]
    cache = tmp_path / "models" / ".train_runs" / "inputs"
    entries = sorted(cache.rglob("*.npz"))
    assert len(entries) == 16  # every subject with a lesion, once
    stamps = {path: path.stat().st_mtime_ns for path in entries}
    # the MS/NMOSD model of the same contract reads the same inputs: nothing is rebuilt
    train_family(replace(MS_VS_NMOSD, spatial_size=(32, 64)),
                 options((phantoms, second), tmp_path / "models", epochs=1))
    assert {path: path.stat().st_mtime_ns for path in cache.rglob("*.npz")} == stamps


def test_prepare_inputs_fills_the_cache_and_trains_nothing(phantoms, tmp_path):
    from sct_lesion_classify.errors import InputError
    from sct_lesion_classify.train.family import prepare_inputs

    recipe = replace(TUMOR_VS_DEMYELINATING, spatial_size=(32, 64))
    count = prepare_inputs(recipe, options(phantoms, tmp_path / "models"))
    assert count == 8
    cache = tmp_path / "models" / ".train_runs" / "inputs"
    entries = sorted(cache.rglob("*.npz"))
    assert len(entries) == 8
    assert not (tmp_path / "models" / recipe.name).exists()  # no package, no checkpoint
    assert not (tmp_path / "models" / ".train_runs" / recipe.name).exists()
    with pytest.raises(InputError, match="classifiers"):
        prepare_inputs(LESION, options(phantoms, tmp_path / "models"))
    with pytest.raises(InputError, match="input cache"):
        prepare_inputs(recipe, options(phantoms, tmp_path / "other", cache_inputs=False))


def test_cord_fine_tuned_with_bce_from_a_checkpoint(phantoms, tmp_path):
    from sct_lesion_classify.cli.sct_lesion_classify import main

    first = tmp_path / "first"
    common = ["--bids", str(phantoms), "--steps-per-epoch", "2", "--batch-size", "2",
              "--ignore-split-column", "--seed", "2", "-v", "0"]
    assert main(["train", "cord", "-o", str(first), "--epochs", "1", *common]) == 0
    checkpoint = first / ".train_runs" / "cord_localizer" / "best.pt"
    second = tmp_path / "second"
    assert main(["train", "cord", "-o", str(second), "--epochs", "1", "--loss", "bce", "--lr", "1e-9",
                 "--init-from", str(checkpoint), *common]) == 0
    card = json.loads((second / "cord_localizer" / "cord_localizer.json").read_text())
    details = card["architecture"]["details"]
    assert details["loss"] == "BCE" and str(checkpoint) in details["initial_weights"]
    from sct_lesion_classify.modelpkg.package import file_sha256
    assert file_sha256(checkpoint) in details["initial_weights"]
    assert "--init-from" in card["training"]["command"] and "--loss bce" in card["training"]["command"]
    assert card["metrics"]["val"]["volume_ratio"] > 0
    # the fine-tuning started from the checkpoint: at a learning rate of 1e-9 the weights barely move
    # (the BatchNorm running statistics do, so only the convolution weights are compared)
    start = torch.load(checkpoint, weights_only=True)
    tuned = torch.load(second / ".train_runs" / "cord_localizer" / "best.pt", weights_only=True)
    convolutions = [key for key, value in start.items() if key.endswith("conv.weight") and value.ndim == 4]
    assert convolutions and all(torch.allclose(start[key], tuned[key], atol=1e-6) for key in convolutions)
    # a resume must start from the same weights: another checkpoint is another run
    other = tmp_path / "other.pt"
    torch.save({key: value + 1 for key, value in start.items()}, other)
    code = main(["train", "cord", "-o", str(second), "--epochs", "2", "--loss", "bce", "--resume",
                 "--init-from", str(other), *common])
    assert code == 2


def test_init_from_refuses_what_is_not_this_family_s_checkpoint(phantoms, tmp_path, capsys):
    from sct_lesion_classify.cli.sct_lesion_classify import main

    common = ["--bids", str(phantoms), "-o", str(tmp_path / "out"), "--epochs", "1",
              "--steps-per-epoch", "1", "--batch-size", "2", "--ignore-split-column", "-v", "0"]
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    lesion = tmp_path / "lesion.pt"
    torch.save(LESION.build_network().state_dict(), lesion)
    for given, message in ((tmp_path / "absent.pt", "no such file"),
                           (text, "not a readable PyTorch checkpoint"),
                           (lesion, "do not fit this family's network")):
        assert main(["train", "cord", "--init-from", str(given), *common]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert message in err[-1]
    assert main(["train", "ms_vs_nmosd", "--loss", "bce", *common]) == 2
    assert "--loss applies to the segmentation families" in capsys.readouterr().err


def test_cord_fine_tuned_from_the_bundled_package(phantoms, tmp_path, capsys):
    """--init-from a package folder: the bundled cord localizer's ONNX weights start the run, the
    card names the package, and a package of another family or a tampered one is refused."""
    import shutil

    from sct_lesion_classify.cli.sct_lesion_classify import main
    from sct_lesion_classify.modelpkg.package import ModelPackage
    from sct_lesion_classify.train.package_weights import onnx_weights

    bundled = ModelPackage.load(REPO / "models" / "cord_localizer")
    out = tmp_path / "tuned"
    common = ["--bids", str(phantoms), "--steps-per-epoch", "1", "--batch-size", "2",
              "--ignore-split-column", "--seed", "2", "-v", "0", "--epochs", "1", "--loss", "bce"]
    assert main(["train", "cord", "-o", str(out), "--lr", "1e-9",
                 "--init-from", str(bundled.folder), *common]) == 0
    card = json.loads((out / "cord_localizer" / "cord_localizer.json").read_text())
    assert card["architecture"]["details"]["initial_weights"] == (
        f"cord_localizer {bundled.version} (sha256 {bundled.sha256})")
    # at a learning rate of 1e-9 the convolutions keep the bundled weights (float16-rounded again
    # at export, which they already are)
    start, tuned = onnx_weights(bundled.onnx_path), onnx_weights(out / "cord_localizer" / "cord_localizer.onnx")
    convolutions = [key for key, value in start.items() if key.endswith("conv.weight") and value.ndim == 4]
    assert convolutions and all(np.allclose(start[key], tuned[key], atol=1e-6) for key in convolutions)

    refused = [(REPO / "models" / "lesion_multiresunet", 2, "a 'lesion_multiresunet' package; this run trains 'cord_localizer'")]
    tampered = tmp_path / "cord_localizer"
    shutil.copytree(bundled.folder, tampered)
    with open(tampered / "cord_localizer.onnx", "ab") as handle:
        handle.write(b"\0")
    refused.append((tampered, 1, "sha256 mismatch"))
    for folder, code, message in refused:
        assert main(["train", "cord", "-o", str(tmp_path / "refused"), "--init-from", str(folder),
                     *common]) == code
        assert message in capsys.readouterr().err.strip().splitlines()[-1]
