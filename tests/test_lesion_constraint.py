"""The cord constraint of the lesion model: the output is 0 beyond the card's ``cord_margin_mm``.

Tiny real ONNX packages (a 1x1 convolution and a sigmoid) on an anisotropic synthetic volume: a
cord tube along S-I with a bright lesion inside it, and a bright blob outside the cord but inside
the crop margins (what neck muscle and fat are on real scans). The expected region is computed
here independently, by brute force (nearest cord voxel centre with a k-d tree, in mm).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial import cKDTree

from sct_lesion_classify.cli.deepseg_imlesion import main
from sct_lesion_classify.cord.crop import crop_box_around, region_around, within_distance
from sct_lesion_classify.cord.localize import CordLocalization
from sct_lesion_classify.io.image import load_image
from sct_lesion_classify.lesion.segment import LesionSegmenter
from sct_lesion_classify.modelpkg.card import ModelCard
from sct_lesion_classify.modelpkg.package import ModelPackage
from sct_lesion_classify.modelpkg.testing import tiny_card, write_tiny_package

ZOOMS = (1.5, 0.6, 0.9)  # R-L, A-P, S-I: anisotropic on purpose
SHAPE = (11, 80, 90)
MARGIN_MM = 2.0
BUNDLED_CARD = Path(__file__).resolve().parents[1] / "models" / "lesion_multiresunet" / "lesion_multiresunet.json"


def synthetic_volume():
    """Canonical data, cord, lesion inside the cord, bright blob 6 mm anterior of the cord."""
    x, y, z = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    radial_mm = np.hypot((x - 5) * ZOOMS[0], (y - 40) * ZOOMS[1])
    cord = radial_mm < 4.0
    lesion = cord & (radial_mm < 2.0) & (np.abs(z - 45) < 8)
    outside = (np.abs(x - 5) <= 1) & (np.abs((y - 40) * ZOOMS[1] - 10.0) < 2.0) & (np.abs(z - 20) < 8)
    data = np.random.default_rng(0).normal(100, 5, SHAPE)
    data[cord] = 300
    data[lesion | outside] = 1500
    return data.astype(np.float32), cord, lesion, outside


def brute_force_within(cord: np.ndarray, margin_mm: float) -> np.ndarray:
    """Voxels whose centre lies within ``margin_mm`` of a cord voxel centre (k-d tree in mm)."""
    scale = np.asarray(ZOOMS)
    tree = cKDTree(np.argwhere(cord) * scale)
    distance, _ = tree.query(np.indices(SHAPE).reshape(3, -1).T * scale)
    return (distance <= margin_mm + 1e-6).reshape(SHAPE)


def save(array: np.ndarray, path: Path, dtype=np.float32) -> Path:
    affine = np.diag([*ZOOMS, 1.0])
    image = nib.Nifti1Image(array.astype(dtype), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, str(path))
    return path


def lesion_package(root: Path, name: str, margin: float | None, **onnx) -> ModelPackage:
    """A tiny lesion package whose card has ``cord_margin_mm = margin`` (no key when None)."""
    postprocessing = tiny_card(name)["postprocessing"]
    if margin is not None:
        postprocessing = {**postprocessing, "cord_margin_mm": margin}
    folder = write_tiny_package(root, name, "lesion_segmentation",
                                card_overrides={"postprocessing": postprocessing}, **onnx)
    return ModelPackage.load(folder)


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    folder = tmp_path_factory.mktemp("subject")
    data, cord, lesion, outside = synthetic_volume()
    return {"image": load_image(save(data, folder / "sub-01_T2w.nii.gz")),
            "image_path": folder / "sub-01_T2w.nii.gz",
            "cord_path": save(cord, folder / "sub-01_cord.nii.gz", np.uint8),
            "cord": cord, "lesion": lesion, "outside": outside}


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    # p = sigmoid(4 z - 10): > 0.5 where the z-score exceeds 2.5 (the lesion and the blob)
    return {"old": lesion_package(root / "old", "tiny_lesion", None, weight=4.0, bias=-10.0),
            "margin": lesion_package(root / "margin", "tiny_lesion", MARGIN_MM, weight=4.0, bias=-10.0),
            # p = sigmoid(5) everywhere: the output shows exactly the region searched
            "everywhere": lesion_package(root / "everywhere", "tiny_all", MARGIN_MM, weight=0.0, bias=5.0)}


def user_cord(subject) -> CordLocalization:
    return CordLocalization(mask=subject["cord"], source="user")


def test_within_distance_matches_brute_force_on_an_anisotropic_grid(subject):
    cord = subject["cord"]
    for margin in (0.0, 0.6, 1.0, MARGIN_MM, 3.3):
        np.testing.assert_array_equal(within_distance(cord, ZOOMS, margin), brute_force_within(cord, margin))
    assert np.array_equal(within_distance(cord, ZOOMS, 0.0), cord)
    with pytest.raises(ValueError):
        within_distance(cord, ZOOMS, -1.0)
    # masks at the array's edges and corners, small and sparse (the transform runs on their
    # bounding box grown by the margin, clipped to the array)
    rng = np.random.default_rng(5)
    for corner in ((0, 0, 0), tuple(n - 1 for n in SHAPE), (0, SHAPE[1] - 1, SHAPE[2] // 2)):
        sparse = rng.uniform(size=SHAPE) < 0.001
        sparse[corner] = True
        for margin in (0.0, 0.6, MARGIN_MM, 3.3):
            np.testing.assert_array_equal(within_distance(sparse, ZOOMS, margin), brute_force_within(sparse, margin))


def test_output_is_zero_outside_the_cord_dilated_by_the_cards_margin(subject, packages):
    result = LesionSegmenter(packages["everywhere"], threads=1).segment(subject["image"], user_cord(subject))
    expected = brute_force_within(subject["cord"], MARGIN_MM)
    assert result.cord_margin_mm == MARGIN_MM
    assert not result.probabilities[~expected].any()
    assert not np.asarray(result.mask)[~expected].any()
    assert (result.probabilities[expected] > 0.9).all()  # everything within the margin is searched
    np.testing.assert_array_equal(result.searched_region, expected)
    assert result.searched_region.shape == subject["image"].shape and result.searched_region.dtype == bool


def test_lesion_inside_is_untouched_and_the_blob_outside_is_removed(subject, packages):
    image, cord = subject["image"], user_cord(subject)
    before = LesionSegmenter(packages["old"], threads=1).segment(image, cord)
    after = LesionSegmenter(packages["margin"], threads=1).segment(image, cord)
    kept = brute_force_within(subject["cord"], MARGIN_MM)
    # the network's probabilities within the margin are the unconstrained ones, bit for bit
    np.testing.assert_array_equal(after.probabilities[kept], before.probabilities[kept])
    np.testing.assert_array_equal(after.mask & subject["lesion"], before.mask & subject["lesion"])
    assert after.mask[subject["lesion"]].mean() > 0.9
    assert before.mask[subject["outside"]].mean() > 0.9  # the look-alike beyond the cord ...
    assert not after.mask[subject["outside"]].any()      # ... is gone with the margin


def test_network_skips_the_slices_where_the_constraint_keeps_nothing(subject, packages, monkeypatch):
    import sct_lesion_classify.runtime.sagittal as sagittal

    planned = []
    plan_tiles = sagittal.plan_tiles

    def recording(needed, **kwargs):
        planned.append(np.asarray(needed).any(axis=(1, 2)))
        return plan_tiles(needed, **kwargs)

    monkeypatch.setattr(sagittal, "plan_tiles", recording)
    image, cord = subject["image"], user_cord(subject)
    result = LesionSegmenter(packages["margin"], threads=1).segment(image, cord)
    (tiled_slices,) = planned
    start, stop = result.box.start[0], result.box.stop[0]
    kept_slices = brute_force_within(subject["cord"], MARGIN_MM).any(axis=(1, 2))[start:stop]
    region_slices = region_around(result.box.apply(subject["cord"]), ZOOMS,
                                  packages["margin"].card.input.crop_margins_mm).any(axis=(1, 2))
    assert region_slices.sum() > kept_slices.sum()  # the case has slices to skip
    np.testing.assert_array_equal(tiled_slices, kept_slices)
    assert not result.probabilities[:start].any() and not result.probabilities[stop:].any()


def test_card_without_the_field_loads_and_behaves_as_before(subject, packages):
    document = json.loads(BUNDLED_CARD.read_text(encoding="utf-8"))
    document["postprocessing"].pop("cord_margin_mm", None)
    old = ModelCard.from_json(document)
    assert old.postprocessing.cord_margin_mm is None
    assert "cord_margin_mm" not in old.to_json()["postprocessing"]
    assert old.to_json() == document

    image, cord = subject["image"], user_cord(subject)
    result = LesionSegmenter(packages["old"], threads=1).segment(image, cord)
    margins = packages["old"].card.input.crop_margins_mm
    box = crop_box_around(subject["cord"], ZOOMS, margins)
    region = box.invert(region_around(box.apply(subject["cord"]), ZOOMS, margins), fill=False)
    assert result.cord_margin_mm is None
    np.testing.assert_array_equal(result.searched_region, region)
    assert result.mask[subject["outside"]].mean() > 0.9


def test_bundled_card_has_a_margin_and_refuses_a_negative_one():
    document = json.loads(BUNDLED_CARD.read_text(encoding="utf-8"))
    assert ModelCard.from_json(document).postprocessing.cord_margin_mm is not None
    document["postprocessing"]["cord_margin_mm"] = -1.0
    with pytest.raises(Exception, match="cord_margin_mm"):
        ModelCard.from_json(document)


def test_no_crop_is_not_constrained(subject, packages):
    result = LesionSegmenter(packages["everywhere"], threads=1).segment(subject["image"], None)
    assert result.cord_margin_mm is None
    assert result.searched_region.all()
    assert (result.probabilities > 0.9).all()


def test_commands_constrain_to_the_user_cord_mask_and_not_with_no_crop(tmp_path, subject, packages):
    folder = str(packages["margin"].folder)
    constrained, free = tmp_path / "constrained.nii.gz", tmp_path / "free.nii.gz"
    assert main(["-i", str(subject["image_path"]), "-s", str(subject["cord_path"]), "-o", str(constrained),
                 "-custom-model", folder, "-v", "0"]) == 0
    assert main(["-i", str(subject["image_path"]), "-no-crop", "-o", str(free),
                 "-custom-model", folder, "-v", "0"]) == 0
    constrained_mask = np.asarray(nib.load(str(constrained)).dataobj) > 0
    free_mask = np.asarray(nib.load(str(free)).dataobj) > 0
    assert not constrained_mask[~brute_force_within(subject["cord"], MARGIN_MM)].any()
    assert constrained_mask[subject["lesion"]].mean() > 0.9
    assert free_mask[subject["outside"]].mean() > 0.9

    # another user mask moves the constraint with it: a cord 12 mm posterior leaves out the lesion
    moved = np.roll(subject["cord"], -20, axis=1)
    assert not (moved & subject["cord"]).any()
    moved_path = save(moved, tmp_path / "moved_cord.nii.gz", np.uint8)
    moved_out = tmp_path / "moved.nii.gz"
    assert main(["-i", str(subject["image_path"]), "-s", str(moved_path), "-o", str(moved_out),
                 "-custom-model", folder, "-v", "0"]) == 0
    moved_mask = np.asarray(nib.load(str(moved_out)).dataobj) > 0
    assert not moved_mask[~brute_force_within(moved, MARGIN_MM)].any()
    assert not moved_mask[subject["lesion"]].any()
