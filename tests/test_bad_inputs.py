"""The bad-input corpus of issue 8, run through BOTH commands' ``main([...])`` in process.

Every case asserts the documented exit code (2: usage error or unusable input; 1: failure at run
time), one line on stderr, ``<command>: error: <path>: <problem>`` naming the file (or the flag)
and the problem, no traceback, nothing new under the test folder (outputs, sidecars, QC folder,
temporary files) and the inputs byte for byte unchanged. With ``-v 2`` the same failures add
the traceback.

Cases that are handled rather than refused (README, "Bad inputs, limits and interrupted runs"):

- an oblique or sheared affine: accepted; the image is reoriented to the closest canonical axes
  without resampling and the outputs keep the input's exact affine;
- a mask with soft values in [0, 1]: binarized at 0.5, with a warning;
- a mask with labels 0..5: every label > 0 is mask, with a warning;
- an empty lesion mask given to ``sct_classify_lesion``: exit 0, ``diagnosis`` null (SPEC 3).
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest

from reliability_data import custom_args, save, snapshot, synthetic_subject, write_packages, write_subject
from sct_lesion_classify.cli import classify_lesion, deepseg_imlesion
from sct_lesion_classify.io.image import MAX_VOXELS

COMMANDS = {"sct_deepseg_imlesion": deepseg_imlesion.main, "sct_classify_lesion": classify_lesion.main}


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    return write_packages(tmp_path_factory.mktemp("models"))


# ------------------------------------------------------------------------------------ builders
# Each builder gets the case folder (which holds the good subject) and returns the bad path.

def _image(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    data, _, _, affine = synthetic_subject()
    return data, affine


def missing(folder: Path) -> Path:
    return folder / "absent.nii.gz"


def directory(folder: Path) -> Path:
    (folder / "folder.nii.gz").mkdir()
    return folder / "folder.nii.gz"


def raw_bytes(name: str, payload: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        (folder / name).write_bytes(payload)
        return folder / name
    return build


def truncated(name: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        data, affine = _image(folder)
        path = save(folder / name, data, affine)
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
        return path
    return build


def array_image(name: str, make_array: Callable[[np.ndarray], np.ndarray], dtype=np.float32,
                make_affine: Callable[[np.ndarray], np.ndarray] = lambda a: a) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        data, affine = _image(folder)
        return save(folder / name, make_array(data.copy()), make_affine(affine.copy()), dtype)
    return build


def patched_header(name: str, edit: Callable[[nib.Nifti1Header], None]) -> Callable[[Path], Path]:
    """A valid uncompressed image whose 348-byte header is then edited without nibabel's checks."""
    def build(folder: Path) -> Path:
        data, affine = _image(folder)
        path = save(folder / name, data, affine)
        raw = bytearray(path.read_bytes())
        header = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(raw[:348])), check=False)
        edit(header)
        raw[:348] = header.binaryblock
        path.write_bytes(bytes(raw))
        return path
    return build


def _with_inf(data: np.ndarray) -> np.ndarray:
    data[1, 2, 3] = np.inf
    data[2, 3, 4] = -np.inf
    return data


def _oblique(affine: np.ndarray) -> np.ndarray:
    theta = np.deg2rad(15)
    rotation = np.array([[1, 0, 0], [0, np.cos(theta), -np.sin(theta)], [0, np.sin(theta), np.cos(theta)]])
    affine[:3, :3] = rotation @ affine[:3, :3]
    return affine


def _sheared(affine: np.ndarray) -> np.ndarray:
    affine[1, 2] = 0.3  # anterior-posterior position depends on the superior-inferior index
    return affine


def _mask_like(name: str, make_array: Callable[[np.ndarray], np.ndarray], dtype=np.float32,
               make_affine: Callable[[np.ndarray], np.ndarray] = lambda a: a) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        _, cord, lesion, affine = synthetic_subject()
        # lesion inside cord: one array works as cord mask (-s) and as lesion mask (-lesion)
        return save(folder / name, make_array(cord | lesion), make_affine(affine.copy()), dtype)
    return build


def _labels(mask: np.ndarray) -> np.ndarray:
    labels = mask.astype(np.uint8)
    labels[mask] = 1 + (np.arange(int(mask.sum())) % 5)
    return labels


def _soft(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, 0.8, 0.1).astype(np.float32)


def _coarse(affine: np.ndarray) -> np.ndarray:
    affine[1, 1] = affine[2, 2] = 800.0  # micrometres written as millimetres
    return affine


