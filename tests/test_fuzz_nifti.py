"""Hypothesis-driven NIfTI files through the loader and both commands' ``main`` (issue 8).

The files are written byte by byte (header fields set without nibabel's checks: any ``dim``,
``datatype``, ``bitpix``, ``pixdim``, ``vox_offset``, scaling, qform/sform, magic), compressed
or not, sometimes truncated or with flipped bytes. Properties:

- ``load_image`` / ``load_mask`` either return a finite float32 3D image (a bool mask) within
  the size limit, or raise ``InputError``: never another exception;
- ``main`` of either command returns 0, 1 or 2 with no "unexpected failure" and no traceback;
- every example finishes within a generous alarm (no hang), and a header that claims more than
  the size limit is refused before any voxel is read.

The runs are derandomized (the same examples in CI) with modest ``max_examples``; set
``SCT_LESION_FUZZ_EXAMPLES`` for a longer random hunt.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import signal
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reliability_data import SHAPE, custom_args, synthetic_subject, write_packages, write_subject
from sct_lesion_classify.cli import classify_lesion, deepseg_imlesion
from sct_lesion_classify.errors import InputError
from sct_lesion_classify.io.image import MAX_VOXELS, load_image, load_mask

#: ``SCT_LESION_FUZZ_EXAMPLES=2000`` runs a longer, random (not derandomized) hunt locally.
_HUNT = int(os.environ.get("SCT_LESION_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_HUNT or 100, deadline=None, derandomize=not _HUNT, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
FUZZ_COMMANDS = settings(FUZZ, max_examples=_HUNT // 5 or 20)

ALARM_S = 60  # far above any example's run time: only a hang reaches it

# NIfTI datatype codes: the usual real types, and the unusual ones (complex, RGB, float128, bool)
REAL_DTYPES = {2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 64: np.float64, 256: np.int8,
               512: np.uint16, 768: np.uint32, 1024: np.int64, 1280: np.uint64}
ODD_CODES = [0, 1, 32, 128, 1536, 1792, 2048, 2304, 7, -4, 32767]


@contextlib.contextmanager
def alarm(seconds: int = ALARM_S):
    """Fail (instead of hanging the suite) when the body runs longer than ``seconds``."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"no result after {seconds} s: a hang")
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------------ strategies

floats_any = st.floats(allow_nan=True, allow_infinity=True, width=32)
floats_sane = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=32)
plausible_zooms = st.sampled_from([0.3, 0.5, 0.8, 1.0, 2.5, 3.0, 4.0])
odd_zooms = st.one_of(st.sampled_from([0.0, -0.8, 1e-6, 20.0, 800.0, 1e30, np.nan, np.inf]), floats_any)
#: what an example breaks (weighted: half of the examples are plausible images)
FAULTS = ["none"] * 6 + ["affine", "pixdim", "header", "damage", "scaling", "shape", "values"]


@st.composite
def nifti_files(draw, *, shape=None, affine=None):
    with np.errstate(all="ignore"):  # NaN/Inf casts and products are the point here
        return _nifti_file(draw, shape, affine)


