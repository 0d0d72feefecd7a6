"""``io.atomic.atomic_folder``: a folder (a dataset) is written hidden beside its destination and renamed
onto it at the end; a failure leaves neither the destination nor the hidden folder."""

from __future__ import annotations

import stat

import pytest

from sct_lesion_classify.errors import ProcessingError
from sct_lesion_classify.io.atomic import atomic_folder


def test_the_folder_appears_whole_at_the_end(tmp_path):
    out = tmp_path / "dataset"
    with atomic_folder(out) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".dataset.partial-")
        (staging / "sub-001").mkdir()
        (staging / "sub-001" / "a.txt").write_text("a")
        assert not out.exists()  # nothing under the output's name before the end
    assert (out / "sub-001" / "a.txt").read_text() == "a"
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]


def test_an_empty_destination_folder_is_replaced(tmp_path):
    out = tmp_path / "dataset"
    out.mkdir()
    with atomic_folder(out) as staging:
        (staging / "b.txt").write_text("b")
    assert [p.name for p in out.iterdir()] == ["b.txt"]


def test_a_failure_in_the_block_leaves_nothing(tmp_path):
    out = tmp_path / "dataset"
    with pytest.raises(RuntimeError, match="simulated"):
        with atomic_folder(out) as staging:
            (staging / "c.txt").write_text("c")
            raise RuntimeError("simulated")
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_destination_is_left_alone_and_the_staging_removed(tmp_path):
    out = tmp_path / "dataset"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    with pytest.raises(ProcessingError, match="cannot move the finished dataset into place"):
        with atomic_folder(out, "dataset") as staging:
            (staging / "d.txt").write_text("d")
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_missing_parent_is_refused(tmp_path):
    with pytest.raises(ProcessingError, match="does not exist"):
        with atomic_folder(tmp_path / "missing" / "dataset"):
            pytest.fail("the block must not run")
    assert list(tmp_path.iterdir()) == []
