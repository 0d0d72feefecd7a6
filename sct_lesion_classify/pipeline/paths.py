"""Output paths: default names beside the input, and checks made before any work is done."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from sct_lesion_classify.errors import InputError

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def output_stem(path: str | Path) -> str:
    """File name without ``.nii.gz`` / ``.nii`` / ``.json`` (``sub-01_T2w.nii.gz`` -> ``sub-01_T2w``)."""
    name = Path(path).name
    for suffix in (*NIFTI_SUFFIXES, ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def check_output_path(path: str | Path, inputs: Iterable[str | Path | None], *, what: str,
                      nifti: bool = True) -> Path:
    """Check that ``path`` can be written and is none of ``inputs``; create its folder if needed.

    Raises
    ------
    InputError
        The output is one of the inputs, its folder cannot be created or written, the path is a
        folder, or a NIfTI output does not end in ``.nii``/``.nii.gz``.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: {what} path is a folder")
    if nifti and not path.name.endswith(NIFTI_SUFFIXES):
        raise InputError(f"{path}: {what} must end in .nii.gz or .nii")
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise InputError(f"{path}: {what} would overwrite the input {source}")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create the output folder {folder} ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{path}: output folder {folder} is not writable")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
    except OSError:
        pass
    return a.resolve() == b.resolve()