def _shifted(affine: np.ndarray) -> np.ndarray:
    affine[0, 3] += 3.0
    return affine


def other_geometry(name: str, make_affine) -> Callable[[Path], Path]:
    """An image with another affine; the subject's masks are rewritten on that grid too."""
    def build(folder: Path) -> Path:
        data, cord, lesion, affine = synthetic_subject()
        affine = make_affine(affine.copy())
        save(folder / "sub-01_cord.nii.gz", cord, affine, np.uint8)
        save(folder / "sub-01_lesion.nii.gz", lesion, affine, np.uint8)
        return save(folder / name, data, affine)
    return build


def under_a_file(folder: Path) -> Path:
    (folder / "plain_file").write_text("x")
    return folder / "plain_file" / "out"


def invalid_qc_index(folder: Path) -> Path:
    (folder / "qc_old").mkdir()
    (folder / "qc_old" / "index.json").write_text("{not json")
    return folder / "qc_old"


def read_only_folder(folder: Path) -> Path:
    (folder / "read_only").mkdir()
    (folder / "read_only").chmod(0o555)
    return folder / "read_only" / "out"


# ------------------------------------------------------------------------------------ the corpus

@dataclass(frozen=True)
class Case:
    """One bad input.

    ``slot``: where it goes. ``image`` replaces ``-i``; ``mask`` replaces ``-s`` for
    sct_deepseg_imlesion and ``-lesion`` for sct_classify_lesion; ``cord`` replaces ``-s`` for
    both; ``output`` is given as ``-o`` (``{ext}`` becomes .nii.gz or .json); ``argv`` appends
    arguments. ``code``: the exit code, or one per command. ``message``: a substring of the
    error line (``{path}`` is the bad path); for handled cases (code 0), of the warning.
    """

    id: str
    slot: str
    build: Callable[[Path], Path] | list[str]
    code: int | dict[str, int]
    message: str | dict[str, str]
    root_ok: bool = True
    names_path: bool = True

    def code_for(self, command: str) -> int:
        return self.code[command] if isinstance(self.code, dict) else self.code

    def message_for(self, command: str) -> str:
        return self.message[command] if isinstance(self.message, dict) else self.message


