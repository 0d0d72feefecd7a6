"""One exclusive file lock between processes (the QC index, a batch's output folder).

The lock is ``fcntl.flock`` on a lock file that is created when missing and kept afterwards
(empty). It is POSIX only (Linux, macOS): where ``fcntl`` is missing (Windows) the block runs
without a lock, which is safe for one process at a time, and a warning says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator

from sct_lesion_classify.errors import LesionClassifyError, ProcessingError

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, *, what: str, wait: bool = True, busy_message: str = "",
                   error: type[LesionClassifyError] = ProcessingError) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` while the block runs.

    Parameters
    ----------
    path
        The lock file (created if missing; its folder must exist).
    what
        What the lock guards, for the messages (e.g. ``"QC index"``).
    wait
        Wait until another process releases the lock; with ``False``, raise at once instead.
    busy_message
        The message of the error raised when ``wait`` is False and the lock is held.
    error
        The error class raised when the lock file cannot be opened or the lock is held.

    Raises
    ------
    LesionClassifyError
        (``error``) The lock file cannot be opened, or (``wait=False``) another process holds
        the lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        logger.warning("no fcntl on this system: the %s is used without a lock (safe for one process "
                       "at a time)", what)
        yield
        return
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise error(f"{path}: cannot open the lock file of the {what} ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise error(busy_message or f"{path}: cannot lock the {what} ({exc.strerror or exc})") from None
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
