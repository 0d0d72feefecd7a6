"""The lesion table in ``sct_analyze_lesion``'s columns (``<stem>_lesion_seg_analysis.csv``), its
label map (``<stem>_lesion_seg_label.nii.gz``) and the cohort table of ``batch``.

The table is read as a script written for ``sct_analyze_lesion``'s ``measures`` sheet reads it:
by column name (``csv.DictReader``). The phantom has known lesions in a straight box-shaped cord,
stored in a non-canonical orientation, so every SCT measure has a value worked out by hand.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sct_lesion_classify.batch.lesion_table import COLUMNS as COHORT_COLUMNS
from sct_lesion_classify.batch.lesion_table import LESION_TABLE_NAME
from sct_lesion_classify.classify.diagnosis import CLASSES, ROLE_CLASSES
from sct_lesion_classify.cli.classify_lesion import main as classify_main
from sct_lesion_classify.cli.sct_lesion_classify import main as dispatch
from sct_lesion_classify.lesion.analysis_table import SCT_MEASURES, build_table, cord_angles, sct_measures
from sct_lesion_classify.lesion.morphometry import label_lesions, measure_lesions
from sct_lesion_classify.modelpkg.testing import tiny_card, write_tiny_package
from sct_lesion_classify.phantom.dataset import write_dataset

REPO = Path(__file__).resolve().parents[1]
TESTING_DATA = REPO / "testing_data"
SCT_COLUMNS = ("label", *SCT_MEASURES)
CORD_COLUMNS = ("length [mm]", "width [mm]", "max_equivalent_diameter [mm]", "max_axial_damage_ratio []")

# the phantom, canonical (RAS: R-L, A-P, S-I) arrays
ZOOMS = (2.0, 0.5, 0.8)
SHAPE = (9, 40, 60)
CORD = (slice(2, 7), slice(12, 28), slice(None))  # 5 x 16 voxels in every axial slice
BIG = (slice(3, 6), slice(16, 24), slice(20, 35))  # 3 x 8 x 15 = 360 voxels
SMALL = (slice(4, 5), slice(20, 22), slice(45, 48))  # 1 x 2 x 3 = 6 voxels
STORED = ("P", "I", "R")  # the orientation the files are stored in


def read_measures(path: Path) -> list[dict[str, str]]:
    """As a script reads sct_analyze_lesion's measures sheet: one dict per lesion, by column name."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def canonical_phantom() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, cord, lesion) canonical arrays; lesion voxels of BIG alternate 600/610 along A-P."""
    image = np.full(SHAPE, 100.0, dtype=np.float32)
    cord = np.zeros(SHAPE, bool)
    cord[CORD] = True
    lesion = np.zeros(SHAPE, bool)
    lesion[BIG] = lesion[SMALL] = True
    image[cord] = 300.0
    big = np.zeros(SHAPE, bool)
    big[BIG] = True
    ap = np.arange(SHAPE[1])[None, :, None]
    image[big] = np.broadcast_to(600.0 + 10.0 * (ap % 2), SHAPE)[big]
    image[SMALL] = 900.0
    return image, cord, lesion


def save_stored(array: np.ndarray, path: Path, dtype) -> None:
    """Write a canonical array in the STORED orientation (axes permuted and flipped)."""
    canonical_affine = np.diag([*ZOOMS, 1.0])
    canonical_affine[:3, 3] = (-8.0, -10.0, 30.0)
    transform = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt(("R", "A", "S")),
                                                nib.orientations.axcodes2ornt(STORED))
    data = nib.orientations.apply_orientation(array, transform)
    affine = canonical_affine @ nib.orientations.inv_ornt_aff(transform, array.shape)
    nib.save(nib.Nifti1Image(data.astype(dtype), affine), str(path))


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory) -> list[str]:
    """-custom-model arguments of three tiny classifier packages."""
    root = tmp_path_factory.mktemp("models")
    args = []
    for k, (role, classes) in enumerate(ROLE_CLASSES.items()):
        card = tiny_card(role, "classification", spatial_size=(32, 32))
        output = dict(card["output"], classes=list(classes), positive_class=classes[k % 2])
        folder = write_tiny_package(root, role, "classification", spatial_size=(32, 32), weight=0.7,
                                    bias=-0.4 + 0.2 * k, card_overrides={"output": output})
        args += ["-custom-model", str(folder)]
    return args


@pytest.fixture()
def phantom(tmp_path) -> dict[str, Path]:
    image, cord, lesion = canonical_phantom()
    paths = {name: tmp_path / f"{name}.nii.gz" for name in ("t2", "cord", "lesion", "empty")}
    save_stored(image, paths["t2"], np.float32)
    save_stored(cord, paths["cord"], np.uint8)
    save_stored(lesion, paths["lesion"], np.uint8)
    save_stored(np.zeros(SHAPE, bool), paths["empty"], np.uint8)
    return paths