def _nifti_file(draw, shape, affine):
    """(bytes, suffix) of a NIfTI-1 or NIfTI-2 file built without nibabel's checks.

    Half of the examples are plausible images (3D, a real dtype, a diagonal or permuted affine
    with sane voxel sizes, consistent pixdim); the others break one thing: the affine, pixdim,
    a header field, the bytes, the scaling, the shape or the values.
    """
    fault = draw(st.sampled_from(FAULTS))
    nifti2 = draw(st.integers(0, 4)) == 0
    header = (nib.Nifti2Header if nifti2 else nib.Nifti1Header)()
    if shape is None:
        if fault == "shape":
            ndim = draw(st.sampled_from([1, 2, 4, 5, 3]))
            shape = tuple(draw(st.lists(st.integers(0, 9), min_size=ndim, max_size=ndim)))
        else:
            shape = tuple(draw(st.lists(st.integers(2, 12), min_size=3, max_size=3)))
    code = draw(st.sampled_from(sorted(REAL_DTYPES)))
    dtype = np.dtype(REAL_DTYPES[code])
    header.set_data_dtype(dtype)
    header.set_data_shape(shape)
    count = int(np.prod(shape))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if fault == "values":
        kind = draw(st.sampled_from(["constant", "special", "huge"]))
        if kind == "constant":
            data = np.full(count, draw(floats_sane))
        elif kind == "huge":
            data = rng.normal(0, 1e38, count)
        else:
            values = np.asarray(draw(st.lists(floats_any, min_size=1, max_size=16)), np.float64)
            data = rng.permutation(np.resize(values, count))
    else:
        data = rng.normal(100, 30, count)
        if count:
            data.flat[rng.integers(0, count)] += 1000  # something bright
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        data = np.nan_to_num(data, nan=0, posinf=info.max, neginf=info.min)
        data = np.clip(np.rint(data), float(info.min), float(info.max))
    array = data.astype(dtype).reshape(shape, order="F")

    if affine is None:
        zooms = [draw(plausible_zooms) for _ in range(3)]
        if fault == "affine":
            zooms = [draw(st.one_of(plausible_zooms, odd_zooms)) for _ in range(3)]
        rotation = np.eye(3)[list(draw(st.permutations([0, 1, 2])))]
        rotation = rotation * np.asarray(draw(st.lists(st.sampled_from([1, -1]), min_size=3, max_size=3)))
        affine = np.eye(4)
        affine[:3, :3] = rotation @ np.diag(zooms)
        if fault == "affine" and draw(st.booleans()):
            affine[:3, :3] = np.asarray(draw(st.lists(floats_any, min_size=9, max_size=9))).reshape(3, 3)
        affine[:3, 3] = [draw(floats_sane) for _ in range(3)]
    else:
        zooms = list(np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    header["pixdim"][1:4] = zooms
    if fault == "pixdim":
        header["pixdim"][1:4] = [draw(st.one_of(st.just(z), odd_zooms)) for z in zooms]
    header["sform_code"] = 1
    header["srow_x"], header["srow_y"], header["srow_z"] = affine[0], affine[1], affine[2]
    header["qform_code"] = 0
    if fault == "affine":
        header["sform_code"] = draw(st.sampled_from([0, 1, 2, 4, 9]))
        header["qform_code"] = draw(st.sampled_from([0, 1, 3]))
        header["quatern_b"], header["quatern_c"], header["quatern_d"] = (
            draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, np.nan])) for _ in range(3))
    if fault == "scaling":
        header["scl_slope"] = draw(st.one_of(st.sampled_from([0.0, 1.0, -1.0, 1e30, np.nan, np.inf]),
                                             floats_any))
        header["scl_inter"] = draw(st.one_of(st.sampled_from([0.0, 10.0, np.nan, -np.inf]), floats_any))
    offset = 544 if nifti2 else 352  # the data follow the header and the 4 extension bytes
    header["vox_offset"] = offset
    if fault == "header":
        field = draw(st.sampled_from(["dim", "datatype", "bitpix", "vox_offset", "magic", "sizeof_hdr"]))
        if field == "dim":
            header["dim"] = draw(st.lists(st.integers(-3, 2**15 - 1), min_size=8, max_size=8))
        elif field == "datatype":
            header["datatype"] = draw(st.sampled_from(ODD_CODES + sorted(REAL_DTYPES)))
        elif field == "bitpix":
            header["bitpix"] = draw(st.sampled_from([0, 1, 7, 64, 128, -8]))
        elif field == "vox_offset":
            header["vox_offset"] = draw(st.sampled_from([0, 100, 1e9, -352] + ([] if nifti2 else [353.5, np.nan])))
        elif field == "magic":
            header["magic"] = draw(st.sampled_from([b"ni1", b"xyz", b""]))
        else:
            header["sizeof_hdr"] = draw(st.sampled_from([0, 347, 540, 12345]))
    payload = bytearray(header.binaryblock)
    payload += b"\0" * max(0, offset - len(payload))
    payload = payload[:offset] + array.tobytes(order="F")
    if fault == "damage":
        how = draw(st.sampled_from(["truncate", "flip", "append"]))
        if how == "truncate":
            payload = payload[: draw(st.integers(0, len(payload)))]
        elif how == "flip":
            for _ in range(draw(st.integers(1, 8))):
                position = draw(st.integers(0, max(0, len(payload) - 1)))
                if payload:
                    payload[position] ^= draw(st.integers(1, 255))
        else:
            payload += bytes(draw(st.integers(1, 64)))
    compressed = draw(st.booleans())
    data = gzip.compress(bytes(payload), compresslevel=1) if compressed else bytes(payload)
    if compressed and fault == "damage" and draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return data, (".nii.gz" if compressed else ".nii")


def _write(folder: Path, name: str, content: tuple[bytes, str]) -> Path:
    payload, suffix = content
    path = folder / f"{name}{suffix}"
    path.write_bytes(payload)
    return path


def _check_image(image) -> None:
    assert image.data.dtype == np.float32 and image.data.ndim == 3
    assert np.isfinite(image.data).all()
    assert image.data.size <= MAX_VOXELS
    assert all(np.isfinite(image.zooms)) and min(image.zooms) > 0
    assert np.isfinite(image.affine).all()


# ------------------------------------------------------------------------------------ loader

@FUZZ
@given(content=nifti_files())
def test_load_image_returns_a_valid_image_or_raises_input_error(tmp_path_factory, content):
    path = _write(tmp_path_factory.mktemp("fuzz"), "image", content)
    with alarm():
        try:
            image = load_image(path, what="T2w image")
        except InputError as exc:
            message = str(exc)
            assert str(path) in message and "\n" not in message
            event(f"refused: {message.split(': ', 1)[1][:30]}")
            return
    event("loaded")
    _check_image(image)


@FUZZ
@given(content=nifti_files(shape=SHAPE, affine=synthetic_subject()[3]))
def test_load_mask_returns_a_bool_mask_or_raises_input_error(tmp_path_factory, content):
    folder = tmp_path_factory.mktemp("fuzz")
    reference = load_image(write_subject(folder)["t2w"]).grid
    path = _write(folder, "mask", content)
    with alarm():
        try:
            mask, warnings = load_mask(path, reference, what="lesion mask")
        except InputError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
            return
    assert mask.dtype == bool and mask.shape == reference.canonical_shape
    assert all(isinstance(w, str) and "\n" not in w for w in warnings)