HUGE = (4096, 4096, 4096)
CASES = [
    # -- the image (-i)
    Case("missing", "image", missing, 2, "{path}: T2w image not found"),
    Case("directory", "image", directory, 2, "{path}: T2w image is a directory, not a NIfTI file"),
    Case("not-nifti-bytes", "image", raw_bytes("text.nii.gz", b"this is not an image\n" * 20), 2,
         "{path}: T2w image is not a readable NIfTI file"),
    Case("gzip-of-garbage", "image", raw_bytes("garbage.nii.gz", gzip.compress(b"\x07" * 400)), 2,
         "{path}: T2w image is not a readable NIfTI file"),
    Case("empty-file", "image", raw_bytes("empty.nii", b""), 2, "{path}: T2w image is not a readable NIfTI file"),
    Case("not-nifti-extension", "image", raw_bytes("image.png", b"\x89PNG"), 2,
         "{path}: T2w image must be a NIfTI file (.nii or .nii.gz)"),
    Case("truncated-nii-gz", "image", truncated("trunc.nii.gz"), 2, "{path}: T2w image data cannot be read"),
    Case("truncated-nii", "image", truncated("trunc.nii"), 2, "{path}: T2w image data cannot be read"),
    Case("huge-header", "image", patched_header("huge.nii", lambda h: h.set_data_shape(HUGE)), 2,
         f"{{path}}: T2w image has {int(np.prod(HUGE))} voxels (shape {HUGE}), over the limit of {MAX_VOXELS}"),
    Case("2d", "image", array_image("flat.nii.gz", lambda d: d[:, :, :1]), 2,
         "{path}: T2w image is 2D (shape (7, 40, 1)); a 3D volume is needed"),
    Case("4d", "image", array_image("vol4d.nii.gz", lambda d: np.stack([d, d], axis=-1)), 2,
         "{path}: T2w image is 4D (shape (7, 40, 56, 2)); a 3D volume is needed"),
    Case("all-nan", "image", array_image("nan.nii.gz", lambda d: np.full_like(d, np.nan)), 2,
         "{path}: T2w image contains 15680 NaN/Inf voxel(s) of 15680"),
    Case("some-inf", "image", array_image("inf.nii.gz", _with_inf), 2,
         "{path}: T2w image contains 2 NaN/Inf voxel(s) of 15680"),
    Case("all-zero", "image", array_image("zero.nii.gz", np.zeros_like), 2,
         "{path}: T2w image is empty (every voxel is 0)"),
    Case("zero-voxel-size", "image", patched_header("zerovox.nii", lambda h: h["pixdim"].__setitem__(2, 0.0)),
         2, "{path}: T2w image has an invalid voxel size (3.0, 0.0, 0.800000011920929)"),
    Case("negative-voxel-size", "image",
         patched_header("negvox.nii", lambda h: h["pixdim"].__setitem__(3, -0.8)), 2,
         "{path}: T2w image has an invalid voxel size"),
    Case("complex-data", "image", array_image("complex.nii.gz", lambda d: d, np.complex64), 2,
         "{path}: T2w image has data type complex64 ('c'); real-valued integers or floats of at most "
         "64 bits are needed"),
    Case("unknown-datatype-code", "image", patched_header("code0.nii", lambda h: h.__setitem__("datatype", 0)), 2,
         "{path}: T2w image is not a readable NIfTI file (data code 0 not supported)"),
    Case("invalid-qform", "image",
         patched_header("qform.nii", lambda h: [h.__setitem__(k, 2.0) for k in ("quatern_b", "quatern_c")]), 2,
         "{path}: T2w image has an invalid qform"),
    Case("singular-affine", "image",
         patched_header("singular.nii", lambda h: h["srow_z"].__setitem__(slice(0, 3), 0.0)), 2,
         "{path}: T2w image has an invalid (singular or non-finite) affine"),
    Case("nan-affine", "image",
         patched_header("nanaffine.nii", lambda h: h["srow_x"].__setitem__(3, np.nan)), 2,
         "{path}: T2w image has an invalid (singular or non-finite) affine"),
    # -- masks (-s of sct_deepseg_imlesion, -lesion of sct_classify_lesion)
    Case("mask-missing", "mask", missing, 2,
         {"sct_deepseg_imlesion": "{path}: cord mask not found",
          "sct_classify_lesion": "{path}: lesion mask not found"}),
    Case("mask-not-nifti", "mask", raw_bytes("mask.nii.gz", b"\x00" * 64), 2,
         {"sct_deepseg_imlesion": "{path}: cord mask is not a readable NIfTI file",
          "sct_classify_lesion": "{path}: lesion mask is not a readable NIfTI file"}),
    Case("mask-other-shape", "mask", _mask_like("small.nii.gz", lambda m: m[:, :, :50], np.uint8), 2,
         {"sct_deepseg_imlesion": "{path}: cord mask is not on the image grid (shape (7, 40, 50) vs (7, 40, 56))",
          "sct_classify_lesion": "{path}: lesion mask is not on the image grid (shape (7, 40, 50) vs (7, 40, 56))"}),
    Case("mask-other-affine", "mask", _mask_like("shifted.nii.gz", lambda m: m, np.uint8, _shifted), 2,
         {"sct_deepseg_imlesion": "{path}: cord mask is not on the image grid (shape (7, 40, 56) vs (7, 40, 56), "
                                  "affines differ)",
          "sct_classify_lesion": "{path}: lesion mask is not on the image grid (shape (7, 40, 56) vs (7, 40, 56), "
                                 "affines differ)"}),
    Case("mask-4d", "mask", _mask_like("mask4d.nii.gz", lambda m: np.stack([m, m], -1), np.uint8), 2,
         {"sct_deepseg_imlesion": "{path}: cord mask is 4D (shape (7, 40, 56, 2)); a 3D volume is needed",
          "sct_classify_lesion": "{path}: lesion mask is 4D (shape (7, 40, 56, 2)); a 3D volume is needed"}),
    Case("mask-nan", "mask", _mask_like("masknan.nii.gz", lambda m: np.where(m, np.nan, 0.0)), 2,
         {"sct_deepseg_imlesion": "{path}: cord mask contains NaN/Inf values",
          "sct_classify_lesion": "{path}: lesion mask contains NaN/Inf values"}),
    Case("mask-negative", "mask", _mask_like("maskneg.nii.gz", lambda m: np.where(m, -1.0, 0.0)), 2,
         {"sct_deepseg_imlesion": "{path}: cord mask has negative values (min -1)",
          "sct_classify_lesion": "{path}: lesion mask has negative values (min -1)"}),
    Case("mask-empty", "mask", _mask_like("maskzero.nii.gz", np.zeros_like, np.uint8),
         {"sct_deepseg_imlesion": 2, "sct_classify_lesion": 0},
         {"sct_deepseg_imlesion": "{path}: cord mask is empty (no voxel > 0)",
          "sct_classify_lesion": "the lesion mask is empty ({path}): no diagnosis"}),
    Case("mask-labels-0-5", "mask", _mask_like("labels.nii.gz", _labels, np.uint8), 0,
         {"sct_deepseg_imlesion": "cord mask {path} has labels [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]; "
                                  "every label > 0 taken as mask",
          "sct_classify_lesion": "lesion mask {path} has labels [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]; "
                                 "every label > 0 taken as mask"}),
    Case("mask-soft", "mask", _mask_like("soft.nii.gz", _soft), 0,
         {"sct_deepseg_imlesion": "cord mask {path} has soft values; binarized at 0.5",
          "sct_classify_lesion": "lesion mask {path} has soft values; binarized at 0.5"}),
    Case("cord-other-shape", "cord", _mask_like("cordsmall.nii.gz", lambda m: m[:, :, :50], np.uint8), 2,
         "{path}: cord mask is not on the image grid (shape (7, 40, 50) vs (7, 40, 56))"),
    Case("t1c-truncated", "t1c", truncated("t1c.nii.gz"), 2,
         {"sct_deepseg_imlesion": None, "sct_classify_lesion": "{path}: cT1w image data cannot be read"}),
    Case("t1c-other-shape", "t1c", array_image("t1c_small.nii.gz", lambda d: d[:, :, :50]), 2,
         {"sct_deepseg_imlesion": None,
          "sct_classify_lesion": "{path}: cT1w image is not on the grid of the T2w image"}),
    Case("vert-missing", "vert", missing, 2,
         {"sct_deepseg_imlesion": None, "sct_classify_lesion": "{path}: vertebral labels not found"}),
    Case("vert-other-affine", "vert", _mask_like("vert.nii.gz", lambda m: m * 3, np.uint8, _shifted), 2,
         {"sct_deepseg_imlesion": None,
          "sct_classify_lesion": "{path}: vertebral labels are not on the grid of"}),
    # -- handled geometry
    Case("oblique-affine", "image", other_geometry("oblique.nii.gz", _oblique), 0, ""),
    Case("sheared-affine", "image", other_geometry("sheared.nii.gz", _sheared), 0, ""),
    Case("absurd-voxel-size", "image", other_geometry("coarse.nii.gz", _coarse), {"sct_deepseg_imlesion": 2,
                                                                                  "sct_classify_lesion": 0},
         {"sct_deepseg_imlesion": "{path}: T2w image too large for the models: 7 sagittal slices of 15 x 56 "
                                  "pixels of 800 x 800 mm would be 7 x 24000 x 89600 voxels on the model's grid "
                                  "of 0.5 x 0.5 mm, over the limit of 134217728 (check the voxel size in the header)",
          "sct_classify_lesion": "in-plane voxel size 800.00 x 800.00 mm is coarser than the models' training data"}),
    # -- outputs (-o)
    Case("output-equals-input", "output", lambda f: f / "sub-01_T2w.nii.gz", 2,
         {"sct_deepseg_imlesion": "{path}: output mask would overwrite the input {path}",
          "sct_classify_lesion": "{path}: diagnosis JSON would overwrite the input {path}"}),
    Case("output-equals-mask", "output", lambda f: f / "sub-01_cord.nii.gz", 2,
         {"sct_deepseg_imlesion": "{path}: output mask would overwrite the input {path}",
          "sct_classify_lesion": "{path}: diagnosis JSON would overwrite the input {path}"}),
    Case("output-is-a-folder", "output", lambda f: f, 2,
         {"sct_deepseg_imlesion": "{path}: output mask path is a folder",
          "sct_classify_lesion": "{path}: diagnosis JSON path is a folder"}),
    Case("output-under-a-file", "output", under_a_file, 2,
         {"sct_deepseg_imlesion": "{path}: cannot create the output folder",
          "sct_classify_lesion": "{path}: cannot create the output folder"}),
    Case("output-impossible-folder", "output", lambda f: Path("/proc/self/no_such_folder/out"), 2,
         {"sct_deepseg_imlesion": "{path}: cannot create the output folder",
          "sct_classify_lesion": "{path}: cannot create the output folder"}),
    Case("output-unwritable-folder", "output", read_only_folder, 2,
         {"sct_deepseg_imlesion": "{path}: output folder",
          "sct_classify_lesion": "{path}: output folder"}, root_ok=False),
    Case("output-in-proc", "output", lambda f: Path("/proc/self/out"), 2,
         {"sct_deepseg_imlesion": "{path}: output folder /proc/self is not writable",
          "sct_classify_lesion": "{path}: output folder /proc/self is not writable"}),
    Case("output-wrong-extension", "output", lambda f: f / "mask.txt", 2,
         {"sct_deepseg_imlesion": "{path}: output mask must end in .nii.gz or .nii",
          "sct_classify_lesion": None}),
    Case("output-new-folder-bad-image", "output+image", lambda f: f / "new" / "deeper" / "out", 2,
         "text.nii.gz: T2w image is not a readable NIfTI file", names_path=False),
    Case("qc-folder-is-a-file", "qc", lambda f: f / "sub-01_cord.nii.gz", 2,
         "{path}: QC folder is a file, not a folder (-qc)"),
    Case("qc-folder-under-a-file", "qc", lambda f: f / "sub-01_cord.nii.gz" / "qc", 2,
         "{path}: cannot create the QC folder {path}"),
    Case("qc-invalid-index", "qc", invalid_qc_index, 1,
         "{path}/index.json: invalid QC index"),
    # -- command line
    Case("unknown-flag", "argv", ["-bogus", "1"], 2, "unrecognized arguments: -bogus 1", names_path=False),
    Case("thr-not-a-number", "argv", ["-thr", "abc"], 2, "argument -thr: not a number: 'abc'", names_path=False),
    Case("thr-negative", "argv", ["-thr", "-1"], 2, "argument -thr: must be >= 0, got '-1'", names_path=False),
    Case("thr-nan", "argv", ["-thr", "nan"], 2, "argument -thr: not a finite number: 'nan'", names_path=False),
    Case("largest-2", "argv", ["-largest", "2"], 2, "argument -largest: invalid choice: 2", names_path=False),
    Case("remove-small-bad-unit", "argv", ["-remove-small", "5cm3"], 2,
         "argument -remove-small: expected a size like '20mm3', '5vox' or '10 20 10vox', got '5cm3'",
         names_path=False),
    Case("v-5", "argv", ["-v", "5"], 2, "argument -v: invalid choice: 5", names_path=False),
    Case("v-not-int", "argv", ["-v", "x"], 2, "argument -v: invalid int value: 'x'", names_path=False),
]