# ----------------------------------------------------------------------------- the command
def test_phantom_table_has_sct_measures_worked_out_by_hand(phantom, classifiers, tmp_path):
    out = tmp_path / "out"
    assert classify_main(["-i", str(phantom["t2"]), "-lesion", str(phantom["lesion"]), "-s", str(phantom["cord"]),
                          "-o", str(out / "t2_diagnosis.json"), *classifiers, "-v", "0"]) == 0
    table_path, labels_path = out / "t2_lesion_seg_analysis.csv", out / "t2_lesion_seg_label.nii.gz"

    columns = header(table_path)
    assert columns[:8] == [*SCT_COLUMNS, "mean_t2", "std_t2"], "SCT's columns first, in SCT's order"
    rows = read_measures(table_path)
    assert [row["label"] for row in rows] == ["1", "2"], "numbered by decreasing volume"
    big, small = rows
    voxel = math.prod(ZOOMS)
    pixel = ZOOMS[0] * ZOOMS[1]
    expected_big = {"volume [mm3]": 360 * voxel, "length [mm]": 15 * ZOOMS[2], "width [mm]": 8 * ZOOMS[1],
                    "max_equivalent_diameter [mm]": 2 * math.sqrt(24 * pixel / math.pi),
                    "max_axial_damage_ratio []": 24 / 80, "mean_t2": 605.0, "std_t2": 5.0,
                    "intensity_ratio": 605.0 / 300.0}
    expected_small = {"volume [mm3]": 6 * voxel, "length [mm]": 3 * ZOOMS[2], "width [mm]": 2 * ZOOMS[1],
                      "max_equivalent_diameter [mm]": 2 * math.sqrt(2 * pixel / math.pi),
                      "max_axial_damage_ratio []": 2 / 80, "mean_t2": 900.0, "std_t2": 0.0}
    for row, expected in ((big, expected_big), (small, expected_small)):
        for column, value in expected.items():
            assert float(row[column]) == pytest.approx(value, abs=1e-5), column
    assert big["position"] == "central" and big["levels_estimated"] == "True" and big["vertebral_levels"] == ""

    document = json.loads((out / "t2_diagnosis.json").read_text())
    for name in CLASSES:
        assert {row[f"p_{name}"] for row in rows} == {repr(document["diagnosis"]["probabilities"][name])}
    assert {row["most_likely_class"] for row in rows} == {document["diagnosis"]["most_likely_class"]}
    assert [lesion["volume_mm3"] for lesion in document["lesions"]["lesions"]] == \
        pytest.approx([float(row["volume [mm3]"]) for row in rows], abs=1e-3), "same lesions as the JSON"

    given, labels = nib.load(str(phantom["lesion"])), nib.load(str(labels_path))
    assert labels.shape == given.shape and np.allclose(labels.affine, given.affine)
    assert labels.get_data_dtype() == np.uint8
    label_data = np.asarray(labels.dataobj)
    assert np.array_equal(label_data > 0, np.asarray(given.dataobj) > 0)
    for row in rows:
        count = int((label_data == int(row["label"])).sum())
        assert float(row["volume [mm3]"]) == pytest.approx(count * voxel), "label map and rows agree"


def test_testing_data_subject(tmp_path):
    """A testing_data subject with its manual masks and the bundled models."""
    image = TESTING_DATA / "sub-002" / "anat" / "sub-002_T2w.nii.gz"
    labels_dir = TESTING_DATA / "derivatives" / "labels" / "sub-002" / "anat"
    lesion, cord = labels_dir / "sub-002_T2w_lesion-manual.nii.gz", labels_dir / "sub-002_T2w_seg-manual.nii.gz"
    assert classify_main(["-i", str(image), "-lesion", str(lesion), "-s", str(cord),
                          "-o", str(tmp_path / "sub-002_T2w_diagnosis.json"), "-v", "0"]) == 0
    rows = read_measures(tmp_path / "sub-002_T2w_lesion_seg_analysis.csv")
    given = nib.load(str(lesion))
    labels = nib.load(str(tmp_path / "sub-002_T2w_lesion_seg_label.nii.gz"))
    assert labels.shape == given.shape and np.array_equal(labels.affine, given.affine)
    label_data = np.asarray(labels.dataobj)
    voxel = float(np.prod(given.header.get_zooms()[:3]))
    assert rows and sorted(int(r["label"]) for r in rows) == sorted(set(np.unique(label_data)) - {0})
    data = np.asarray(nib.load(str(image)).dataobj, dtype=np.float64)
    for row in rows:
        inside = label_data == int(row["label"])
        assert float(row["volume [mm3]"]) == pytest.approx(inside.sum() * voxel, rel=1e-6)
        assert float(row["mean_sub-002_T2w"]) == pytest.approx(data[inside & (data != 0)].mean(), rel=1e-6)
        for column in CORD_COLUMNS:
            assert float(row[column]) > 0, f"{column}: computed with the cord mask"
        assert 0 < float(row["max_axial_damage_ratio []"])


