"""``evaluate`` with several held-out sets side by side, its refusal of training data, and the
cT1w-aware classifiers reported beside the T2w-only ones on the same segmented masks.

The sets are tiny BIDS datasets copied from the committed testing_data (one subject each); the
lesion and classifier packages are tiny real ONNX graphs, the cord localizer the bundled one, so
these tests check the mechanics (sections, table, records, refusals), not the models' figures.
"""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES
from sct_lesion_classify.cli.evaluate import main
from sct_lesion_classify.io.bids import subject_paths
from sct_lesion_classify.modelpkg.testing import write_tiny_package
from sct_lesion_classify.train.evaluation.sets import REAL_HEALTHY, SHIFTED, select_set

from evaluation_data import SUBJECTS, custom_models, make_set, row, tiny_classifier


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    folders = [write_tiny_package(root, "tiny_lesion", "lesion_segmentation", weight=4.0, bias=-10.0)]
    folders += [tiny_classifier(root, role, t1c=False, weight=0.7) for role in ROLE_CLASSES]
    t1c = [tiny_classifier(root, role, t1c=True, weight=-1.3) for role in ROLE_CLASSES]
    return {"t2w": folders, "t1c": t1c}


@pytest.fixture(scope="module")
def tiny_models(tiny_folders):
    return custom_models(tiny_folders["t2w"])


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
    manual = nib.load(str(SUBJECTS["sub-007"].lesion_mask))
    true_mm3 = float((np.asanyarray(manual.dataobj) > 0).sum() * np.prod(manual.header.get_zooms()[:3]))
    assert record["true_lesion_mm3"] == pytest.approx(true_mm3, abs=1e-3) and true_mm3 > 0
    volumes = shifted_section["segmentation"]["lesion_volume_ratio"]
    assert volumes["n"] == 1 and volumes["true_mm3"] == pytest.approx(true_mm3, abs=1e-3)
    assert volumes["ratio"] == pytest.approx(record["predicted_lesion_mm3"] / true_mm3, abs=1e-3)
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
    assert rows["predicted / true lesion volume"][1].startswith(f"{volumes['ratio']:.2f} (")
    assert rows["predicted / true lesion volume"][2] == "-"  # the healthy scan has no lesion
    # the trust checks of each scan, as its diagnosis JSON has them, and how many scans each flagged
    written = json.loads(next((out / "shifted" / "predictions" / "sub-007").rglob("*_diagnosis.json")).read_text())
    assert record["trust_checks"] == list(dict.fromkeys(c["code"] for c in written["trust"]["checks"]))
    for name, section in report["sets"].items():
        counts = section["trust_checks"]
        codes = section["records"][0]["trust_checks"]
        assert counts == {"n": 1, "flagged": {code: 1 for code in sorted(set(codes))}}, name
        expected = f"{int('cord_fragmented' in codes)} of 1"
        assert rows["scans flagged cord_fragmented (trust check)"][list(report["sets"]).index(name)] == expected
    assert "### Trust checks" in (out / "evaluation.md").read_text()
    # no cT1w variant used: no comparison with the T2w-only classifiers anywhere
    assert all("t2w_only_comparison" not in section for section in report["sets"].values())
    assert all("t2w_only" not in r for section in report["sets"].values() for r in section["records"])
    assert "T2w-only" not in (out / "evaluation.md").read_text()