def _argv(command: str, case: Case, folder: Path, subject: dict[str, Path], packages, qc: Path
          ) -> tuple[list[str], Path | None]:
    """The command line of ``case`` for ``command``, and the bad path it names."""
    image, cord, lesion = subject["t2w"], subject["cord"], subject["lesion"]
    extra: list[str] = []
    bad = None
    if isinstance(case.build, list):
        extra = list(case.build)
    else:
        bad = case.build(folder)
    if case.slot == "image":
        image = bad
    elif case.slot == "mask":
        cord, lesion = (bad, lesion) if command == "sct_deepseg_imlesion" else (cord, bad)
    elif case.slot == "cord":
        cord = bad
    elif case.slot.startswith("output"):
        if bad.suffix == "" and not bad.is_dir():
            bad = bad.with_name(bad.name + (".nii.gz" if command == "sct_deepseg_imlesion" else ".json"))
        extra = ["-o", str(bad)]
        if case.slot == "output+image":
            image = raw_bytes("text.nii.gz", b"not an image")(folder)
    elif case.slot == "qc":
        qc = bad
    elif case.slot in ("t1c", "vert"):
        extra = [f"-i-{case.slot}" if case.slot == "t1c" else "-vert", str(bad)]
    if command == "sct_deepseg_imlesion":
        argv = ["-i", str(image), "-s", str(cord)] + custom_args(packages["lesion"])
    else:
        argv = (["-i", str(image), "-lesion", str(lesion), "-s", str(cord)]
                + custom_args(*packages["classifiers"]))
    return argv + ["-qc", str(qc)] + extra, bad