def test_empty_lesion_mask_gives_a_header_and_an_all_zero_label_map(phantom, classifiers, tmp_path):
    assert classify_main(["-i", str(phantom["t2"]), "-lesion", str(phantom["empty"]), "-s", str(phantom["cord"]),
                          "-o", str(tmp_path / "d.json"), *classifiers, "-v", "0"]) == 0
    table_path = tmp_path / "t2_lesion_seg_analysis.csv"
    assert table_path.read_text().count("\n") == 1 and read_measures(table_path) == []
    assert header(table_path)[:6] == list(SCT_COLUMNS)
    labels = nib.load(str(tmp_path / "t2_lesion_seg_label.nii.gz"))
    assert labels.shape == nib.load(str(phantom["t2"])).shape and not np.asarray(labels.dataobj).any()


def test_an_output_path_equal_to_an_input_is_refused(phantom, classifiers, tmp_path):
    shutil.copy(phantom["lesion"], tmp_path / "t2_lesion_seg_label.nii.gz")
    code = classify_main(["-i", str(phantom["t2"]), "-lesion", str(tmp_path / "t2_lesion_seg_label.nii.gz"),
                          "-s", str(phantom["cord"]), "-o", str(tmp_path / "d.json"), *classifiers, "-v", "0"])
    assert code == 2 and not (tmp_path / "d.json").exists()


# ----------------------------------------------------------------------------- the measures
def test_without_a_cord_mask_only_volume_and_intensity_are_measured():
    image, _, lesion = canonical_phantom()
    labels, _ = label_lesions(lesion)
    morphometry = measure_lesions(lesion, ZOOMS, np.eye(4), image=image)
    table = build_table(labels, morphometry.lesions, ZOOMS, image_name="t2", image=image)
    rows = [dict(zip(table.columns, row)) for row in table.rows()]
    assert [row[c] for row in rows for c in CORD_COLUMNS] == [""] * 8, "empty cells, as SCT without -s"
    assert float(rows[0]["volume [mm3]"]) == pytest.approx(360 * math.prod(ZOOMS))
    assert float(rows[0]["mean_t2"]) == pytest.approx(605.0)


def test_a_tilted_cord_corrects_length_width_and_diameter():
    """A straight cord leaning forward by theta in the sagittal plane: SCT's angle correction."""
    zooms = (1.0, 0.5, 1.0)
    shape = (7, 80, 50)
    slope = 1  # A-P voxels per axial slice
    theta = math.atan(slope * zooms[1] / zooms[2])
    cord = np.zeros(shape, bool)
    lesion = np.zeros(shape, bool)
    for z in range(shape[2]):
        y0 = 4 + slope * z
        cord[1:6, y0:y0 + 12, z] = True
        if 20 <= z < 30:
            lesion[2:5, y0 + 4:y0 + 8, z] = True
    angle_3d, angle_sagittal = cord_angles(cord, zooms)
    assert np.allclose(angle_3d[5:45], theta, atol=0.02) and np.allclose(angle_sagittal[5:45], theta, atol=0.02)
    labels, _ = label_lesions(lesion)
    (measures,) = sct_measures(labels, zooms, cord_mask=cord)
    assert measures.length_mm == pytest.approx(10 * zooms[2] / math.cos(theta), rel=0.01)
    assert measures.width_mm == pytest.approx(4 * zooms[1] * math.cos(theta), rel=0.01)
    assert measures.max_equivalent_diameter_mm == pytest.approx(
        2 * math.sqrt(12 * zooms[0] * zooms[1] * math.cos(theta) / math.pi), rel=0.01)
    assert measures.max_axial_damage_ratio == pytest.approx(12 / 60)
    assert measures.volume_mm3 == pytest.approx(120 * math.prod(zooms))


# ----------------------------------------------------------------------------- batch
def test_batch_writes_the_cohort_table_and_rebuilds_it_on_resume(tmp_path, classifiers):
    bids = tmp_path / "bids"
    write_dataset(bids, 3, seed=11, shape=(7, 64, 96))
    models = [*classifiers]
    assert dispatch(["batch", "--bids", str(bids), "--use-manual-lesion", *models, "-v", "0"]) == 0
    out = bids / "derivatives" / "sct_lesion_classify"
    cohort = out / LESION_TABLE_NAME
    assert tuple(header(cohort)) == COHORT_COLUMNS and COHORT_COLUMNS[0] == "subject"
    cohort_rows = read_measures(cohort)
    expected = []
    for pid in ("sub-001", "sub-002", "sub-003"):
        subject_table = out / pid / "anat" / f"{pid}_T2w_lesion_seg_analysis.csv"
        assert (out / pid / "anat" / f"{pid}_T2w_lesion_seg_label.nii.gz").is_file()
        for row in read_measures(subject_table):
            row = {("mean_T2w" if k == f"mean_{pid}_T2w" else "std_T2w" if k == f"std_{pid}_T2w" else k): v
                   for k, v in row.items()}
            expected.append({"subject": pid, **row})
    assert expected and cohort_rows == expected

    cohort.unlink()
    assert dispatch(["batch", "--bids", str(bids), "--use-manual-lesion", *models, "-v", "0"]) == 0
    assert read_measures(cohort) == expected, "rebuilt from the per-subject tables when every subject is skipped"
