"""NIfTI loading: canonical orientation, exact native-grid round trip, clear errors."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sct_lesion_classify.errors import InputError, ProcessingError
from sct_lesion_classify.io.image import (
    MAX_VOXELS,
    load_image,
    load_mask,
    nibabel_axcodes,
    reorient_canonical,
    save_like,
    sct_orientation,
)

AXES = (("R", "L"), ("A", "P"), ("S", "I"))


def all_orientations() -> list[tuple[str, str, str]]:
    """The 48 axis-aligned storage orientations (permutations x flips)."""
    result = []
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((0, 1), repeat=3):
            result.append(tuple(AXES[perm[k]][flips[k]] for k in range(3)))
    return result


def canonical_volume(shape=(7, 9, 11), seed=0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = rng.uniform(0, 1000, size=shape).astype(np.float32)
    affine = np.diag([3.5, 0.6, 0.7, 1.0])
    affine[:3, 3] = (-12.0, -80.0, -150.0)
    return data, affine


def write(path: Path, data: np.ndarray, affine: np.ndarray, dtype=np.float32, qcode=1, scode=1) -> Path:
    img = nib.Nifti1Image(data.astype(dtype), affine)
    img.set_qform(affine, code=qcode)
    img.set_sform(affine, code=scode)
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("axcodes", all_orientations(), ids="".join)
def test_round_trip_is_exact_for_every_orientation(tmp_path, axcodes):
    canonical, canonical_affine = canonical_volume()
    stored, stored_affine = reorient_canonical(canonical, canonical_affine, axcodes)
    path = write(tmp_path / "in.nii.gz", stored, stored_affine, qcode=1, scode=2)

    image = load_image(path)
    # Canonical data and affine are recovered whatever the storage orientation.
    np.testing.assert_array_equal(image.data, canonical)
    np.testing.assert_allclose(image.affine, canonical_affine, atol=1e-6)
    assert image.zooms == pytest.approx((3.5, 0.6, 0.7))
    assert image.grid.orientation == sct_orientation(axcodes)

    out = tmp_path / "out.nii.gz"
    save_like(image.data, image.grid, out, dtype=np.float32)
    written = nib.load(str(out))
    original = nib.load(str(path))
    assert written.shape == original.shape
    np.testing.assert_array_equal(written.get_fdata(), original.get_fdata())
    np.testing.assert_array_equal(written.affine, original.affine)
    assert int(written.header["qform_code"]) == 1
    assert int(written.header["sform_code"]) == 2
    np.testing.assert_allclose(written.header.get_qform(), original.header.get_qform(), atol=1e-6)


def test_world_coordinates_are_preserved(tmp_path):
    canonical, canonical_affine = canonical_volume(seed=1)
    stored, stored_affine = reorient_canonical(canonical, canonical_affine, ("P", "I", "R"))
    image = load_image(write(tmp_path / "a.nii", stored, stored_affine))
    ijk_native = np.array([3, 5, 2])
    world = stored_affine @ np.append(ijk_native, 1)
    ijk_canonical = np.rint(np.linalg.solve(image.affine, world)).astype(int)[:3]
    assert image.data[tuple(ijk_canonical)] == stored[tuple(ijk_native)]


def test_oblique_affine_keeps_its_exact_affine(tmp_path):
    data, affine = canonical_volume(seed=2)
    theta = np.deg2rad(12)
    rotation = np.array([[1, 0, 0], [0, np.cos(theta), -np.sin(theta)], [0, np.sin(theta), np.cos(theta)]])
    oblique = affine.copy()
    oblique[:3, :3] = rotation @ affine[:3, :3]
    path = write(tmp_path / "oblique.nii.gz", data, oblique)
    image = load_image(path)
    out = tmp_path / "back.nii.gz"
    save_like(image.data > 500, image.grid, out)
    written = nib.load(str(out))
    np.testing.assert_array_equal(written.affine, nib.load(str(path)).affine)
    np.testing.assert_array_equal(np.asarray(written.dataobj), (data > 500).astype(np.uint8))
    assert written.get_data_dtype() == np.uint8


def test_singleton_fourth_dimension_is_accepted(tmp_path):
    data, affine = canonical_volume()
    image = load_image(write(tmp_path / "t.nii.gz", data[..., None], affine))
    assert image.shape == data.shape


def test_scaled_integer_data_are_read_with_their_scaling(tmp_path):
    data, affine = canonical_volume()
    img = nib.Nifti1Image(np.rint(data).astype(np.int16), affine)
    img.header.set_slope_inter(2.0, 10.0)
    nib.save(img, str(tmp_path / "s.nii.gz"))
    image = load_image(tmp_path / "s.nii.gz")
    np.testing.assert_allclose(image.data, np.rint(data) * 2 + 10)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "absent.nii.gz", "not found"),
        (lambda d: (d / "folder.nii.gz").mkdir() or d / "folder.nii.gz", "is a directory"),
        (lambda d: _bytes(d / "text.nii.gz", b"this is not an image"), "not a readable NIfTI"),
        (lambda d: _bytes(d / "plain.txt", b"x"), "must be a NIfTI file"),
        (lambda d: _truncated(d / "trunc.nii.gz"), "cannot be read"),
        (lambda d: write(d / "flat.nii.gz", np.ones((8, 8, 1)), np.eye(4)), "2D"),
        (lambda d: write(d / "vol4d.nii.gz", np.ones((4, 4, 4, 3)), np.eye(4)), "4D"),
        (lambda d: write(d / "nan.nii.gz", np.full((4, 4, 4), np.nan), np.eye(4)), "NaN/Inf"),
        (lambda d: _with_inf(d / "inf.nii.gz"), "1 NaN/Inf voxel"),
        (lambda d: write(d / "zero.nii.gz", np.zeros((4, 4, 4)), np.eye(4)), "empty"),
        (lambda d: _zero_voxel(d / "zerovox.nii"), "invalid voxel size"),
        (lambda d: _negative_voxel(d / "negvox.nii"), "invalid voxel size"),
        (lambda d: _huge_header(d / "huge.nii"), "over the limit"),
    ],
    ids=["missing", "directory", "not-nifti", "extension", "truncated", "2d", "4d", "all-nan", "inf",
         "all-zero", "zero-voxel", "negative-voxel", "huge-header"],
)
def test_bad_images_give_one_line_errors_naming_the_file(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InputError) as info:
        load_image(path, what="T2w image")
    text = str(info.value)
    assert message in text
    assert str(path) in text
    assert "\n" not in text


def _bytes(path: Path, payload: bytes) -> Path:
    path.write_bytes(payload)
    return path


def _truncated(path: Path) -> Path:
    data, affine = canonical_volume(shape=(20, 20, 20))
    write(path, data, affine)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def _with_inf(path: Path) -> Path:
    data, affine = canonical_volume()
    data[1, 2, 3] = np.inf
    return write(path, data, affine)


def _patched_header(path: Path, edit) -> Path:
    """Write a valid image, then change its header bytes with ``edit(header)``."""
    data, _ = canonical_volume(shape=(4, 4, 4))
    img = nib.Nifti1Image(data, np.eye(4))
    img.set_qform(None, code=0)
    img.set_sform(None, code=0)
    nib.save(img, str(path))
    raw = bytearray(path.read_bytes())
    header = nib.Nifti1Header.from_fileobj(__import__("io").BytesIO(bytes(raw[:348])))
    edit(header)
    raw[:348] = header.binaryblock
    path.write_bytes(bytes(raw))
    return path


def _zero_voxel(path: Path) -> Path:
    return _patched_header(path, lambda h: h["pixdim"].__setitem__(2, 0.0))


def _negative_voxel(path: Path) -> Path:
    return _patched_header(path, lambda h: h["pixdim"].__setitem__(3, -1.0))


def _huge_header(path: Path) -> Path:
    return _patched_header(path, lambda h: h.set_data_shape((5000, 5000, 5000)))


def test_huge_header_is_refused_before_reading(tmp_path):
    path = _huge_header(tmp_path / "huge.nii")
    with pytest.raises(InputError, match=str(MAX_VOXELS)):
        load_image(path)


def test_mask_must_match_the_image_grid(tmp_path):
    data, affine = canonical_volume()
    image = load_image(write(tmp_path / "img.nii.gz", data, affine))
    wrong_shape = write(tmp_path / "m1.nii.gz", np.zeros((7, 9, 10)), affine, dtype=np.uint8)
    with pytest.raises(InputError, match="not on the image grid"):
        load_mask(wrong_shape, image.grid)
    shifted = affine.copy()
    shifted[0, 3] += 2.0
    wrong_affine = write(tmp_path / "m2.nii.gz", np.zeros(data.shape), shifted, dtype=np.uint8)
    with pytest.raises(InputError, match="affines differ"):
        load_mask(wrong_affine, image.grid)


def test_soft_and_label_masks_are_binarized_with_a_warning(tmp_path):
    data, affine = canonical_volume()
    image = load_image(write(tmp_path / "img.nii.gz", data, affine))
    soft = np.zeros(data.shape, np.float32)
    soft[2, 3, 4], soft[2, 3, 5] = 0.7, 0.3
    mask, warnings = load_mask(write(tmp_path / "soft.nii.gz", soft, affine), image.grid)
    assert mask.sum() == 1 and mask[2, 3, 4]
    assert "binarized at 0.5" in warnings[0]
    labels = np.zeros(data.shape, np.uint8)
    labels[1, 1, 1], labels[3, 3, 3] = 2, 5
    mask, warnings = load_mask(write(tmp_path / "lab.nii.gz", labels, affine, dtype=np.uint8), image.grid)
    assert mask.sum() == 2
    assert "labels" in warnings[0]
    binary = (data > 500).astype(np.uint8)
    mask, warnings = load_mask(write(tmp_path / "bin.nii.gz", binary, affine, dtype=np.uint8), image.grid)
    np.testing.assert_array_equal(mask, binary.astype(bool))
    assert warnings == []


def _mask_as_float32_reading(path: Path) -> tuple[np.ndarray, bool, list[float]]:
    """What the mask reading did before it kept the stored type: the voxels as float32, the
    binarization rule and the sorted values (the oracle of the next test)."""
    data = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
    values = np.unique(data)
    if np.isin(values, (0.0, 1.0)).all():
        return data > 0.5, False, values.tolist()
    return (data >= 0.5) if data.max() <= 1.0 else (data > 0), True, values.tolist()


@pytest.mark.parametrize("stored", ["uint8", "int16", "int32", "float32", "float64", "scaled_int16"])
def test_masks_read_in_their_stored_type_give_the_float32_result(tmp_path, stored):
    data, affine = canonical_volume()
    image = load_image(write(tmp_path / "img.nii.gz", data, affine))
    rng = np.random.default_rng(3)
    binary = (rng.uniform(size=data.shape) > 0.7).astype(np.float64)
    labels = rng.integers(0, 9, size=data.shape).astype(np.float64)
    soft = np.round(rng.uniform(size=data.shape), 2) * (rng.uniform(size=data.shape) > 0.5)
    cases = {"binary": binary, "labels": labels, "empty": np.zeros(data.shape)}
    if stored.startswith("float") or stored == "scaled_int16":
        cases["soft"] = soft
    for name, values in cases.items():
        path = tmp_path / f"{name}.nii.gz"
        if stored == "scaled_int16":  # stored as int16 with scl_slope 0.01: nibabel returns floats
            img = nib.Nifti1Image(np.round(values * 100).astype(np.int16), affine)
            img.header.set_slope_inter(0.01, 0)
            img.set_qform(affine, code=1)
            img.set_sform(affine, code=1)
            nib.save(img, str(path))
        else:
            write(path, values, affine, dtype=np.dtype(stored))
        mask, warnings = load_mask(path, image.grid)
        expected, warned, sorted_values = _mask_as_float32_reading(path)
        assert mask.dtype == bool and mask.flags.c_contiguous
        np.testing.assert_array_equal(mask, expected, err_msg=f"{stored} {name}")
        assert bool(warnings) == warned, (stored, name, warnings)
        if warned and "labels" in warnings[0]:
            listed = sorted_values[:6]
            assert f"labels {listed}{'...' if len(sorted_values) > 6 else ''};" in warnings[0]


def test_save_into_missing_folder_fails_cleanly(tmp_path):
    data, affine = canonical_volume()
    image = load_image(write(tmp_path / "img.nii.gz", data, affine))
    with pytest.raises(ProcessingError, match="does not exist"):
        save_like(image.data > 0, image.grid, tmp_path / "absent" / "out.nii.gz")


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    data, affine = canonical_volume()
    image = load_image(write(tmp_path / "img.nii.gz", data, affine))
    before = sorted(p.name for p in tmp_path.iterdir())

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nib, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_like(image.data > 0, image.grid, tmp_path / "out.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_orientation_names_follow_sct_convention():
    assert sct_orientation(("R", "A", "S")) == "LPI"
    assert sct_orientation(("P", "I", "R")) == "ASL"
    assert nibabel_axcodes("RPI") == ("L", "A", "S")
    with pytest.raises(ValueError):
        nibabel_axcodes("RRI")


def test_gzip_of_garbage_is_refused(tmp_path):
    path = tmp_path / "garbage.nii.gz"
    path.write_bytes(gzip.compress(b"\x00" * 100))
    with pytest.raises(InputError, match="not a readable NIfTI"):
        load_image(path)