def _cases_for(command: str):
    for case in CASES:
        if case.message_for(command) is None:
            continue
        yield pytest.param(command, case, id=f"{command}-{case.id}")


@pytest.mark.parametrize("command, case", [p for c in COMMANDS for p in _cases_for(c)])
def test_bad_input(tmp_path, packages, capfd, command, case):
    if not case.root_ok and os.geteuid() == 0:
        pytest.skip("root can write into a read-only folder")
    folder = tmp_path / "data"
    subject = write_subject(folder)
    qc = tmp_path / "qc"
    argv, bad = _argv(command, case, folder, subject, packages, qc)
    before = snapshot(tmp_path)
    code = COMMANDS[command](argv)
    out, err = capfd.readouterr()  # file-descriptor level: also what libraries print themselves
    expected = case.message_for(command).format(path=bad)
    assert code == case.code_for(command), err
    assert "Traceback" not in out + err
    if case.code_for(command) == 0:
        assert expected in err
        _check_handled(command, case, tmp_path, before, bad)
        return
    if case.slot == "argv":  # a usage error: the usage line first, as SCT's commands
        usage, err = err.split("\n", 1)
        assert usage == f"usage: {command} -i <file> [options]"
    assert err.count("\n") == 1, err
    assert err.startswith(f"{command}: error: "), err
    assert expected in err, err
    if case.names_path:
        assert str(bad) in err
    assert snapshot(tmp_path) == before


