"""Output paths: the checks made before any work is done (the names: :mod:`.outputs`)."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterable

from sct_lesion_classify.errors import InputError, ProcessingError
from sct_lesion_classify.pipeline.outputs import NIFTI_SUFFIXES


def check_output_path(path: str | Path, inputs: Iterable[str | Path | None], *, what: str,
                      nifti: bool = True) -> Path:
    """Check that ``path`` can be written and is none of ``inputs``, before any work is done.

    A missing output folder is not created: its chain is created once under a name of this
    process's own and removed again, so that a run that fails later leaves nothing behind;
    :func:`make_output_folder` creates it for good just before the first write.

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
    _check_folder_writable(path.parent, path, "output folder")
    return path


def check_qc_folder(folder: str | Path | None) -> None:
    """Check, before any work is done, that the ``-qc`` folder can be created and written.

    Nothing is created. An existing ``index.json`` must be a valid QC index (it is appended to
    at the end of the run).

    Raises
    ------
    InputError
        The path is a file, or the folder cannot be created or written.
    ProcessingError
        The folder holds an invalid QC index.
    """
    if folder is None:
        return
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: QC folder is a file, not a folder (-qc)")
    _check_folder_writable(folder, folder, "QC folder")
    if folder.is_dir():
        from sct_lesion_classify.qc.report import read_index

        read_index(folder)


def make_output_folder(path: str | Path) -> None:
    """Create the folder of the output ``path`` (checked by :func:`check_output_path`)."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProcessingError(f"{path}: cannot create the output folder {folder} "
                              f"({exc.strerror or exc})") from None


def _check_folder_writable(folder: Path, named: Path, what: str) -> None:
    """``folder`` exists and is writable, or can be created.

    A missing ``folder`` is not created itself: its missing chain is created under a name of this
    process's own beside it and removed again. Several processes may then check, create and use
    one folder at once (a cohort writing into one output or QC folder) without one removing the
    folder another has just made.
    """
    existing, missing = folder, []
    while not existing.exists() and existing != existing.parent:
        missing.append(existing.name)
        existing = existing.parent
    if not missing:
        if not folder.is_dir():
            raise InputError(f"{named}: cannot create the {what} {folder} ({os.strerror(errno.EEXIST)})")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"{named}: {what} {folder} is not writable")
        return
    missing.reverse()
    probe = existing / f".sct_lesion_classify-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        probe.joinpath(*missing[1:]).mkdir(parents=True)
    except OSError as exc:
        raise InputError(f"{named}: cannot create the {what} {folder} ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
    except OSError:
        pass
    return a.resolve() == b.resolve()
