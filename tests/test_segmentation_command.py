"""``sct_deepseg_imlesion`` in process: native-grid outputs, cord sources, postprocessing flags.

The model packages here are tiny real ONNX graphs (a 1x1 convolution and a sigmoid: a soft
threshold on the z-scored intensity), so these tests check the pipeline's mechanics: the cascade,
the crop and its inverse, orientation round trips, flags and outputs. Dice of the trained
reference models is checked on the committed testing_data in test_reference_models.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sct_lesion_classify import PROJECT_URL
from sct_lesion_classify.cli.deepseg_imlesion import main
from sct_lesion_classify.io.image import reorient_canonical
from sct_lesion_classify.modelpkg.testing import write_tiny_package

ORIENTATIONS = [("R", "A", "S"), ("P", "I", "R"), ("A", "S", "R"), ("L", "A", "S"), ("L", "P", "S"),
                ("P", "S", "L"), ("I", "R", "P")]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def synthetic_subject(shape=(9, 96, 160), seed=0):
    """Canonical volume: dark background, a cord tube along S-I, a very bright lesion in the cord."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    zooms = (3.0, 0.8, 0.8)
    cord = (((x - 4) * zooms[0]) ** 2 + ((y - 48) * zooms[1]) ** 2) < 5.5 ** 2
    lesion = cord & (np.abs(z - 80) < 12) & (np.abs(x - 4) <= 1) & (np.abs(y - 48) < 5)
    data = rng.normal(100, 5, shape)
    data[cord] = 300
    data[lesion] = 1500
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = (-12, -40, -60)
    return data.astype(np.float32), cord, lesion, affine


def write_subject(folder: Path, axcodes, seed=0):
    data, cord, lesion, affine = synthetic_subject(seed=seed)
    paths = {}
    for name, array, dtype in (("T2w", data, np.float32), ("cord", cord, np.uint8), ("lesion", lesion, np.uint8)):
        stored, stored_affine = reorient_canonical(array.astype(dtype), affine, axcodes)
        img = nib.Nifti1Image(stored.astype(dtype), stored_affine)
        img.set_qform(stored_affine, code=1)
        img.set_sform(stored_affine, code=1)
        paths[name] = folder / f"sub-01_{name}.nii.gz"
        nib.save(img, str(paths[name]))
    return paths


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    # lesion: p = sigmoid(4 z - 10) -> > 0.5 where the z-score exceeds 2.5 (the bright lesion)
    lesion = write_tiny_package(root, "tiny_lesion", "lesion_segmentation", weight=4.0, bias=-10.0)
    # cord: p = sigmoid(4 z - 2) -> > 0.5 above z = 0.5 (cord and lesion, not background)
    cord = write_tiny_package(root, "tiny_cord", "cord_localization", weight=4.0, bias=-2.0)
    return {"lesion": lesion, "cord": cord}


@pytest.mark.parametrize("axcodes", ORIENTATIONS, ids="".join)
def test_outputs_on_native_grid_for_every_orientation(tmp_path, packages, axcodes):
    paths = write_subject(tmp_path, axcodes)
    code = main(["-i", str(paths["T2w"]), "-s", str(paths["cord"]), "-custom-model", str(packages["lesion"]),
                 "-v", "0"])
    assert code == 0
    out = tmp_path / "sub-01_T2w_lesion_seg.nii.gz"
    written, source = nib.load(str(out)), nib.load(str(paths["T2w"]))
    assert written.shape == source.shape
    np.testing.assert_array_equal(written.affine, source.affine)
    assert int(written.header["qform_code"]) == 1 and int(written.header["sform_code"]) == 1
    assert written.get_data_dtype() == np.uint8
    truth = np.asarray(nib.load(str(paths["lesion"])).dataobj)
    assert dice(np.asarray(written.dataobj), truth) > 0.9


