"""Tiny BIDS sets and classifier packages for the tests of ``evaluate`` and ``calibrate``.

The sets are copied from the committed testing_data (one subject each, with its manual masks);
the packages are tiny real ONNX graphs (``modelpkg.testing``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES
from sct_lesion_classify.io.bids import discover_subjects, subject_paths, write_participants
from sct_lesion_classify.modelpkg.testing import tiny_card, write_tiny_package

TESTING_DATA = Path(__file__).resolve().parents[1] / "testing_data"
SUBJECTS = {s.participant_id: s for s in discover_subjects(TESTING_DATA)}


def make_set(root: Path, rows: list[dict[str, str]], *, labels: bool = True, participants: bool = True,
             t1c: tuple[str, ...] = ()) -> Path:
    """A BIDS dataset of testing_data subjects (``rows``: participants.tsv rows naming them); the
    subjects named in ``t1c`` get a cT1w image (a copy of their T2w: same grid)."""
    for row in rows:
        source = SUBJECTS[row["participant_id"]]
        target = subject_paths(root, row["participant_id"])
        keys = ("t2w", "cord_mask", "lesion_mask") if labels else ("t2w",)
        for key in keys:
            target[key].parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(getattr(source, key), target[key])
        if row["participant_id"] in t1c:
            shutil.copy(source.t2w, target["t1c"])
    if participants:
        write_participants(root, rows)
    return root


def row(pid: str, split: str = "test", style: str | None = None) -> dict[str, str]:
    values = {"participant_id": pid, "diagnosis": SUBJECTS[pid].diagnosis, "difficult": "0", "split": split}
    if style:
        values["style"] = style
    return values


def custom_models(folders: list[Path]) -> list[str]:
    return [arg for folder in folders for arg in ("-custom-model", str(folder))]


def tiny_classifier(root: Path, role: str, *, t1c: bool, weight: float) -> Path:
    """A tiny classifier package for ``role``; ``t1c``: its cT1w-aware variant (first channel cT1w)."""
    name = f"{role}_t1c" if t1c else role
    card = tiny_card(name, "classification", spatial_size=(32, 32))
    classes = ROLE_CLASSES[role]
    overrides = {"output": dict(card["output"], classes=list(classes),
                                positive_class=classes[list(ROLE_CLASSES).index(role) % 2])}
    if t1c:
        overrides["input"] = dict(card["input"], channels=[{"name": "cT1w", "description": "cT1w"}]
                                  + card["input"]["channels"][1:])
    return write_tiny_package(root, name, "classification", spatial_size=(32, 32), weight=weight, bias=-0.4,
                              card_overrides=overrides)
