"""Grad-CAM (``sct_classify_lesion -gradcam 1``): the CAM output exported in the classifiers' ONNX
graph, its equality with autograd Grad-CAM, and the maps written on the native grid.

The network is a small MONAI DenseNet (same ``features`` / ``class_layers`` structure as
DenseNet121, fewer layers and channels) so the export takes seconds; the CAM arithmetic does not
depend on depth or width.
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
SIZE = 256  # classifier input; the CAM is SIZE / 32 = 8 cells on a side


def _torch():
    torch = pytest.importorskip("torch")
    pytest.importorskip("monai")
    pytest.importorskip("onnx")
    torch.set_num_threads(2)
    return torch


def small_densenet(seed: int = 0):
    """A MONAI DenseNet with DenseNet121's head (ReLU -> average pool -> Linear), eval mode."""
    torch = _torch()
    from monai.networks.nets import DenseNet

    torch.manual_seed(seed)
    return DenseNet(spatial_dims=2, in_channels=3, out_channels=1, init_features=8, growth_rate=4,
                    block_config=(1, 1, 1, 1)).eval()


def lesion_detector(seed: int = 0):
    """A DenseNet whose only evidence is the lesion-mask channel: conv0 averages channel 2, the
    dense layers add nothing, the transitions pass the mask-derived channels through, the linear
    layer sums them. Its logit grows with the lesion area; its CAM is the smoothed mask."""
    torch = _torch()
    model = small_densenet(seed)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.zero_()
                if name.endswith("conv0"):
                    module.weight[:, 2] = 1.0 / 49.0
                elif "transition" in name:
                    for k in range(min(module.weight.shape[:2])):
                        module.weight[k, k] = 1.0
        model.class_layers.out.weight.fill_(1.0)
        model.class_layers.out.bias.fill_(-0.05)
    return model


def classifier_card(role: str, k: int) -> dict:
    classes = ROLE_CLASSES[role]
    card = tiny_card(role, "classification", spatial_size=(SIZE, SIZE))
    card["output"] = dict(card["output"], classes=list(classes), positive_class=classes[k % 2],
                          cam_tensor="cam")
    return card


@pytest.fixture(scope="module")
def cam_packages(tmp_path_factory):
    """The three classifier packages, all the lesion detector exported with its CAM output."""
    _torch()
    from sct_lesion_classify.train.export import with_cam, write_package

    root = tmp_path_factory.mktemp("cam_models")
    folders = []
    for k, role in enumerate(ROLE_CLASSES):
        if not folders:
            result = write_package(root / role, role, with_cam(lesion_detector()), classifier_card(role, k),
                                   in_channels=3, example_hw=(SIZE, SIZE), dynamic_hw=False,
                                   extra_outputs=("cam",))
            assert result.parity_max_abs_diff < 1e-4
            first = result
        else:  # same network, another role: copy the ONNX file, write the card
            (root / role).mkdir()
            shutil.copy(first.onnx_path, root / role / f"{role}.onnx")
            card = classifier_card(role, k)
            card["files"] = {"onnx": f"{role}.onnx", "sha256": first.sha256}
            card["metrics"] = json.loads(first.card_path.read_text())["metrics"]
            (root / role / f"{role}.json").write_text(json.dumps(card))
        folders.append(root / role)
    return folders


def custom(folders):
    return [arg for folder in folders for arg in ("-custom-model", str(folder))]


def oblique_copy(subject, folder: Path) -> dict[str, Path]:
    """T2w and lesion mask stored in a non-RAS voxel order (A, I, L) with an oblique affine."""
    rotation = np.eye(4)
    angle = np.deg2rad(12.0)
    rotation[:3, :3] = [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]]
    paths = {}
    for key in ("t2w", "lesion_mask"):
        image = nib.load(str(getattr(subject, key)))
        image = nib.as_closest_canonical(image).as_reoriented(np.array([[1, 1], [2, -1], [0, -1]]))
        affine = rotation @ image.affine
        out = nib.Nifti1Image(np.asarray(image.dataobj), affine)
        out.set_qform(affine, code=1)
        out.set_sform(affine, code=1)
        paths[key] = folder / getattr(subject, key).name
        nib.save(out, str(paths[key]))
    return paths


