"""``evaluate`` with several held-out sets side by side, and its refusal of training data.

The sets are tiny BIDS datasets copied from the committed testing_data (one subject each); the
lesion and classifier packages are tiny real ONNX graphs, the cord localizer the bundled one, so
these tests check the mechanics (sections, table, records, refusals), not the models' figures.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES
from sct_lesion_classify.cli.evaluate import main
from sct_lesion_classify.io.bids import discover_subjects, subject_paths, write_participants
from sct_lesion_classify.modelpkg.testing import tiny_card, write_tiny_package
from sct_lesion_classify.train.evaluation.sets import REAL_HEALTHY, SHIFTED, select_set

TESTING_DATA = Path(__file__).resolve().parents[1] / "testing_data"
SUBJECTS = {s.participant_id: s for s in discover_subjects(TESTING_DATA)}


def make_set(root: Path, rows: list[dict[str, str]], *, labels: bool = True, participants: bool = True) -> Path:
    """A BIDS dataset of testing_data subjects (``rows``: participants.tsv rows naming them)."""
    for row in rows:
        source = SUBJECTS[row["participant_id"]]
        target = subject_paths(root, row["participant_id"])
        keys = ("t2w", "cord_mask", "lesion_mask") if labels else ("t2w",)
        for key in keys:
            target[key].parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(getattr(source, key), target[key])
    if participants:
        write_participants(root, rows)
    return root


def row(pid: str, split: str = "test", style: str | None = None) -> dict[str, str]:
    values = {"participant_id": pid, "diagnosis": SUBJECTS[pid].diagnosis, "difficult": "0", "split": split}
    if style:
        values["style"] = style
    return values


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    folders = [write_tiny_package(root, "tiny_lesion", "lesion_segmentation", weight=4.0, bias=-10.0)]
    for k, (role, classes) in enumerate(ROLE_CLASSES.items()):
        card = tiny_card(role, "classification", spatial_size=(32, 32))
        output = dict(card["output"], classes=list(classes), positive_class=classes[k % 2])
        folders.append(write_tiny_package(root, role, "classification", spatial_size=(32, 32), weight=0.7,
                                          bias=-0.4, card_overrides={"output": output}))
    return [arg for folder in folders for arg in ("-custom-model", str(folder))]


def test_three_sets_side_by_side(tmp_path, tiny_models):
    pytest.importorskip("matplotlib")  # the figures; part of the train extra, absent in SCT's environment
    in_distribution = make_set(tmp_path / "heldout", [row("sub-002")])
    shifted = make_set(tmp_path / "shifted", [row("sub-007", style="shifted")])
    healthy = make_set(tmp_path / "healthy", [{"participant_id": "sub-004"}], labels=False, participants=False)
    healthy_cord = subject_paths(healthy, "sub-004")["cord_mask"]
    healthy_cord.parent.mkdir(parents=True)
    shutil.copy(SUBJECTS["sub-004"].cord_mask, healthy_cord)
    out = tmp_path / "evaluation"
    assert main(["--bids", str(in_distribution), "--shifted", str(shifted), "--real-healthy", str(healthy),
                 "-o", str(out), "--bootstrap", "20", "-v", "0"] + tiny_models) == 0

    report = json.loads((out / "evaluation.json").read_text())
    assert list(report["sets"]) == ["in_distribution", "shifted", "real_healthy"]
    # the in-distribution section stays at the top level, as a one-set report has it
    for key in ("description", "subjects", "segmentation", "classifiers", "four_class", "records"):
        assert report[key] == report["sets"]["in_distribution"][key]
    assert [r["participant_id"] for r in report["records"]] == ["sub-002"]
    shifted_section = report["sets"]["shifted"]
    assert [r["participant_id"] for r in shifted_section["records"]] == ["sub-007"]
    assert shifted_section["segmentation"]["lesion_dice"]["astrocytoma"]["n"] == 1
    outside = shifted_section["segmentation"]["outside_cord"]
    record = shifted_section["records"][0]
    assert outside["margin_mm"] == 2.0 and outside["n"] == 1
    assert outside["predicted_mm3"] == pytest.approx(record["predicted_lesion_mm3"], abs=1e-3)
    assert 0.0 <= outside["outside_mm3"] <= outside["predicted_mm3"]
    healthy_section = report["sets"]["real_healthy"]["healthy"]
    assert healthy_section["false_positive_mm3"]["n"] == 1
    assert healthy_section["false_positive_mm3_max"] == pytest.approx(
        report["sets"]["real_healthy"]["records"][0]["predicted_lesion_mm3"], abs=1e-3)
    assert healthy_section["cord_dice"]["n"] == 1 and healthy_section["cord_dice"]["mean"] > 0.5
    # each set's predictions in its own folder (participant ids repeat across sets)
    assert (out / "predictions" / "sub-002").is_dir() and (out / "shifted" / "predictions" / "sub-007").is_dir()
    assert (out / "real_healthy" / "predictions" / "sub-004").is_dir()

    table = (out / "evaluation.md").read_text().split("\n\n")[2].splitlines()
    assert table[0] == "| | in-distribution phantoms | shifted-style phantoms | real scans, healthy |"
    rows = {line.split(" | ")[0].lstrip("| "): line.strip("| ").split(" | ")[1:] for line in table[2:]}
    assert rows["lesion Dice, ependymoma"][0].endswith("(n 1)") and rows["lesion Dice, ependymoma"][1:] == ["-", "-"]
    assert rows["lesion Dice, astrocytoma"][1].endswith("(n 1)") and rows["lesion Dice, astrocytoma"][0] == "-"
    assert rows["false-positive lesion volume per scan, mm3 (mean)"][:2] == ["-", "-"]
    assert rows["false-positive lesion volume per scan, mm3 (mean)"][2] != "-"
    assert all(cell != "-" for cell in rows["cord Dice"])
    assert "predicted lesion volume outside the cord + 2 mm" in rows


@pytest.mark.parametrize("case", ["split train asked", "train subjects in split all", "train split as shifted",
                                  "training style as shifted"])
def test_training_data_is_refused_before_any_work(tmp_path, capsys, case):
    heldout = make_set(tmp_path / "heldout", [row("sub-002")])
    mixed = make_set(tmp_path / "mixed", [row("sub-002"), row("sub-001", split="train")])
    args = {
        "split train asked": ["--bids", str(heldout), "--split", "train"],
        "train subjects in split all": ["--bids", str(mixed), "--split", "all"],
        "train split as shifted": ["--bids", str(heldout), "--split", "all", "--shifted",
                                   str(make_set(tmp_path / "s", [row("sub-001", split="train", style="shifted")]))],
        "training style as shifted": ["--bids", str(heldout), "--shifted",
                                      str(make_set(tmp_path / "r", [row("sub-007", style="randomised")]))],
    }[case]
    out = tmp_path / "evaluation"
    assert main(args + ["-o", str(out), "-v", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert ("train" in err[0]) if "style" not in case else ("randomised" in err[0] and "training style" in err[0])
    assert not out.exists()


def test_a_set_without_split_is_taken_whole_and_a_shifted_set_keeps_its_split(tmp_path):
    whole = make_set(tmp_path / "whole", [{"participant_id": "sub-004"}, {"participant_id": "sub-006"}],
                     labels=False, participants=False)
    chosen = select_set(REAL_HEALTHY, whole, "test")
    assert chosen.split == "all" and [s.participant_id for s in chosen.subjects] == ["sub-004", "sub-006"]
    assert not chosen.has_lesions
    shifted = make_set(tmp_path / "shifted", [row("sub-002", style="shifted"), row("sub-007", split="val",
                                                                                    style="shifted")])
    assert [s.participant_id for s in select_set(SHIFTED, shifted, "test").subjects] == ["sub-002"]
    assert [s.participant_id for s in select_set(SHIFTED, shifted, "val").subjects] == ["sub-007"]


def test_missing_matplotlib_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # import matplotlib -> ImportError
    heldout = make_set(tmp_path / "heldout", [row("sub-002")])
    assert main(["--bids", str(heldout), "-o", str(tmp_path / "out"), "--split", "test"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "matplotlib" in error and "pip install" in error
    assert not (tmp_path / "out").exists()