def _check_handled(command, case, tmp_path, before, bad):
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # inputs unchanged
    new = sorted(set(after) - set(before))
    assert "qc/index.json" in new
    if command == "sct_deepseg_imlesion":
        image = bad if case.slot == "image" else tmp_path / "data" / "sub-01_T2w.nii.gz"
        stem = image.name.replace(".nii.gz", "")
        assert f"data/{stem}_lesion_seg.nii.gz" in new and f"data/{stem}_lesion_seg.json" in new
        mask = nib.load(str(tmp_path / "data" / f"{stem}_lesion_seg.nii.gz"))
        np.testing.assert_array_equal(mask.affine, nib.load(str(image)).affine)
    else:
        image = bad if case.slot == "image" else tmp_path / "data" / "sub-01_T2w.nii.gz"
        stem = image.name.replace(".nii.gz", "")
        assert f"data/{stem}_diagnosis.json" in new
    assert not [name for name in after if Path(name).name.startswith(".") and name != "qc/.qc_index.lock"]


@pytest.mark.parametrize("command", COMMANDS)
def test_traceback_only_with_v_2(tmp_path, packages, capsys, command):
    folder = tmp_path / "data"
    subject = write_subject(folder)
    case = next(c for c in CASES if c.id == "truncated-nii-gz")
    argv, bad = _argv(command, case, folder, subject, packages, tmp_path / "qc")
    assert COMMANDS[command](argv + ["-v", "2"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.rstrip().splitlines()[-1].startswith(f"{command}: error: {bad}: T2w image data cannot be read")


@pytest.mark.parametrize("command", COMMANDS)
def test_tampered_model_is_refused_naming_both_hashes(tmp_path, packages, capsys, command):
    import hashlib

    models = tmp_path / "models"
    shutil.copytree(packages["lesion"], models / "tiny_lesion")
    for folder in packages["classifiers"]:
        shutil.copytree(folder, models / folder.name)
    target = models / ("tiny_lesion" if command == "sct_deepseg_imlesion" else "ms_vs_nmosd")
    onnx_path = target / f"{target.name}.onnx"
    expected = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    onnx_path.write_bytes(onnx_path.read_bytes()[:-10])  # truncated
    actual = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    subject = write_subject(tmp_path / "data")
    if command == "sct_deepseg_imlesion":
        argv = ["-i", str(subject["t2w"]), "-s", str(subject["cord"])] + custom_args(target)
    else:
        argv = (["-i", str(subject["t2w"]), "-lesion", str(subject["lesion"])]
                + custom_args(*(models / f.name for f in packages["classifiers"])))
    before = snapshot(tmp_path)
    assert COMMANDS[command](argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{onnx_path.resolve()}: sha256 mismatch for model package '{target.name}'" in err
    assert f"expected {expected}, actual {actual}" in err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_new_output_folder_is_created_when_the_run_succeeds(tmp_path, packages, command):
    subject = write_subject(tmp_path / "data")
    argv, _ = _argv(command, Case("good", "argv", [], 0, ""), tmp_path / "data", subject, packages,
                    tmp_path / "new_qc" / "qc")
    out = tmp_path / "new" / "deeper" / ("out.nii.gz" if command == "sct_deepseg_imlesion" else "out.json")
    assert COMMANDS[command](argv + ["-o", str(out)]) == 0
    assert out.is_file() and (tmp_path / "new_qc" / "qc" / "index.json").is_file()
