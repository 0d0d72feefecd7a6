"""``sct_lesion_classify insert-lesions``: synthetic lesions painted inside the cord of healthy scans.

Inputs: a synthetic healthy scan whose cord is tilted 30 degrees in the sagittal plane (known cord
intensity 400 and noise SD 15, stored in LPS-like axes as int16 with distinct qform/sform codes), the
committed testing_data phantoms (thick sagittal slices, eight storage orientations) and, when
present, the shared real scan (``../shared/realdata``; skipped when absent). Commands run in
process through ``main([...])``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from sct_lesion_classify.cli import insert_lesions
from sct_lesion_classify.cli.sct_lesion_classify import main as dispatch, usage
from sct_lesion_classify.errors import ProcessingError
from sct_lesion_classify.io import bids
from sct_lesion_classify.io.image import reorient_canonical

ROOT = Path(__file__).resolve().parents[1]
TESTING_DATA = ROOT / "testing_data"
REALDATA = ROOT.parent / "shared" / "realdata"
REAL_T2W = REALDATA / "sub-unf01" / "anat" / "sub-unf01_T2w.nii.gz"
REAL_CORD = REALDATA / "derivatives" / "labels" / "sub-unf01" / "anat" / "sub-unf01_T2w_seg-manual.nii.gz"
PROG = "sct_lesion_classify insert-lesions"

TILT_DEG = 30.0
CORD_T2 = 400.0
NOISE_SD = 15.0
SEGMENT_MM = 10.0
#: T2 ratio to the cord drawn in phantom.lesions.build_parts: the solid part of each class, from its
#: lowest draw to the highest draw of the brighter parts a class may hold (tumour cysts 2.35-2.6,
#: NMOSD bright spotty foci 2.45-2.7). The median over a lesion lies in this range, give or take
#: texture (SD up to 22% of the value) and dark caps.
T2_RATIO = {"astrocytoma": (1.55, 2.6), "ependymoma": (1.45, 2.6), "MS": (1.8, 2.3),
            "NMOSD": (1.6, 2.7)}
#: Extension in vertebral segments: phantom.cohort.sample_subject_params clips its draw to this.
EXTENT_SEGMENTS = (0.6, 11.0)
CYCLE = ["astrocytoma", "ependymoma", "MS", "NMOSD"] * 2


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def native(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj)


def tilted_cord_arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Canonical image, cord mask and per-slice cord centre (x, y) of a cord tilted by TILT_DEG."""
    shape = (40, 110, 140)
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    z = np.arange(shape[2])
    center_x = 20.0 + 2.0 * np.sin(z / 30.0)
    center_y = 15.0 + math.tan(math.radians(TILT_DEG)) * z
    radius_x, radius_y = 5.0, 3.5 / math.cos(math.radians(TILT_DEG))
    image = np.full(shape, 250.0)
    cord = np.zeros(shape, dtype=bool)
    for k in range(shape[2]):
        dx, dy = x - center_x[k], y - center_y[k]
        image[:, :, k][(dx / (radius_x + 3)) ** 2 + (dy / (radius_y + 3)) ** 2 <= 1] = 1000.0
        cord[:, :, k] = (dx / radius_x) ** 2 + (dy / radius_y) ** 2 <= 1
    image[cord] = CORD_T2
    image += np.random.default_rng(seed).normal(0.0, NOISE_SD, shape)
    return np.rint(image), cord, center_x, center_y


def write_native(array: np.ndarray, path: Path, dtype) -> None:
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = (-20.0, -50.0, -70.0)
    data, stored = reorient_canonical(array.astype(dtype), affine, ("L", "P", "S"))
    img = nib.Nifti1Image(data, stored)
    img.set_data_dtype(dtype)
    img.set_sform(stored, code=2)
    img.set_qform(stored, code=1)
    nib.save(img, str(path))


@pytest.fixture(scope="module")
def tilted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tilted")
    image, cord, center_x, center_y = tilted_cord_arrays()
    t2w, mask = folder / "ctrl_T2w.nii.gz", folder / "ctrl_T2w_seg.nii.gz"
    write_native(image, t2w, np.int16)
    write_native(cord, mask, np.uint8)
    return {"t2w": t2w, "mask": mask, "center_x": center_x, "center_y": center_y}


