"""``io.lock.exclusive_lock``: one holder at a time; a busy lock raises the caller's error at once."""

from __future__ import annotations

import pytest

from sct_lesion_classify.errors import InputError, ProcessingError
from sct_lesion_classify.io.lock import exclusive_lock

pytest.importorskip("fcntl")


def test_a_held_lock_is_busy_until_released(tmp_path):
    path = tmp_path / ".lock"
    with exclusive_lock(path, what="test folder"):
        with pytest.raises(InputError, match="^busy$"):
            with exclusive_lock(path, what="test folder", wait=False, busy_message="busy", error=InputError):
                pass
    with exclusive_lock(path, what="test folder", wait=False):  # released: taken at once
        pass
    assert path.is_file() and path.read_bytes() == b""  # kept, empty


def test_an_unopenable_lock_file_names_the_file(tmp_path):
    path = tmp_path / "missing-folder" / ".lock"
    with pytest.raises(ProcessingError, match="missing-folder/.lock: cannot open the lock file of the QC index"):
        with exclusive_lock(path, what="QC index"):
            pass
