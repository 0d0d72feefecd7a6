"""``sct_lesion_classify phantom`` run in process through main([...])."""

from __future__ import annotations

import json

import nibabel as nib

from sct_lesion_classify.cli import phantom
from sct_lesion_classify.cli.sct_lesion_classify import main as dispatch
from sct_lesion_classify.io import bids


def test_writes_a_valid_bids_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    assert phantom.main(["-o", str(out), "-n", "4", "--seed", "3", "--shape", "64x128x5",
                         "--with-t1c", "-v", "0"]) == 0
    subjects = bids.discover_subjects(out)
    assert [s.participant_id for s in subjects] == ["sub-001", "sub-002", "sub-003", "sub-004"]
    assert sorted(s.diagnosis for s in subjects) == sorted(bids.DIAGNOSES)
    for s in subjects:
        assert s.t1c is not None and s.cord_mask is not None and s.lesion_mask is not None
        assert s.split in bids.SPLITS and s.sex in ("M", "F") and s.age is not None
        assert sorted(nib.load(str(s.t2w)).shape) == [5, 64, 128]
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["GeneratedBy"][0]["Name"] == "sct_lesion_classify phantom"
    labels = json.loads((out / "derivatives" / "labels" / "dataset_description.json").read_text())
    assert labels["DatasetType"] == "derivative"


def test_split_for_every_subject(tmp_path):
    out = tmp_path / "test"
    assert dispatch(["phantom", "-o", str(out), "-n", "2", "--shape", "64x128x5", "--split", "test",
                     "-v", "0"]) == 0
    assert {s.split for s in bids.discover_subjects(out)} == {"test"}


def test_bad_arguments_exit_2_with_the_usage_line_and_one_error_line(tmp_path, capsys):
    for argv in (["-o", str(tmp_path / "x"), "--shape", "512x512"],
                 ["-o", str(tmp_path / "x"), "-n", "0"],
                 ["-o", str(tmp_path / "x"), "--split", "dev"],
                 ["-n", "2"]):
        assert phantom.main(argv) == 2
        usage, error = capsys.readouterr().err.strip().splitlines()
        assert usage == "usage: sct_lesion_classify phantom -o <folder> [options]"
        assert error.startswith("sct_lesion_classify phantom: error:")


def test_refuses_a_folder_with_a_dataset(tmp_path, capsys):
    (tmp_path / "participants.tsv").write_text("participant_id\n")
    assert phantom.main(["-o", str(tmp_path), "-n", "1", "--shape", "64x128x5"]) == 2
    assert "not empty" in capsys.readouterr().err


def test_help_is_quick_and_zero(capsys):
    assert phantom.main(["-h"]) == 0
    assert "MANDATORY ARGUMENTS" in capsys.readouterr().out
