"""The checks made on output and QC folders before any work (``pipeline.paths``).

Several processes of a cohort run write into one output and QC folder at once; the check of one
must never remove a folder another has just created (the race seen in CI as
``cannot create the QC folder ... (File exists)``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sct_lesion_classify.errors import InputError
from sct_lesion_classify.pipeline.paths import check_output_path, check_qc_folder, make_output_folder


def test_missing_folders_are_checked_but_not_left_behind(tmp_path):
    output = tmp_path / "new" / "deeper" / "mask.nii.gz"
    check_output_path(output, [], what="output mask")
    check_qc_folder(tmp_path / "qc" / "inner")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    make_output_folder(output)
    assert output.parent.is_dir()


def test_check_keeps_a_folder_another_process_creates_meanwhile(tmp_path, monkeypatch):
    shared = tmp_path / "shared" / "qc"
    real_mkdir = Path.mkdir

    def mkdir_while_another_process_creates_the_folder(self, *args, **kwargs):
        os.makedirs(shared, exist_ok=True)  # the other process, between our steps
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir_while_another_process_creates_the_folder)
    check_qc_folder(shared)
    check_output_path(shared / "sub" / "mask.nii.gz", [], what="output mask")
    monkeypatch.undo()
    assert shared.is_dir()
    assert [p.name for p in shared.parent.iterdir()] == ["qc"]  # no probe left


@pytest.mark.parametrize("make_bad, reason", [
    (lambda f: (f / "file").write_text("x") and f / "file" / "qc", "Not a directory"),
    (lambda f: (f / "file").write_text("x") and f / "file", "File exists"),
])
def test_a_folder_that_cannot_be_created_is_one_line(tmp_path, make_bad, reason):
    folder = make_bad(tmp_path)
    with pytest.raises(InputError) as caught:
        check_output_path(folder / "mask.nii.gz", [], what="output mask")
    assert str(caught.value) == (f"{folder / 'mask.nii.gz'}: cannot create the output folder {folder} "
                                 f"({reason})")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