def test_builtin_localizer_and_user_mask_agree(tmp_path, packages, capsys):
    paths = write_subject(tmp_path, ("P", "I", "R"))
    out_user, out_builtin = tmp_path / "user.nii.gz", tmp_path / "builtin.nii.gz"
    assert main(["-i", str(paths["T2w"]), "-s", str(paths["cord"]), "-o", str(out_user),
                 "-custom-model", str(packages["lesion"])]) == 0
    assert main(["-i", str(paths["T2w"]), "-o", str(out_builtin), "-save-cord", "1",
                 "-custom-model", str(packages["lesion"]), "-custom-model", str(packages["cord"])]) == 0
    user = np.asarray(nib.load(str(out_user)).dataobj)
    builtin = np.asarray(nib.load(str(out_builtin)).dataobj)
    np.testing.assert_array_equal(user, builtin)
    cord = np.asarray(nib.load(str(tmp_path / "sub-01_T2w_seg.nii.gz")).dataobj)
    assert dice(cord, np.asarray(nib.load(str(paths["cord"])).dataobj)) > 0.85
    box = np.asarray(nib.load(str(tmp_path / "sub-01_T2w_cropbox.nii.gz")).dataobj).astype(bool)
    assert box[cord.astype(bool)].all()
    out = capsys.readouterr().out
    assert "Done! To view results" in out and "fsleyes" in out and "itksnap" in out


def test_sidecar_records_models_and_command(tmp_path, packages):
    paths = write_subject(tmp_path, ("R", "A", "S"))
    assert main(["-i", str(paths["T2w"]), "-s", str(paths["cord"]), "-custom-model", str(packages["lesion"])]) == 0
    sidecar = json.loads((tmp_path / "sub-01_T2w_lesion_seg.json").read_text())
    generated = sidecar["GeneratedBy"][0]
    assert generated["Name"] == "sct_lesion_classify"
    assert generated["CommandLine"].startswith("sct_deepseg_imlesion -i ")
    (model,) = generated["Models"]
    expected_sha = json.loads((packages["lesion"] / "tiny_lesion.json").read_text())["files"]["sha256"]
    assert model["SHA256"] == expected_sha and model["Name"] == "tiny_lesion"
    # sct_deepseg's keys: the code's repository, and the model's download URL (none for this package)
    assert generated["CodeURL"] == PROJECT_URL
    assert generated["ModelURL"] is None and model["ModelURL"] is None
    # the segmentation's trust checks, the same object as the diagnosis JSON's trust section
    assert sidecar["Trust"]["level"] in ("ok", "review", "unreliable")
    assert all(set(check) == {"code", "severity", "message", "value", "expected"}
               for check in sidecar["Trust"]["checks"])


def test_model_url_is_the_registry_url_of_that_name_and_version(tmp_path, packages, monkeypatch):
    from sct_lesion_classify.modelpkg.package import ModelPackage
    from sct_lesion_classify.pipeline.segmentation import model_url

    package = ModelPackage.load(packages["lesion"])
    url = "https://example.org/models/tiny_lesion-1.0.0.zip"
    registry = {"registry_version": 1, "packages": {
        "tiny_lesion": {"version": "1.0.0", "task": "lesion_segmentation", "url": url, "sha256": "0" * 64}}}
    (tmp_path / "registry.json").write_text(json.dumps(registry))
    monkeypatch.setenv("SCT_LESION_CLASSIFY_BUNDLED_DIR", str(tmp_path))
    assert model_url(package) == url
    registry["packages"]["tiny_lesion"]["version"] = "1.0.1"  # another version: not this package's URL
    (tmp_path / "registry.json").write_text(json.dumps(registry))
    assert model_url(package) is None
    (tmp_path / "registry.json").write_text("{not json")  # unreadable registry: no URL, no failure
    assert model_url(package) is None


def test_soft_map_with_thr_0(tmp_path, packages):
    paths = write_subject(tmp_path, ("L", "A", "S"))
    assert main(["-i", str(paths["T2w"]), "-s", str(paths["cord"]), "-thr", "0",
                 "-custom-model", str(packages["lesion"])]) == 0
    soft = nib.load(str(tmp_path / "sub-01_T2w_lesion_seg.nii.gz"))
    assert soft.get_data_dtype() == np.float32
    values = np.asarray(soft.dataobj)
    assert values.min() >= 0 and values.max() <= 1 and len(np.unique(values)) > 2


