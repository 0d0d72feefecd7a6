"""NIfTI loading and saving with an exact round trip to the native grid.

Every stage of the pipeline works on arrays in one canonical orientation: nibabel's RAS+
("towards" convention; SCT calls the same orientation LPI, "from" convention). Axis 0 runs from
the subject's left to right (the sagittal axis: ``data[i]`` is one sagittal slice), axis 1 from
posterior to anterior, axis 2 from inferior to superior. Reorientation is a permutation and flips
of the voxel axes only (no resampling), so an oblique acquisition keeps its exact affine and a
prediction goes back to the input's grid voxel for voxel (:func:`save_like`).

Images are refused before their data are read when they would not fit the documented size limit
(:data:`MAX_VOXELS`), so a header that claims a huge shape cannot exhaust memory.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import (
    aff2axcodes,
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)

from sct_lesion_classify.errors import InputError, ProcessingError
from sct_lesion_classify.io.atomic import atomic_path

logger = logging.getLogger(__name__)

#: Canonical orientation of every array inside the pipeline (nibabel "towards" axis codes).
CANONICAL_AXCODES = ("R", "A", "S")

#: Largest image accepted, in voxels (2**26 = 67 M voxels, 256 MiB as float32; a 768x768x19
#: clinical sagittal T2w has 11 M). Checked from the header before any data are read.
MAX_VOXELS = 2**26

#: What reading an untrusted NIfTI file may raise (all become ``InputError``).
_UNREADABLE = (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError,
               nib.spatialimages.ImageDataError, OSError, EOFError, ValueError, TypeError,
               OverflowError, IndexError, KeyError, zlib.error, gzip.BadGzipFile)

_OPPOSITE = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}


def sct_orientation(axcodes: tuple[str, ...] | str) -> str:
    """Return SCT's orientation string ("from" convention) for nibabel axis codes.

    nibabel's ``("R", "A", "S")`` (axes pointing towards right, anterior, superior) is SCT's
    ``"LPI"`` (axes coming from left, posterior, inferior).
    """
    return "".join(_OPPOSITE[code] for code in axcodes)


def nibabel_axcodes(sct_orient: str) -> tuple[str, str, str]:
    """Inverse of :func:`sct_orientation`: SCT's ``"RPI"`` gives nibabel's ``("L", "A", "S")``."""
    codes = tuple(_OPPOSITE[c] for c in sct_orient.upper())
    if len(codes) != 3 or len({_axis_of(c) for c in codes}) != 3:
        raise ValueError(f"not an orientation: {sct_orient!r}")
    return codes  # type: ignore[return-value]


def _axis_of(code: str) -> str:
    return {"R": "x", "L": "x", "A": "y", "P": "y", "S": "z", "I": "z"}[code]


@dataclass(frozen=True)
class NativeGrid:
    """Everything needed to put a canonical array back on the input's own grid.

    Attributes
    ----------
    shape
        The input's 3D shape as stored on disk.
    affine
        The input's voxel-to-world affine (its sform, or qform when the sform is unset).
    header
        A copy of the input's NIfTI header (qform/sform and their codes are preserved on save).
    to_canonical
        nibabel orientation transform from the stored axes to the canonical axes.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    header: nib.Nifti1Header = field(repr=False, compare=False)
    to_canonical: np.ndarray = field(repr=False, compare=False)

    @property
    def orientation(self) -> str:
        """Storage orientation in SCT's convention (e.g. ``"RPI"``)."""
        return sct_orientation(aff2axcodes(self.affine))

    @property
    def canonical_shape(self) -> tuple[int, int, int]:
        """Shape of the data once reoriented to the canonical orientation."""
        order = self.to_canonical[:, 0].astype(int)
        result = [0, 0, 0]
        for native_axis, canonical_axis in enumerate(order):
            result[canonical_axis] = self.shape[native_axis]
        return tuple(result)  # type: ignore[return-value]

    def same_space(self, other: "NativeGrid", atol_mm: float = 1e-3) -> bool:
        """Whether ``other`` has the same shape and (within ``atol_mm``) the same affine."""
        return self.shape == other.shape and bool(
            np.allclose(self.affine, other.affine, atol=atol_mm, rtol=0.0)
        )