# ---------------------------------------------------------------------------------- export
def test_export_parity_on_both_outputs(cam_packages):
    """(a) The package has outputs ``output`` (N, 1) and ``cam`` (N, 8, 8), both equal to PyTorch's."""
    torch = _torch()
    import onnxruntime as ort

    from sct_lesion_classify.modelpkg.package import ModelPackage
    from sct_lesion_classify.train.export import with_cam
    from sct_lesion_classify.train.storage import round_weights_to_float16

    package = ModelPackage.load(cam_packages[0])
    assert package.card.output.cam_tensor == "cam"
    assert package.card.metrics["onnx_parity_max_abs_diff"] < 1e-4
    session = ort.InferenceSession(str(package.onnx_path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["output", "cam"]
    model = with_cam(round_weights_to_float16(lesion_detector())).eval()
    batch = np.random.default_rng(5).random((3, 3, SIZE, SIZE)).astype(np.float32)
    probability, cam = session.run(None, {"input": batch})
    with torch.no_grad():
        expected_probability, expected_cam = (t.numpy() for t in model(torch.from_numpy(batch)))
    assert probability.shape == (3, 1) and cam.shape == (3, SIZE // 32, SIZE // 32)
    assert np.abs(probability - expected_probability).max() < 1e-4
    assert np.abs(cam - expected_cam).max() < 1e-4


def test_cam_equals_autograd_gradcam():
    """(b) For DenseNet's head, autograd Grad-CAM at the last (ReLU'd) feature maps is the exported
    CAM (relu'd): the reason no autograd is needed at inference."""
    torch = _torch()
    from sct_lesion_classify.train.export import with_cam

    model = small_densenet(seed=4)
    model.class_layers.relu.inplace = False  # same arithmetic; lets autograd see the activations
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32))
    captured = {}
    handle = model.class_layers.relu.register_forward_hook(lambda m, i, o: captured.setdefault("a", o))
    logits = model(x)
    handle.remove()
    activations = captured["a"]
    gradients, = torch.autograd.grad(logits.sum(), activations)  # samples are independent
    alpha = gradients.mean(dim=(2, 3), keepdim=True)
    before_relu = (alpha * activations).sum(dim=1).detach().numpy()
    gradcam = np.maximum(before_relu, 0.0)
    with torch.no_grad():
        _, cam = with_cam(model)(x)
    cam = cam.numpy()
    for sample in range(2):  # the same map...
        assert np.corrcoef(before_relu[sample].ravel(), cam[sample].ravel())[0, 1] > 0.999
    # ...at the same scale (each cell's contribution to the logit)
    np.testing.assert_allclose(before_relu, cam, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(gradcam, np.maximum(cam, 0.0), rtol=1e-4, atol=1e-7)
    with torch.no_grad():  # the cells sum to the logit minus the bias
        np.testing.assert_allclose(cam.sum(axis=(1, 2)) + float(model.class_layers.out.bias),
                                   model(x)[:, 0].numpy(), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------- command
def test_gradcam_maps_on_the_native_grid(tmp_path, cam_packages):
    """(c) + (d): one map per classifier on the input's native (oblique, non-RAS) grid, in [0, 1],
    zero outside the classified slices, highest inside or next to the lesion; listed in the JSON."""
    subject = SUBJECTS[0]
    paths = oblique_copy(subject, tmp_path)
    out = tmp_path / "out" / "diagnosis.json"
    assert main(["-i", str(paths["t2w"]), "-lesion", str(paths["lesion_mask"]), "-o", str(out),
                 "-gradcam", "1", "-v", "0"] + custom(cam_packages)) == 0
    document = json.loads(out.read_text())
    assert validation_errors(document) == []
    stem = paths["t2w"].name.replace(".nii.gz", "")
    native = nib.load(str(paths["t2w"]))
    image = load_image(paths["t2w"])
    lesion, _ = load_mask(paths["lesion_mask"], image.grid)
    assert set(document["gradcam"]) == set(ROLE_CLASSES)
    for role in ROLE_CLASSES:
        path = tmp_path / "out" / f"{stem}_gradcam-{role}.nii.gz"
        assert document["gradcam"][role]["path"] == str(path)
        saved = nib.load(str(path))
        assert saved.shape == native.shape
        np.testing.assert_allclose(saved.affine, native.affine, atol=1e-5)
        assert int(saved.header["qform_code"]) == 1 and int(saved.header["sform_code"]) == 1
        values = np.asarray(saved.dataobj)
        assert values.dtype == np.float32 and values.min() >= 0.0 and values.max() == pytest.approx(1.0)
        canonical = load_image(path).data  # back in the pipeline's canonical orientation
        used = document["classifiers"][role]["slices_used"]
        outside = np.ones(canonical.shape[0], bool)
        outside[used] = False
        assert not canonical[outside].any()
        # (d) the lesion detector's map peaks inside the lesion or a few voxels from it (the CAM
        # itself has cells of 32 input pixels, here about 36 voxels)
        peak = np.array(np.unravel_index(np.argmax(canonical), canonical.shape))
        assert peak[0] in used
        in_slice = np.argwhere(lesion[peak[0]])
        distance = np.sqrt(((in_slice - peak[1:]) ** 2).sum(axis=1)).min()
        assert distance <= 5.0, (role, distance)


def test_package_without_cam_warns_and_writes_no_map(tmp_path):
    """(e) Packages exported before the CAM output: -gradcam 1 warns, names the model, exits 0."""
    root = tmp_path / "models"
    folders = []
    for k, (role, classes) in enumerate(ROLE_CLASSES.items()):
        card = tiny_card(role, "classification", spatial_size=(32, 32))
        output = dict(card["output"], classes=list(classes), positive_class=classes[k % 2])
        folders.append(write_tiny_package(root, role, "classification", spatial_size=(32, 32),
                                          card_overrides={"output": output}))
    subject = SUBJECTS[1]
    out = tmp_path / "d.json"
    assert main(["-i", str(subject.t2w), "-lesion", str(subject.lesion_mask), "-o", str(out),
                 "-gradcam", "1", "-v", "0"] + custom(folders)) == 0
    document = json.loads(out.read_text())
    assert validation_errors(document) == []
    assert document["gradcam"] == {}
    for role in ROLE_CLASSES:
        assert any(f"model {role} has no CAM output; re-export it with this version" in w
                   for w in document["warnings"])
    assert not list(tmp_path.glob("*gradcam*"))
    assert document["diagnosis"] is not None


def test_qc_entry_shows_the_maps(tmp_path, cam_packages):
    """(f) With -qc, the classification entry has one Grad-CAM picture per model."""
    subject = SUBJECTS[1]
    qc = tmp_path / "qc"
    out = tmp_path / "d.json"
    assert main(["-i", str(subject.t2w), "-lesion", str(subject.lesion_mask), "-o", str(out),
                 "-gradcam", "1", "-qc", str(qc), "-v", "0"] + custom(cam_packages)) == 0
    entries = json.loads((qc / "index.json").read_text())["entries"]
    pictures = [path for caption, path in entries[-1]["pictures"] if caption.startswith("Grad-CAM")]
    assert sorted(Path(p).name for p in pictures) == sorted(f"gradcam-{role}.png" for role in ROLE_CLASSES)
    for picture in pictures:
        assert (qc / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_the_flag_no_map(tmp_path, cam_packages):
    subject = SUBJECTS[1]
    out = tmp_path / "d.json"
    assert main(["-i", str(subject.t2w), "-lesion", str(subject.lesion_mask), "-o", str(out), "-v", "0"]
                + custom(cam_packages)) == 0
    assert "gradcam" not in json.loads(out.read_text())
    assert not list(tmp_path.glob("*gradcam*"))


def test_cam_volume_inverts_the_classifier_resampling():
    """A CAM that is constant on the classifier input comes back constant on the native slice
    (the square padding is dropped, nothing leaks in), at the right sagittal index."""
    from sct_lesion_classify.classify.gradcam import cam_volume
    from sct_lesion_classify.classify.inputs import build_classifier_slices
    from sct_lesion_classify.modelpkg.card import InputSpec
    from sct_lesion_classify.runtime.preprocess import Volume

    spec = InputSpec.from_json(tiny_card("x", "classification", spatial_size=(SIZE, SIZE))["input"])
    t2w = np.random.default_rng(0).normal(100, 20, (5, 40, 90)).astype(np.float32)
    lesion = np.zeros(t2w.shape, bool)
    lesion[[1, 3], 10:30, 20:70] = True
    slices = build_classifier_slices(Volume(t2w, (3.0, 1.0, 0.8)), lesion, spec)
    assert slices.slice_indices == (1, 3)
    cam = np.zeros((2, 8, 8), np.float32)
    cam[0] = 2.0
    cam[1, 2, 5] = 4.0
    volume = cam_volume(cam, slices)
    assert volume.shape == (5, 40, 90)
    assert not volume[[0, 2, 4]].any()
    assert np.ptp(volume[1]) < 1e-5 and 0.4 < volume[1, 0, 0] < 0.6  # 2 / (a bit less than 4)
    assert volume.max() == pytest.approx(1.0) and volume[3].max() == pytest.approx(1.0)