def test_postprocessing_flags_change_the_output(tmp_path, packages):
    paths = write_subject(tmp_path, ("R", "A", "S"))
    base = ["-i", str(paths["T2w"]), "-s", str(paths["cord"]), "-custom-model", str(packages["lesion"])]
    out_default, out_small = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    assert main(base + ["-o", str(out_default)]) == 0
    assert np.asarray(nib.load(str(out_default)).dataobj).sum() > 0
    # The lesion is ~ 3 x 13 x 24 voxels of 3 x 0.8 x 0.8 mm = 1800 mm3: removed below 5000 mm3.
    assert main(base + ["-o", str(out_small), "-remove-small", "5000mm3"]) == 0
    assert np.asarray(nib.load(str(out_small)).dataobj).sum() == 0


def test_empty_prediction_is_a_result(tmp_path, packages, capsys):
    never = write_tiny_package(tmp_path / "models", "tiny_never", "lesion_segmentation", weight=0.0, bias=-10.0)
    paths = write_subject(tmp_path, ("R", "A", "S"))
    assert main(["-i", str(paths["T2w"]), "-s", str(paths["cord"]), "-custom-model", str(never)]) == 0
    written = nib.load(str(tmp_path / "sub-01_T2w_lesion_seg.nii.gz"))
    assert written.shape == nib.load(str(paths["T2w"])).shape
    assert np.asarray(written.dataobj).sum() == 0
    assert "the mask is empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["-o", "{T2w}"], "would overwrite the input"),
        (["-o", "{dir}/out.txt"], "must end in .nii.gz"),
        (["-s", "{lesion_wrong}"], "not on the image grid"),
        (["-cord-method", "sct"], "-cord-method sct and -s are exclusive"),
        (["-custom-model", "{dir}/absent"], "model folder not found"),
    ],
)
def test_bad_requests_exit_2_and_write_nothing(tmp_path, packages, capsys, extra, message):
    paths = write_subject(tmp_path, ("R", "A", "S"))
    wrong = nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), np.eye(4))
    nib.save(wrong, str(tmp_path / "wrong.nii.gz"))
    fmt = {"T2w": paths["T2w"], "dir": tmp_path, "lesion_wrong": tmp_path / "wrong.nii.gz"}
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    argv = ["-i", str(paths["T2w"]), "-s", str(paths["cord"]), "-custom-model", str(packages["lesion"])]
    argv = argv + [e.format(**fmt) for e in extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_sct_method_without_sct_is_a_clear_failure(tmp_path, packages, capsys, monkeypatch):
    paths = write_subject(tmp_path, ("R", "A", "S"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert main(["-i", str(paths["T2w"]), "-cord-method", "sct", "-custom-model", str(packages["lesion"])]) == 1
    assert "'sct_deepseg' is not on PATH" in capsys.readouterr().err
    assert not (tmp_path / "sub-01_T2w_lesion_seg.nii.gz").exists()


def test_sct_method_runs_sct_deepseg_spinalcord(tmp_path, packages, monkeypatch):
    """SCT's command-line contract, with a stand-in 'sct_deepseg' that writes the true cord mask."""
    paths = write_subject(tmp_path, ("A", "S", "R"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "sct_deepseg"
    script.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = spinalcord ] && [ "$2" = -i ] && [ "$4" = -o ] || exit 3\n'
        f'cp "{paths["cord"]}" "$5"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert main(["-i", str(paths["T2w"]), "-cord-method", "sct", "-custom-model", str(packages["lesion"])]) == 0
    written = np.asarray(nib.load(str(tmp_path / "sub-01_T2w_lesion_seg.nii.gz")).dataobj)
    assert dice(written, np.asarray(nib.load(str(paths["lesion"])).dataobj)) > 0.9


def test_qc_entry_is_written(tmp_path, packages):
    paths = write_subject(tmp_path, ("R", "A", "S"))
    qc = tmp_path / "qc"
    assert main(["-i", str(paths["T2w"]), "-s", str(paths["cord"]), "-custom-model", str(packages["lesion"]),
                 "-qc", str(qc), "-qc-subject", "sub-01", "-qc-dataset", "demo"]) == 0
    index = json.loads((qc / "index.json").read_text())
    (entry,) = index["entries"]
    assert entry["subject"] == "sub-01" and entry["dataset"] == "demo"
    assert (qc / "index.html").is_file()