@dataclass(frozen=True)
class Image:
    """A 3D image in canonical orientation.

    Attributes
    ----------
    path
        Where it was read from.
    data
        float32 voxel values, canonical (RAS+) axes.
    affine
        Voxel-to-world affine of ``data``.
    grid
        The native grid, for writing results back in the input's space.
    """

    path: Path
    data: np.ndarray = field(repr=False)
    affine: np.ndarray = field(repr=False)
    grid: NativeGrid

    @property
    def zooms(self) -> tuple[float, float, float]:
        """Voxel size in mm along the canonical axes (right-left, anterior-posterior, superior-inferior)."""
        return tuple(float(z) for z in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Canonical shape."""
        return self.data.shape  # type: ignore[return-value]


def load_image(path: str | os.PathLike, *, what: str = "image") -> Image:
    """Load a 3D NIfTI image, check it and return it in canonical orientation.

    Parameters
    ----------
    path
        ``.nii`` or ``.nii.gz`` file.
    what
        Short name used in error messages (e.g. ``"T2w image"``).

    Raises
    ------
    InputError
        Missing file, not NIfTI, truncated, not 3D, too large, bad voxel size or affine,
        NaN/Inf values, or an empty (constant) image.
    """
    img = _read_header(path, what)
    data = _read_data(img, path, what)
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        raise InputError(f"{path}: {what} contains {bad} NaN/Inf voxel(s) of {data.size}")
    if float(data.max()) == float(data.min()):
        raise InputError(f"{path}: {what} is empty (every voxel is {float(data.min()):g})")
    return _to_canonical(img, data, path)


def load_mask(
    path: str | os.PathLike, reference: NativeGrid, *, what: str = "mask"
) -> tuple[np.ndarray, list[str]]:
    """Load a binary mask that must lie on ``reference``'s grid; return it canonical, as bool.

    Soft masks (values in [0, 1]) are binarized at 0.5 and label maps (integers > 1) at > 0,
    with a warning in the returned list; an empty mask is returned as it is (the caller decides).

    Raises
    ------
    InputError
        Unreadable file, another shape or affine than the reference, NaN/Inf or negative values.
    """
    img = _read_header(path, what)
    grid_shape = tuple(int(n) for n in img.shape[:3])
    affine = _affine_of(img)
    if grid_shape != reference.shape or not np.allclose(affine, reference.affine, atol=1e-3, rtol=0):
        raise InputError(
            f"{path}: {what} is not on the image grid (shape {grid_shape} vs {reference.shape}"
            + ("" if grid_shape != reference.shape else ", affines differ")
            + ")"
        )
    # Unscaled integers (uint8 for most masks) are read as stored, without a float32 copy;
    # anything else as float32, whose rounding decides what counts as 0, 1 or 0.5.
    data = _read_data(img, path, what, dtype=None if _unscaled_integers(img) else np.float32)
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise InputError(f"{path}: {what} contains NaN/Inf values")
    if data.dtype.kind != "u" and data.min() < 0:
        raise InputError(f"{path}: {what} has negative values (min {float(data.min()):g})")
    warnings: list[str] = []
    # Masks are mostly 0 and 1: only the other values are sorted (np.unique of a whole 512 x 512
    # x 15 volume took 0.08 s per mask).
    zero, one = data == 0, data == 1
    other = ~(zero | one)
    if other.any():
        present = [value for value, where in ((0.0, zero), (1.0, one)) if where.any()]
        values = np.union1d(np.asarray(present, dtype=np.float64), data[other].astype(np.float64))
        if data.max() <= 1.0:
            warnings.append(f"{what} {path} has soft values; binarized at 0.5")
            mask = data >= 0.5
        else:
            warnings.append(
                f"{what} {path} has labels {values[:6].tolist()}{'...' if values.size > 6 else ''};"
                " every label > 0 taken as mask"
            )
            mask = data > 0
    else:
        mask = one
    return _reorient(img, mask), warnings


def save_like(
    canonical: np.ndarray,
    grid: NativeGrid,
    path: str | os.PathLike,
    dtype: np.dtype | type = np.uint8,
) -> None:
    """Write a canonical array on the native grid of ``grid`` (atomically).

    The output has the input's shape, affine and qform/sform codes; only the data type, the
    scaling (reset to none) and the intensity display range change.
    """
    # the reoriented view, not a C-ordered copy: nibabel writes Fortran order, which for the
    # usual storage axes is the canonical array's own memory order (same bytes; a 512x512x15
    # mask's write 0.07 -> 0.01 s)
    native = to_native(canonical, grid).astype(dtype, copy=False)
    header = grid.header.copy()
    header.set_data_dtype(dtype)
    header.set_data_shape(native.shape)
    header["cal_min"] = 0
    header["cal_max"] = 0
    header["intent_code"] = 0
    image_class = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    out = image_class(native, None, header=header)
    out.header.set_slope_inter(1.0, 0.0)
    out.set_sform(grid.header.get_sform(), code=int(grid.header["sform_code"]))
    out.set_qform(grid.header.get_qform(), code=int(grid.header["qform_code"]))
    save_nifti_atomic(out, path)


def save_nifti_atomic(img: nib.Nifti1Image, path: str | os.PathLike) -> None:
    """Write a nibabel image to ``path`` through a temporary file in the same folder."""
    path = Path(path)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else ".nii"
    try:
        with atomic_path(path, suffix=suffix) as tmp:
            nib.save(img, tmp)
            with open(tmp, "rb") as handle:  # on disk before the rename, as write_bytes_atomic
                os.fsync(handle.fileno())
    except OSError as exc:
        raise ProcessingError(f"{path}: cannot write ({exc.strerror or exc})") from exc


def to_native(canonical: np.ndarray, grid: NativeGrid) -> np.ndarray:
    """Reorient a canonical array back to the stored axes of ``grid`` (exact inverse).

    Returns a view of ``canonical`` (axes swapped and flipped, nothing copied).
    """
    if canonical.shape[:3] != grid.canonical_shape:
        raise ValueError(f"array shape {canonical.shape} is not the grid's {grid.canonical_shape}")
    back = ornt_transform(axcodes2ornt(CANONICAL_AXCODES), io_orientation(grid.affine))
    return apply_orientation(canonical, back)


def reorient_canonical(
    canonical: np.ndarray, affine: np.ndarray, axcodes: tuple[str, str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a canonical array and its affine to storage axes ``axcodes`` (nibabel codes).

    Used to store data in a chosen orientation (the phantom generator stores each subject in a
    randomised clinical orientation).
    """
    transform = ornt_transform(axcodes2ornt(CANONICAL_AXCODES), axcodes2ornt(axcodes))
    data = apply_orientation(canonical, transform)
    new_affine = affine @ inv_ornt_aff(transform, canonical.shape[:3])
    return np.ascontiguousarray(data), new_affine


# --------------------------------------------------------------------------------------------
# internals


def _read_header(path: str | os.PathLike, what: str) -> nib.Nifti1Image:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    if path.is_dir():
        raise InputError(f"{path}: {what} is a directory, not a NIfTI file")
    if not path.name.endswith((".nii", ".nii.gz")):
        raise InputError(f"{path}: {what} must be a NIfTI file (.nii or .nii.gz)")
    try:
        with _quiet_nibabel():
            img = nib.load(str(path))
            shape = tuple(int(n) for n in img.shape)
            dtype = np.dtype(img.get_data_dtype())
    except _UNREADABLE as exc:
        raise InputError(f"{path}: {what} is not a readable NIfTI file ({_reason(exc)})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(f"{path}: {what} is not a NIfTI image ({type(img).__name__})")
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 3:
        raise InputError(f"{path}: {what} is {len(shape)}D (shape {shape}); a 3D volume is needed")
    if len(shape) < 3:
        raise InputError(f"{path}: {what} is {len(shape)}D (shape {shape}); a 3D volume is needed")
    if min(shape) < 1:
        raise InputError(f"{path}: {what} has no voxels (shape {shape})")
    if min(shape) < 2:
        raise InputError(f"{path}: {what} is 2D (shape {shape}); a 3D volume is needed")
    if dtype.kind not in "uif" or dtype.itemsize > 8:
        raise InputError(f"{path}: {what} has data type {dtype} ({dtype.kind!r}); real-valued "
                         "integers or floats of at most 64 bits are needed")
    n_voxels = int(np.prod(shape, dtype=np.int64))
    if n_voxels > MAX_VOXELS:
        raise InputError(
            f"{path}: {what} has {n_voxels} voxels (shape {shape}), over the limit of {MAX_VOXELS}"
        )
    zooms = _raw_pixdim(img, path)
    if not np.all(np.isfinite(zooms)) or np.any(zooms <= 0):
        raise InputError(f"{path}: {what} has an invalid voxel size {tuple(zooms.tolist())}")
    affine = _affine_of(img)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InputError(f"{path}: {what} has an invalid (singular or non-finite) affine")
    for name in ("qform", "sform"):  # both are written back to the outputs: both must be valid
        try:
            with _quiet_nibabel():
                matrix, code = getattr(img.header, f"get_{name}")(coded=True)
        except _UNREADABLE as exc:
            raise InputError(f"{path}: {what} has an invalid {name} ({_reason(exc)})") from None
        if code and (not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix[:3, :3])) < 1e-9):
            raise InputError(f"{path}: {what} has an invalid (singular or non-finite) {name}")
    return img