@pytest.fixture(scope="module")
def inserted(tilted, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "realbg"
    before = {key: sha256(tilted[key]) for key in ("t2w", "mask")}
    argv = ["-i", str(tilted["t2w"]), "-s", str(tilted["mask"]), "-o", str(out), "-n", "8",
            "--seed", "7", "--segment-mm", str(SEGMENT_MM), "-v", "0"]
    assert insert_lesions.main(argv) == 0
    assert {key: sha256(tilted[key]) for key in ("t2w", "mask")} == before  # inputs only read
    return {"out": out, "argv": argv, **tilted}


def canonical_case(out: Path, pid: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Output image, lesion and cord masks (canonical RAS arrays) and the sidecar of a case."""
    paths = bids.subject_paths(out, pid)
    arrays = [np.asarray(nib.as_closest_canonical(nib.load(str(paths[key]))).dataobj)
              for key in ("t2w", "lesion_mask", "cord_mask")]
    sidecar = json.loads(paths["t2w"].with_name(f"{pid}_T2w.json").read_text())
    return arrays[0].astype(float), arrays[1] > 0, arrays[2] > 0, sidecar


def test_truth_inside_the_cord_and_nothing_painted_outside(inserted):
    source = native(inserted["t2w"])
    cord = native(inserted["mask"]) > 0
    subjects = bids.discover_subjects(inserted["out"])
    assert len(subjects) == 8
    for subject in subjects:
        lesion = native(subject.lesion_mask) > 0
        assert lesion.any(), subject.participant_id
        assert not (lesion & ~cord).any(), f"{subject.participant_id}: lesion outside the cord mask"
        assert np.array_equal(native(subject.cord_mask) > 0, cord)
        painted = native(subject.t2w)
        assert np.array_equal(painted[~cord], source[~cord]), "voxels outside the cord changed"
        assert not np.array_equal(painted[cord], source[cord])


def test_outputs_keep_the_input_grid(inserted):
    source = nib.load(str(inserted["t2w"]))
    for subject in bids.discover_subjects(inserted["out"]):
        for path in (subject.t2w, subject.lesion_mask, subject.cord_mask):
            img = nib.load(str(path))
            assert img.shape == source.shape
            assert np.allclose(img.affine, source.affine, atol=1e-6)
            assert int(img.header["sform_code"]) == 2 and int(img.header["qform_code"]) == 1
            assert np.allclose(img.header.get_qform(), source.header.get_qform(), atol=1e-6)
            assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
        assert nib.load(str(subject.t2w)).get_data_dtype() == source.get_data_dtype()
        assert nib.load(str(subject.lesion_mask)).get_data_dtype() == np.uint8


def test_intensity_ratio_and_extent_within_the_class_ranges(inserted):
    cos = math.cos(math.radians(TILT_DEG))
    for pid, diagnosis in zip([f"sub-{k:03d}" for k in range(1, 9)], CYCLE):
        image, lesion, _, sidecar = canonical_case(inserted["out"], pid)
        info = sidecar["LesionInsertion"]
        assert info["drawn"]["diagnosis"] == diagnosis and not info["runs_out_of_image"]
        core = ndimage.binary_erosion(lesion)
        core = core if core.sum() >= 20 else lesion
        ratio = float(np.median(image[core])) / CORD_T2
        low, high = T2_RATIO[diagnosis]
        assert low - 0.1 <= ratio <= high + 0.1, (pid, diagnosis, ratio)
        # the command's own measure: whole lesion, against the cord intensity it measured (~400)
        assert abs(info["measured"]["t2_ratio"] - float(np.median(image[lesion])) / CORD_T2) < 0.05
        slices = np.flatnonzero(lesion.any(axis=(0, 1)))
        extent_mm = (slices[-1] - slices[0] + 1) / cos  # along the tilted cord
        assert abs(info["measured"]["extent_mm"] - extent_mm) < 2.0, (pid, extent_mm)
        segments = extent_mm / SEGMENT_MM
        assert EXTENT_SEGMENTS[0] * 0.8 <= segments <= EXTENT_SEGMENTS[1] * 1.4
        drawn = info["drawn"]["extent_segments"]
        # the parts reach a little past the drawn span (polar cysts, lengthened fat tumours, plaque
        # gaps of at least 4 mm) or fall short of it (spindle tips below half a voxel)
        assert 0.6 * drawn - 0.3 <= segments <= 1.45 * drawn + 0.8, (pid, diagnosis, drawn, segments)


def test_lesions_follow_the_tilted_cord(inserted):
    """A central lesion stays centred in every slice while the cord moves 30 degrees off vertical."""
    center_y = inserted["center_y"]
    for pid in ("sub-002", "sub-006"):  # the ependymomas: central
        _, lesion, _, sidecar = canonical_case(inserted["out"], pid)
        assert sidecar["LesionInsertion"]["drawn"]["diagnosis"] == "ependymoma"
        slices = np.flatnonzero(lesion.any(axis=(0, 1)))
        assert center_y[slices[-1]] - center_y[slices[0]] > 10.0  # the cord moves far in the span
        offsets = np.array([np.nonzero(lesion[:, :, k])[1].mean() - center_y[k] for k in slices])
        assert np.mean(np.abs(offsets) < 1.5) >= 0.9, (pid, offsets.round(1))


def test_painted_signal_and_noise_level():
    """An untextured part: the cord's intensity times its ratio, with the image's own noise level."""
    from sct_lesion_classify.insertion.cord_frame import measure_cord_frame
    from sct_lesion_classify.insertion.paint import noise_sigma, paint_lesion
    from sct_lesion_classify.phantom.lesions import LesionPart

    image, cord, _, _ = tilted_cord_arrays(seed=4)
    frame = measure_cord_frame(cord, (1.0, 1.0, 1.0))
    assert abs(frame.length_mm - 140 / math.cos(math.radians(TILT_DEG))) < 2.0
    assert abs(noise_sigma(image, cord) - NOISE_SD) < 0.15 * NOISE_SD
    middle = (frame.arc_range_mm[0] + frame.arc_range_mm[1]) / 2
    part = LesionPart("solid", middle, 40.0, 0.0, 0.0, 3.5, 3.0, 4.0, True, 2.0, 1.0, 0.0, 0.0)
    painted = paint_lesion(image, cord, frame, (part,), np.random.default_rng(0))
    assert painted.lesion_mask.sum() > 1000 and not (painted.lesion_mask & ~cord).any()
    core = ndimage.binary_erosion(painted.lesion_mask, iterations=2)
    values = painted.t2w[core]
    assert abs(values.mean() - 2.0 * CORD_T2) < 5.0
    assert 0.85 * NOISE_SD <= values.std() <= 1.15 * NOISE_SD, values.std()
    edge = painted.lesion_mask & ~ndimage.binary_erosion(painted.lesion_mask)
    assert CORD_T2 + 50 < np.median(painted.t2w[edge]) < 2.0 * CORD_T2  # partial volume at the edge
    assert np.array_equal(painted.t2w[~cord], image[~cord].astype(np.float32))


def test_participants_and_bids_discovery(inserted, tilted):
    out = inserted["out"]
    rows = bids.read_participants(out)
    assert list(rows) == [f"sub-{k:03d}" for k in range(1, 9)]
    assert [row["diagnosis"] for row in rows.values()] == CYCLE
    assert {row["style"] for row in rows.values()} == {"real-background"}
    assert {row["source_image"] for row in rows.values()} == {str(tilted["t2w"])}
    assert len({row["split"] for row in rows.values()}) == 1  # one source: one split
    for subject in bids.discover_subjects(out):
        assert subject.split in bids.SPLITS and subject.sex in ("M", "F")
        assert subject.difficult in (True, False) and 6.0 <= subject.age <= 85.0
        assert subject.cord_mask is not None and subject.lesion_mask is not None
    sidecar = json.loads((out / "participants.json").read_text())
    assert "real-background" in sidecar["style"]["Levels"] and "Description" in sidecar["source_image"]
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["GeneratedBy"][0]["Name"] == PROG
    labels = json.loads((out / bids.LABELS_DIR / "dataset_description.json").read_text())
    assert labels["DatasetType"] == "derivative"
    assert not [p for p in out.parent.iterdir() if ".partial-" in p.name]


def test_same_seed_same_dataset_other_seed_other_lesions(inserted, tmp_path):
    again = tmp_path / "again"
    argv = list(inserted["argv"])
    argv[argv.index("-o") + 1] = str(again)
    assert insert_lesions.main(argv) == 0
    assert tree_digest(again) == tree_digest(inserted["out"])
    other = tmp_path / "other"
    argv[argv.index("-o") + 1] = str(other)
    argv[argv.index("--seed") + 1] = "8"
    argv[argv.index("-n") + 1] = "2"
    assert insert_lesions.main(argv) == 0
    mask = bids.subject_paths(other, "sub-001")["lesion_mask"]
    assert not np.array_equal(native(mask), native(bids.subject_paths(inserted["out"], "sub-001")["lesion_mask"]))


def _bad_mask(tilted, folder: Path, kind: str) -> Path:
    image, cord, _, _ = tilted_cord_arrays()
    path = folder / f"{kind}_seg.nii.gz"
    if kind == "empty":
        write_native(np.zeros_like(cord), path, np.uint8)
    elif kind == "other_grid":
        write_native(cord[:, :, :100], path, np.uint8)
    else:  # a cord of 10 or 5 slices
        short = np.zeros_like(cord)
        length = 10 if kind == "short" else 5
        short[:, :, 60:60 + length] = cord[:, :, 60:60 + length]
        write_native(short, path, np.uint8)
    return path


@pytest.mark.parametrize("kind, extra, message", [
    ("empty", [], "cord mask is empty"),
    ("other_grid", [], "not on the image grid"),
    ("short", ["--classes", "astrocytoma"], "needs"),
    ("tiny", ["--allow-partial"], "at least 8 mm"),
])
def test_bad_cord_masks_exit_2_with_one_line_and_write_nothing(tilted, tmp_path, capsys, kind, extra,
                                                              message):
    mask = _bad_mask(tilted, tmp_path, kind)
    inputs = {p: sha256(p) for p in (tilted["t2w"], mask)}
    out = tmp_path / "out"
    assert insert_lesions.main(["-i", str(tilted["t2w"]), "-s", str(mask), "-o", str(out),
                                "-n", "2", "-v", "0", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{PROG}: error:") and message in err[0], err
    if kind == "short":  # the length found and the length needed
        found = 10 / math.cos(math.radians(TILT_DEG))  # ten slices of a tilted cord
        assert f"cord is {found:.1f} mm long" in err[0] and "--allow-partial" in err[0]
    assert {p: sha256(p) for p in inputs} == inputs
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_bad_output_folders_and_options_exit_2(tilted, tmp_path, capsys):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    bids_copy = tmp_path / "ds"
    (bids_copy / "sub-01" / "anat").mkdir(parents=True)
    (bids_copy / bids.LABELS_DIR / "sub-01" / "anat").mkdir(parents=True)
    paths = bids.subject_paths(bids_copy, "sub-01")
    paths["t2w"].write_bytes(tilted["t2w"].read_bytes())
    paths["cord_mask"].write_bytes(tilted["mask"].read_bytes())
    before = tree_digest(bids_copy)
    cases = [
        (["-i", str(tilted["t2w"]), "-s", str(tilted["mask"]), "-o", str(full)], "not empty"),
        (["--bids", str(bids_copy), "-o", str(bids_copy / "derivatives" / "x")], "inside the input dataset"),
        (["-i", str(tilted["t2w"]), "-o", str(tmp_path / "a")], "needs its cord mask"),
        (["--bids", str(bids_copy), "-s", str(tilted["mask"]), "-o", str(tmp_path / "b")], "-s goes with -i"),
        (["-i", str(tilted["t2w"]), "--bids", str(bids_copy), "-o", str(tmp_path / "c")], "not allowed"),
        (["-i", str(tilted["t2w"]), "-s", str(tilted["mask"]), "-o", str(tmp_path / "d"),
          "--classes", "glioma"], "invalid choice"),
    ]
    for argv, message in cases:
        assert insert_lesions.main([*argv, "-v", "0"]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        if message in ("not allowed", "invalid choice"):  # parser errors: the usage line first
            assert err.pop(0).startswith(f"usage: {PROG} (-i <file> | --bids <folder>) -o <folder>"), err
        assert len(err) == 1 and err[0].startswith(f"{PROG}: error:") and message in err[0], err
    assert tree_digest(bids_copy) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "full"]
    assert [p.name for p in full.iterdir()] == ["keep.txt"]


def test_a_failure_while_writing_leaves_no_dataset(tilted, tmp_path, monkeypatch, capsys):
    from sct_lesion_classify.insertion import dataset

    real_save_like = dataset.save_like
    calls = []

    def failing_save_like(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise ProcessingError("disk full (simulated)")
        return real_save_like(*args, **kwargs)

    monkeypatch.setattr(dataset, "save_like", failing_save_like)
    out = tmp_path / "out"
    assert insert_lesions.main(["-i", str(tilted["t2w"]), "-s", str(tilted["mask"]), "-o", str(out),
                                "-n", "2", "-v", "0"]) == 1
    assert "disk full" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_bids_of_controls_testing_data(tmp_path):
    """Every testing_data subject as a source: each case on its own source's grid, truth in its cord."""
    out = tmp_path / "from_bids"
    before = tree_digest(TESTING_DATA)
    assert dispatch(["insert-lesions", "--bids", str(TESTING_DATA), "-o", str(out), "-n", "1",
                     "--seed", "3", "-v", "0"]) == 0
    assert tree_digest(TESTING_DATA) == before
    sources = {s.t2w: s for s in bids.discover_subjects(TESTING_DATA)}
    rows = bids.read_participants(out)
    assert sorted(row["diagnosis"] for row in rows.values()) == sorted(bids.DIAGNOSES * 2)
    for subject in bids.discover_subjects(out):
        source = sources[Path(rows[subject.participant_id]["source_image"])]
        reference = nib.load(str(source.t2w))
        for path in (subject.t2w, subject.lesion_mask, subject.cord_mask):
            img = nib.load(str(path))
            assert img.shape == reference.shape and np.allclose(img.affine, reference.affine, atol=1e-6)
        assert nib.load(str(subject.t2w)).get_data_dtype() == reference.get_data_dtype()
        lesion = native(subject.lesion_mask) > 0
        assert lesion.any() and not (lesion & ~(native(source.cord_mask) > 0)).any()
        # one split per source
        assert subject.split == rows[subject.participant_id]["split"]


@pytest.mark.skipif(not REAL_T2W.is_file(), reason="shared real scan (../shared/realdata) absent")
def test_real_scan(tmp_path, capsys):
    """The shared real scan (16 slices of cord, slightly tilted): refused without --allow-partial, painted with it."""
    out = tmp_path / "real"
    argv = ["-i", str(REAL_T2W), "-s", str(REAL_CORD), "-o", str(out), "-n", "4", "--seed", "1", "-v", "0"]
    assert insert_lesions.main(argv) == 2
    err = capsys.readouterr().err
    found = re.search(r"the cord is ([0-9.]+) mm long along its centreline; the \w+ lesion drawn needs ([0-9.]+) mm", err)
    assert found and 16.0 <= float(found[1]) <= 16.5 < float(found[2]) and not out.exists(), err
    assert insert_lesions.main([*argv, "--allow-partial"]) == 0
    source = nib.load(str(REAL_T2W))
    cord = native(REAL_CORD) > 0
    reference = float(np.median(np.asarray(source.dataobj)[ndimage.binary_erosion(cord)]))
    rows = bids.read_participants(out)
    for subject in bids.discover_subjects(out):
        img = nib.load(str(subject.t2w))
        assert img.shape == source.shape and np.allclose(img.affine, source.affine)
        assert img.get_data_dtype() == source.get_data_dtype()
        assert int(img.header["sform_code"]) == int(source.header["sform_code"])
        lesion = native(subject.lesion_mask) > 0
        assert lesion.any() and not (lesion & ~cord).any()
        ratio = float(np.median(np.asarray(img.dataobj)[lesion])) / reference
        low, high = T2_RATIO[rows[subject.participant_id]["diagnosis"]]
        assert low - 0.2 <= ratio <= high + 0.2, (subject.participant_id, ratio)


def test_help_and_dispatcher(capsys):
    assert insert_lesions.main(["-h"]) == 0
    text = capsys.readouterr().out
    assert "MANDATORY ARGUMENTS" in text and "--allow-partial" in text
    assert "insert-lesions" in usage()