def test_t1c_variants_are_reported_beside_the_t2w_only_classifiers_on_the_same_masks(tmp_path, tiny_folders,
                                                                                     monkeypatch):
    """Subjects with a cT1w are decided by the _t1c variants and also classified by the T2w-only
    classifiers on the same predicted mask: one lesion segmentation per subject, both in the report."""
    pytest.importorskip("matplotlib")
    from sct_lesion_classify.cli.classify_lesion import main as classify_main
    from sct_lesion_classify.lesion.segment import LesionSegmenter

    segmented = []
    segment = LesionSegmenter.segment

    def counting_segment(self, image, *args, **kwargs):
        segmented.append(image.data.shape)
        return segment(self, image, *args, **kwargs)

    monkeypatch.setattr(LesionSegmenter, "segment", counting_segment)
    heldout = make_set(tmp_path / "heldout", [row("sub-002"), row("sub-007"), row("sub-008")],
                       t1c=("sub-002", "sub-007"))
    out = tmp_path / "evaluation"
    assert main(["--bids", str(heldout), "-o", str(out), "--bootstrap", "20", "-v", "0"]
                + custom_models(tiny_folders["t2w"] + tiny_folders["t1c"])) == 0
    assert len(segmented) == 3  # the lesion network ran once per subject

    report = json.loads((out / "evaluation.json").read_text())
    records = {r["participant_id"]: r for r in report["records"]}
    assert "t2w_only" not in records["sub-008"]  # no cT1w: the T2w-only classifiers decided, once
    for pid in ("sub-002", "sub-007"):
        record, t2w_only = records[pid], records[pid]["t2w_only"]
        assert set(t2w_only) == {"probabilities", "densenet_probabilities", "calibrated_probabilities",
                                 "fused_probabilities", "class_probabilities", "most_likely_class"}
        assert set(t2w_only["probabilities"]) == set(ROLE_CLASSES)
        assert all(0.0 <= p <= 1.0 for p in t2w_only["probabilities"].values())
        assert t2w_only["most_likely_class"] in t2w_only["class_probabilities"]
        # the record's own figures are the decision's: the cT1w-aware variants, as the diagnosis JSON has them
        document = json.loads((out / "predictions" / pid / "anat" / f"{pid}_T2w_diagnosis.json").read_text())
        assert {c["model"] for c in document["classifiers"].values()} == {f"{r}_t1c" for r in ROLE_CLASSES}
        assert record["probabilities"] == {role: pytest.approx(c["probability"], abs=1e-6)
                                           for role, c in document["classifiers"].items()}
        assert record["probabilities"] != t2w_only["probabilities"]
        # the T2w-only figures are sct_classify_lesion's with the T2w-only models on the predicted mask
        mask = out / "predictions" / pid / "anat" / f"{pid}_T2w_lesion_seg.nii.gz"
        alone = tmp_path / f"{pid}_t2w_only.json"
        assert classify_main(["-i", str(heldout / pid / "anat" / f"{pid}_T2w.nii.gz"), "-lesion", str(mask),
                              "-o", str(alone), "-v", "0"] + custom_models(tiny_folders["t2w"][1:])) == 0
        expected = json.loads(alone.read_text())
        assert t2w_only["probabilities"] == {role: pytest.approx(c["probability"], abs=1e-6)
                                             for role, c in expected["classifiers"].items()}
        assert t2w_only["most_likely_class"] == expected["diagnosis"]["most_likely_class"]
    assert len(segmented) == 3  # sct_classify_lesion -lesion segments nothing either

    comparison = report["t2w_only_comparison"]
    assert comparison["n"] == 2 and set(comparison["classifiers"]) == set(ROLE_CLASSES)
    tumours = comparison["classifiers"]["astrocytoma_vs_ependymoma"]  # sub-007 and sub-002: both classes
    assert tumours["n"] == 2
    for kind in ("t1c", "t2w_only"):
        assert set(tumours[kind]) == {"accuracy", "auc", "ece"}
        assert 0.0 <= tumours[kind]["accuracy"]["value"] <= 1.0 and 0.0 <= tumours[kind]["ece"] <= 1.0
        assert comparison["four_class"][kind]["n"] == 2
    # the T2w-only accuracy is the report's own metric on the T2w-only probabilities
    positive = report["classifiers"]["astrocytoma_vs_ependymoma"]["positive_class"]
    truth = [records[pid]["diagnosis"] == positive for pid in ("sub-002", "sub-007")]
    decided = [records[pid]["t2w_only"]["probabilities"]["astrocytoma_vs_ependymoma"] >= 0.5
               for pid in ("sub-002", "sub-007")]
    assert tumours["t2w_only"]["accuracy"]["value"] == pytest.approx(np.mean(np.equal(truth, decided)))
    assert comparison["classifiers"]["ms_vs_nmosd"]["t1c"] is None  # no demyelinating subject with a cT1w
    assert comparison["four_class"]["t2w_only"]["accuracy"] == pytest.approx(np.mean(
        [records[pid]["t2w_only"]["most_likely_class"] == records[pid]["diagnosis"] for pid in ("sub-002", "sub-007")]))

    text = (out / "evaluation.md").read_text()
    assert "### cT1w-aware vs T2w-only classifiers (same lesion masks)" in text
    assert "#### astrocytoma_vs_ependymoma, cT1w-aware vs T2w-only (n = 2)" in text
    assert "| four-class accuracy |" in text
    assert "_t1c" in report["description"]["cT1w-aware models (subjects with a cT1w)"]


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