def _raw_pixdim(img: nib.Nifti1Image, path: Path) -> np.ndarray:
    """Voxel sizes as stored, before nibabel's header checks replace 0 by 1 and negatives by abs."""
    try:
        with nib.openers.ImageOpener(str(path)) as fileobj:
            raw = type(img.header).from_fileobj(fileobj, check=False)
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: header cannot be read ({_reason(exc)})") from None
    return np.asarray(raw["pixdim"][1:4], dtype=float)


def _read_data(img: nib.Nifti1Image, path: str | os.PathLike, what: str,
               dtype: type | None = np.float32) -> np.ndarray:
    """The voxel values as ``dtype`` (``None``: as stored, or as nibabel scales them)."""
    _check_data_present(img, Path(path), what)
    try:
        with _quiet_nibabel(), np.errstate(all="ignore"):  # a scaling that overflows: Inf, refused below
            data = np.asarray(img.dataobj, dtype=dtype)
    except (*_UNREADABLE, MemoryError) as exc:
        raise InputError(f"{path}: {what} data cannot be read ({_reason(exc)})") from None
    data = data.reshape(data.shape[:3]) if data.ndim > 3 else data
    return data


def _unscaled_integers(img: nib.Nifti1Image) -> bool:
    """Whether the file stores integers that nibabel returns unchanged (no slope or intercept)."""
    if img.get_data_dtype().kind not in "iu":
        return False
    # nibabel moves the header's scaling into the array proxy when it loads a file
    slope, inter = getattr(img.dataobj, "slope", None), getattr(img.dataobj, "inter", None)
    return slope is not None and inter is not None and float(slope) == 1.0 and float(inter) == 0.0


