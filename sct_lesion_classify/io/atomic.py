"""Atomic file writes: a temporary file in the destination folder, then a rename.

An interrupted run therefore leaves either no output or a complete one (SPEC section 2).
"""

from __future__ import annotations

import contextlib
import json
import os
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
