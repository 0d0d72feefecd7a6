"""BIDS layer: participants.tsv round trip, validation, discovery."""

from __future__ import annotations

import json

import pytest

from sct_lesion_classify.errors import InputError
from sct_lesion_classify.io import bids


def _touch_subject(root, pid, labels=True):
    paths = bids.subject_paths(root, pid)
    paths["t2w"].parent.mkdir(parents=True, exist_ok=True)
    paths["t2w"].write_bytes(b"")
    if labels:
        paths["cord_mask"].parent.mkdir(parents=True, exist_ok=True)
        paths["cord_mask"].write_bytes(b"")
        paths["lesion_mask"].write_bytes(b"")
    return paths


def test_participants_round_trip_and_discovery(tmp_path):
    rows = [{"participant_id": "sub-002", "diagnosis": "MS", "age": "31.5", "sex": "F",
             "difficult": "1", "split": "val"},
            {"participant_id": "sub-001", "diagnosis": "ependymoma", "age": "", "sex": "M",
             "difficult": "0", "split": "train"}]
    bids.write_participants(tmp_path, rows)
    text = (tmp_path / "participants.tsv").read_text()
    assert text.splitlines()[0].split("\t") == list(bids.PARTICIPANT_COLUMNS)
    assert "n/a" in text
    sidecar = json.loads((tmp_path / "participants.json").read_text())
    assert set(sidecar) == set(bids.PARTICIPANT_COLUMNS)
    read = bids.read_participants(tmp_path)
    assert read["sub-002"]["diagnosis"] == "MS"
    _touch_subject(tmp_path, "sub-002")
    _touch_subject(tmp_path, "sub-001", labels=False)
    (tmp_path / "sub-003").mkdir()  # no T2w: not a subject
    subjects = bids.discover_subjects(tmp_path)
    assert [s.participant_id for s in subjects] == ["sub-001", "sub-002"]
    first, second = subjects
    assert first.cord_mask is None and first.age is None and first.difficult is False
    assert second.difficult is True and second.age == 31.5 and second.split == "val"
    assert second.lesion_mask is not None and second.lesion_mask.name == "sub-002_T2w_lesion-manual.nii.gz"
    assert second.t1c is None


def test_discovery_reads_the_style_column(tmp_path):
    bids.write_participants(tmp_path, [{"participant_id": "sub-001", "style": "shifted"},
                                       {"participant_id": "sub-002", "style": ""}])
    for pid in ("sub-001", "sub-002", "sub-003"):  # sub-003: not in participants.tsv
        _touch_subject(tmp_path, pid)
    assert [s.style for s in bids.discover_subjects(tmp_path)] == ["shifted", None, None]


def test_discovery_without_participants(tmp_path):
    _touch_subject(tmp_path, "sub-01")
    (subject,) = bids.discover_subjects(tmp_path)
    assert subject.diagnosis is None and subject.split is None


@pytest.mark.parametrize("row, message", [
    ("sub-001\tglioma\ttrain", "unknown diagnosis 'glioma'"),
    ("sub-001\tMS\ttraining", "unknown split 'training'"),
    ("sub 1\tMS\ttrain", "invalid participant_id"),
])
def test_bad_participants_are_refused(tmp_path, row, message):
    (tmp_path / "participants.tsv").write_text("participant_id\tdiagnosis\tsplit\n" + row + "\n")
    with pytest.raises(InputError, match=message) as info:
        bids.discover_subjects(tmp_path)
    assert "\n" not in str(info.value)


def test_duplicate_participant_is_refused(tmp_path):
    (tmp_path / "participants.tsv").write_text("participant_id\tdiagnosis\nsub-1\tMS\nsub-1\tNMOSD\n")
    with pytest.raises(InputError, match="duplicate participant_id sub-1"):
        bids.read_participants(tmp_path)


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(InputError, match="not found"):
        bids.discover_subjects(tmp_path / "nope")