def _check_data_present(img: nib.Nifti1Image, path: Path, what: str) -> None:
    """Refuse a file that holds fewer data bytes than its header announces, before reading it.

    Without this, a header that claims a large shape over a few bytes of data makes nibabel
    allocate the whole announced size before it finds the file short. An uncompressed file is
    checked against its size. For a gzip file the trailer's ISIZE (uncompressed size modulo
    2**32) is read first; only when it is too small (a short or multi-member file) is the stream
    decompressed and counted, chunk by chunk, up to the announced size (constant memory).
    """
    try:
        offset = int(img.dataobj.offset)
        needed = offset + int(np.prod(img.dataobj.shape, dtype=np.int64)) * img.dataobj.dtype.itemsize
    except (AttributeError, TypeError, ValueError, OverflowError):
        return  # not an array proxy: nibabel reads (and checks) the data itself
    try:
        if not path.name.endswith(".gz"):
            available = path.stat().st_size
        else:
            available = _gzip_size_at_least(path, needed)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: {what} data cannot be read ({_reason(exc)})") from None
    if available < needed:
        raise InputError(f"{path}: {what} data cannot be read (truncated: the header announces "
                         f"{needed - offset} bytes of data after byte {offset}, the file holds "
                         f"{max(available - offset, 0)})")


def _gzip_size_at_least(path: Path, needed: int) -> int:
    """The uncompressed size of a gzip file, or a count that stops once it reaches ``needed``."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() >= 18:
            handle.seek(-4, os.SEEK_END)
            isize = int.from_bytes(handle.read(4), "little")
            if needed < 2**32 and isize >= needed:
                return isize
    count = 0
    with gzip.open(path, "rb") as stream:
        while count < needed:
            chunk = stream.read(min(1 << 20, needed - count))
            if not chunk:
                break
            count += len(chunk)
    return count


@contextlib.contextmanager
def _quiet_nibabel():
    """Silence nibabel's own stderr handler while reading: its problems come back as exceptions,
    which become our one-line errors."""
    nibabel_logger = logging.getLogger("nibabel.global")
    level = nibabel_logger.level
    nibabel_logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        nibabel_logger.setLevel(level)


def _affine_of(img: nib.Nifti1Image) -> np.ndarray:
    return np.asarray(img.affine, dtype=np.float64)


def _reorient(img: nib.Nifti1Image, data: np.ndarray) -> np.ndarray:
    """``data`` (on ``img``'s grid) in the canonical orientation, C-contiguous, same dtype."""
    to_canonical = ornt_transform(io_orientation(_affine_of(img)), axcodes2ornt(CANONICAL_AXCODES))
    return np.ascontiguousarray(apply_orientation(data, to_canonical))


def _to_canonical(img: nib.Nifti1Image, data: np.ndarray, path: str | os.PathLike) -> Image:
    affine = _affine_of(img)
    to_canonical = ornt_transform(io_orientation(affine), axcodes2ornt(CANONICAL_AXCODES))
    canonical = np.ascontiguousarray(apply_orientation(data, to_canonical), dtype=np.float32)
    canonical_affine = affine @ inv_ornt_aff(to_canonical, data.shape)
    grid = NativeGrid(
        shape=tuple(int(n) for n in data.shape),  # type: ignore[arg-type]
        affine=affine,
        header=img.header.copy(),
        to_canonical=to_canonical,
    )
    return Image(path=Path(path), data=canonical, affine=canonical_affine, grid=grid)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