# ------------------------------------------------------------------------------------ commands

@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    return write_packages(tmp_path_factory.mktemp("models"))


def _run(command, argv, capsys, qc: Path) -> None:
    with alarm():
        code = command(argv + ["-v", "0", "-qc", str(qc)])
    out, err = capsys.readouterr()
    assert code in (0, 1, 2)
    event(f"{command.__module__.rsplit('.', 1)[-1]} exit {code}"
          + (f": {err.strip().splitlines()[-1].split(': ', 3)[-1][:30]}" if code == 1 else ""))
    assert "unexpected failure" not in err, err
    assert "Traceback" not in out + err
    if code:
        assert err.strip().splitlines()[-1].count(": error: ") == 1


@FUZZ_COMMANDS
@given(content=nifti_files())
def test_both_commands_survive_any_image(tmp_path_factory, packages, capsys, content):
    folder = tmp_path_factory.mktemp("fuzz")
    path = _write(folder, "image", content)
    _run(deepseg_imlesion.main, ["-i", str(path), "-no-crop"] + custom_args(packages["lesion"]), capsys,
         folder / "qc")
    _run(classify_lesion.main, ["-i", str(path), "-no-crop"]
         + custom_args(packages["lesion"], *packages["classifiers"]), capsys, folder / "qc")


@FUZZ_COMMANDS
@given(content=nifti_files(shape=SHAPE, affine=synthetic_subject()[3]))
def test_both_commands_survive_any_mask(tmp_path_factory, packages, capsys, content):
    folder = tmp_path_factory.mktemp("fuzz")
    subject = write_subject(folder)
    path = _write(folder, "mask", content)
    _run(deepseg_imlesion.main, ["-i", str(subject["t2w"]), "-s", str(path)]
         + custom_args(packages["lesion"]), capsys, folder / "qc")
    _run(classify_lesion.main, ["-i", str(subject["t2w"]), "-lesion", str(path), "-s", str(subject["cord"])]
         + custom_args(*packages["classifiers"]), capsys, folder / "qc")


# ------------------------------------------------------------------------------------ size limit

def _claiming(path: Path, shape, dtype=np.float64) -> Path:
    """A header claiming ``shape`` of ``dtype``, followed by 1 kB of data."""
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    header.set_data_shape(shape)
    header["vox_offset"] = 352
    payload = header.binaryblock + b"\0" * 4 + b"\1" * 1024
    path.write_bytes(gzip.compress(payload) if path.name.endswith(".gz") else payload)
    return path


def _refusal_and_peak(path: Path, match: str | None = None) -> tuple[str, int]:
    """The InputError message of ``load_image(path)`` and the peak bytes allocated while refusing."""
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=match) as info:
            load_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(info.value), peak


@pytest.mark.parametrize("name", ["claim.nii", "claim.nii.gz"])
@pytest.mark.parametrize("shape", [(4096, 4096, 4096), (2**13, 2**13, 2), (8, 8, 8, 8, 8, 8, 8)],
                         ids=["huge", "over-limit", "7d"])
def test_claims_beyond_the_limit_are_refused_before_reading(tmp_path, name, shape):
    path = _claiming(tmp_path / name, shape)
    message, peak = _refusal_and_peak(path)
    assert str(path) in message
    assert peak < 8 << 20, f"{peak} bytes allocated to refuse {path.name}"


@pytest.mark.parametrize("name", ["claim.nii", "claim.nii.gz"])
def test_claim_within_the_limit_with_little_data_allocates_nothing_big(tmp_path, name):
    """A header within the voxel limit (512 MiB of float64) but 1 kB of data: refused cheaply."""
    path = _claiming(tmp_path / name, (4096, 4096, 4))
    assert int(np.prod((4096, 4096, 4))) == MAX_VOXELS
    message, peak = _refusal_and_peak(path, match="data")
    assert str(path) in message
    assert peak < 64 << 20, f"{peak} bytes allocated to refuse {path.name}"


def test_model_grid_beyond_the_limit_is_refused_before_allocating():
    """An absurd voxel size (800 mm for 0.8 mm) would make a terabyte stack of model slices."""
    from sct_lesion_classify.io.resample import MAX_MODEL_GRID_VOXELS, ModelGridTooLarge, SliceResampler

    resampler = SliceResampler.to_spacing((40, 56), (800.0, 800.0), (0.5, 0.5), divisible_by=8)
    slices = np.zeros((7, 40, 56), np.float32)
    tracemalloc.start()
    try:
        with pytest.raises(ModelGridTooLarge, match=f"over the limit of {MAX_MODEL_GRID_VOXELS}"):
            resampler.forward(slices)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    # a plausible stack passes
    assert SliceResampler.to_spacing((40, 56), (0.8, 0.8), (0.5, 0.5)).forward(slices).shape == (7, 64, 90)
