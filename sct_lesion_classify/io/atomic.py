"""Atomic file writes: a temporary file in the destination folder, then a rename.

An interrupted run therefore leaves either no output or a complete one (SPEC section 2). A whole
folder (a dataset) is written the same way: a hidden folder beside it, renamed at the end
(:func:`atomic_folder`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from sct_lesion_classify.errors import ProcessingError


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it onto ``destination`` on success.

    Parameters
    ----------
    destination
        The final path. Its folder must exist and be writable.
    suffix
        Suffix of the temporary name, for writers that choose a format from the name
        (e.g. ``".nii.gz"`` for nibabel).

    Raises
    ------
    ProcessingError
        If the folder does not exist or is not writable.
    """
    destination = Path(destination)
    folder = destination.parent if str(destination.parent) else Path(".")
    if not folder.is_dir():
        raise ProcessingError(f"{destination}: output folder {folder} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp" + suffix,
                                        dir=folder)
    except OSError as exc:
        raise ProcessingError(f"{destination}: cannot write in {folder} ({exc.strerror})") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_folder(destination: str | os.PathLike, what: str = "folder") -> Iterator[Path]:
    """Yield a hidden staging folder beside ``destination``; rename it onto ``destination`` on success.

    The staging folder is ``.<name>.partial-XXXX`` (mode 0755) in ``destination``'s parent. On
    success it replaces ``destination``, which must then be missing or an empty folder; on any
    failure (in the block or in the rename) it is removed and the error goes on. Only a killed
    process can leave it behind, never a half-written ``destination``.

    Parameters
    ----------
    destination
        The final folder. Its parent must exist and be writable.
    what
        What the folder holds, for the error message of a failed rename (e.g. ``"dataset"``).

    Raises
    ------
    ProcessingError
        The parent does not exist or is not writable, or the finished folder cannot be renamed onto
        ``destination`` (e.g. a non-empty folder is there).
    """
    destination = Path(destination)
    parent = destination.parent
    if not parent.is_dir():
        raise ProcessingError(f"{destination}: output folder {parent} does not exist")
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=parent))
    except OSError as exc:
        raise ProcessingError(f"{destination}: cannot write in {parent} ({exc.strerror})") from exc
    try:
        os.chmod(staging, 0o755)
        yield staging
        try:
            os.replace(staging, destination)  # onto a missing or empty folder
        except OSError as exc:
            raise ProcessingError(f"{destination}: cannot move the finished {what} into place "
                                  f"({exc.strerror})") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise


def write_bytes_atomic(destination: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``destination`` atomically (fsync before the rename)."""
    with atomic_path(destination) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())


def write_text_atomic(destination: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``destination`` atomically."""
    write_bytes_atomic(destination, text.encode("utf-8"))


def write_json_atomic(destination: str | os.PathLike, document: object) -> None:
    """Write ``document`` as indented JSON (with a final newline) to ``destination`` atomically."""
    write_text_atomic(destination, json.dumps(document, indent=2, allow_nan=False) + "\n")
