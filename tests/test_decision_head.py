"""The classifiers' decision head (issue 15): temperature scaling and late fusion with the
morphometry, fitted by training (``train.decision_head``), read from the card and applied at
inference (``classify.fusion``), and reported in the diagnosis JSON (schema version 3)."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES, ClassifierResult
from sct_lesion_classify.classify.document import validation_errors
from sct_lesion_classify.classify.fusion import (
    FEATURES,
    MORPHOMETRY_FEATURES,
    DecisionHead,
    calibrate,
    logit,
    morphometry_features,
    sigmoid,
)
from sct_lesion_classify.cli.classify_lesion import main
from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.io.bids import discover_subjects
from sct_lesion_classify.modelpkg.card import ModelCard, card_schema
from sct_lesion_classify.modelpkg.testing import tiny_card, write_tiny_package
from sct_lesion_classify.train.decision_head import (
    MIN_FUSION_PATIENTS,
    fit_calibration,
    fit_fusion,
    fit_logistic,
    fit_temperature,
)

ROOT = Path(__file__).resolve().parents[1]
SUBJECT = discover_subjects(ROOT / "testing_data")[0]
TEMPERATURE = 2.0
#: A fusion head on the network's logit and three measures (one of them, the level, always
#: missing without vertebral labels, so it takes its imputed value).
FUSION = {"method": "logistic_regression",
          "features": ["densenet_logit", "count", "max_length_si_mm", "vertebral_level"],
          "impute": [0.0, 1.0, 30.0, 5.0], "mean": [0.5, 1.5, 40.0, 4.0], "sd": [2.0, 0.5, 10.0, 2.0],
          "coefficients": [1.5, -0.4, 0.8, 0.3], "intercept": -0.2, "l2": 1.0,
          "fitted_on": "validation split, 40 patients"}
CALIBRATION = {"method": "temperature", "temperature": TEMPERATURE, "fitted_on": "validation split, 40 patients",
               "ece_before": 0.2, "ece_after": 0.05}


def classifier_packages(root: Path, *, head_role: str | None) -> list[Path]:
    """Tiny packages of the three roles; ``head_role``'s card has a calibration and a fusion."""
    folders = []
    for k, (role, classes) in enumerate(ROLE_CLASSES.items()):
        card = tiny_card(role, "classification", spatial_size=(32, 32))
        overrides = {"output": dict(card["output"], classes=list(classes), positive_class=classes[k % 2])}
        if role == head_role:
            overrides["decision"] = dict(card["decision"], calibration=CALIBRATION)
            overrides["fusion"] = FUSION
        folders.append(write_tiny_package(root, role, "classification", spatial_size=(32, 32), weight=0.7,
                                          bias=-0.4 + 0.2 * k, card_overrides=overrides))
    return folders


def classify(tmp_path: Path, folders: list[Path]) -> dict:
    for key in ("t2w", "cord_mask", "lesion_mask"):
        shutil.copy(getattr(SUBJECT, key), tmp_path / getattr(SUBJECT, key).name)
    out = tmp_path / "diagnosis.json"
    args = ["-i", str(tmp_path / SUBJECT.t2w.name), "-lesion", str(tmp_path / SUBJECT.lesion_mask.name),
            "-s", str(tmp_path / SUBJECT.cord_mask.name), "-o", str(out), "-v", "0"]
    assert main(args + [a for folder in folders for a in ("-custom-model", str(folder))]) == 0
    return json.loads(out.read_text())


# ------------------------------------------------------------------------------ fitting
@pytest.mark.parametrize("temperature", [0.5, 2.5])
def test_temperature_fit_recovers_a_known_temperature(temperature):
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0.0, 2.0, 6000)
    labels = (rng.random(true_logits.size) < sigmoid(true_logits)).astype(int)
    # a network whose logits are the true ones times the temperature: dividing by it calibrates
    probabilities = sigmoid(true_logits * temperature)
    assert fit_temperature(probabilities, labels) == pytest.approx(temperature, rel=0.06)
    calibration = fit_calibration(probabilities, labels, "validation split, 6000 patients")
    assert calibration.ece_after < calibration.ece_before
    assert calibration.ece_after < 0.03


def test_calibration_needs_both_classes(caplog):
    with caplog.at_level(logging.WARNING):
        assert fit_calibration([0.2, 0.9, 0.7], [1, 1, 1], "validation split, 3 patients") is None
    assert "both classes" in caplog.text


def test_fusion_needs_enough_patients_of_each_class(caplog):
    class Empty:
        lesions, count, total_volume_mm3 = (), 0, 0.0

    with caplog.at_level(logging.WARNING):
        fusion = fit_fusion([0.3] * 10, [Empty()] * 10, [0] * 8 + [1] * 2, None, "validation split, 10 patients")
    assert fusion is None and "no fusion head" in caplog.text
    assert MIN_FUSION_PATIENTS == 8


def test_logistic_fit_finds_the_informative_feature_and_ignores_a_missing_one():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 3))
    features[:, 2] = np.nan  # e.g. the vertebral level without label maps
    labels = (rng.random(400) < sigmoid(2.0 * features[:, 0])).astype(int)
    model = fit_logistic(features, labels)
    assert model.coefficients[0] > 1.0 and abs(model.coefficients[1]) < 0.3
    assert model.coefficients[2] == 0.0 and model.impute[2] == 0.0 and model.sd[2] == 1.0
    # a NaN row takes the imputed values
    assert model.probability(np.array([np.nan, np.nan, 7.0])) == pytest.approx(
        float(sigmoid(((model.impute - model.mean) / model.sd)[:2] @ model.coefficients[:2] + model.intercept)))


# ------------------------------------------------------------------------------ the card
def test_an_old_card_loads_and_is_reported_uncalibrated():
    # the card of the 1.0.0 tumour classifier, bundled before decision heads existed
    path = ROOT / "tests" / "data" / "tumor_vs_demyelinating_1.0.0.json"
    document = json.loads(path.read_text())
    card = ModelCard.load(path)
    assert card.decision.calibration is None and card.fusion is None
    assert card.to_json() == document  # no new keys written for an old card
    head = DecisionHead.of_card(card)
    applied = head.apply(0.8)
    assert not head.calibrated and applied.calibrated is None and applied.fused is None
    assert applied.decided == 0.8


def test_a_card_with_a_head_round_trips():
    document = tiny_card("tumor_vs_demyelinating", "classification")
    document["decision"]["calibration"] = CALIBRATION
    document["fusion"] = FUSION
    card = ModelCard.from_json(document)
    assert card.decision.calibration.temperature == TEMPERATURE and card.fusion.features[0] == "densenet_logit"
    assert card.to_json() == document


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["fusion"].__setitem__("sd", [1.0, 1.0]), "fusion.sd"),
    (lambda d: d["fusion"].__setitem__("features", ["densenet_logit", "age", "count", "level"]), "fusion.features"),
    (lambda d: d["fusion"].__setitem__("sd", [1.0, 0.0, 1.0, 1.0]), "fusion.sd"),
    (lambda d: d["decision"]["calibration"].__setitem__("temperature", 0.0), "decision.calibration.temperature"),
    (lambda d: d["decision"]["calibration"].pop("fitted_on"), "decision.calibration.fitted_on"),
])
def test_an_inconsistent_head_is_refused(mutate, message):
    document = tiny_card("tumor_vs_demyelinating", "classification")
    document["decision"]["calibration"] = dict(CALIBRATION)
    document["fusion"] = json.loads(json.dumps(FUSION))
    mutate(document)
    with pytest.raises(ModelError, match=message.replace(".", r"\.")):
        ModelCard.from_json(document)


def test_segmentation_models_have_no_fusion():
    document = tiny_card("tiny_seg")
    document["fusion"] = FUSION
    with pytest.raises(ModelError, match="only classifiers"):
        ModelCard.from_json(document)


def test_schema_names_every_feature_the_inference_computes():
    items = card_schema()["properties"]["fusion"]["properties"]["features"]["items"]["enum"]
    assert tuple(items) == FEATURES and FEATURES[1:] == MORPHOMETRY_FEATURES


# ------------------------------------------------------------------------------ inference
def test_result_probability_is_the_deciding_one():
    sha = "a" * 64
    result = ClassifierResult("ms_vs_nmosd", "m", "1", sha, "MS", 0.7, (0.6,), (1,), densenet_probability=0.6,
                              calibrated_probability=0.65, fused_probability=0.7)
    assert result.calibrated and result.fused
    with pytest.raises(ValueError, match="fused, else"):
        ClassifierResult("ms_vs_nmosd", "m", "1", sha, "MS", 0.6, (0.6,), (1,), densenet_probability=0.6,
                         calibrated_probability=0.65)
    with pytest.raises(ValueError, match="needs the network"):
        ClassifierResult("ms_vs_nmosd", "m", "1", sha, "MS", 0.65, (0.6,), (1,), calibrated_probability=0.65)
    plain = ClassifierResult("ms_vs_nmosd", "m", "1", sha, "MS", 0.6, (0.6,), (1,))
    assert plain.densenet_probability == 0.6 and not plain.calibrated and not plain.fused


def test_the_cards_head_is_applied_through_the_command(tmp_path):
    role = "tumor_vs_demyelinating"
    document = classify(tmp_path, classifier_packages(tmp_path / "models", head_role=role))
    assert validation_errors(document) == [] and document["schema_version"] == "3"
    entry = document["classifiers"][role]
    p = entry["densenet_probability"]
    assert p == pytest.approx(float(np.mean(entry["slice_probabilities"])), abs=2e-6)
    # calibration by hand: sigmoid(logit(p) / T)
    z = math.log(p / (1 - p))
    calibrated = 1 / (1 + math.exp(-z / TEMPERATURE))
    assert entry["calibrated"] is True and entry["calibrated_probability"] == pytest.approx(calibrated, abs=2e-6)
    # fusion by hand, from the lesions the JSON reports (no vertebral labels: the level is imputed)
    lesions = document["lesions"]["lesions"]
    values = {"densenet_logit": z / TEMPERATURE, "count": document["lesions"]["count"],
              "max_length_si_mm": max(lesion["length_si_mm"] for lesion in lesions),
              "vertebral_level": FUSION["impute"][3]}
    score = FUSION["intercept"] + sum(
        c * (values[name] - m) / s
        for name, c, m, s in zip(FUSION["features"], FUSION["coefficients"], FUSION["mean"], FUSION["sd"]))
    fused = 1 / (1 + math.exp(-score))
    assert entry["fused"] is True and entry["fused_probability"] == pytest.approx(fused, abs=1e-5)
    assert entry["probability"] == entry["fused_probability"]
    # the composition and the low-confidence flag use the fused probability
    p_tumor = fused if entry["positive_class"] == "tumor" else 1 - fused
    assert document["diagnosis"]["deciding_probabilities"]["P(tumor)"] == pytest.approx(p_tumor, abs=2e-6)
    # the other two models have no head
    for other in set(ROLE_CLASSES) - {role}:
        plain = document["classifiers"][other]
        assert plain["calibrated"] is False and plain["fused"] is False
        assert plain["calibrated_probability"] is None and plain["fused_probability"] is None
        assert plain["probability"] == plain["densenet_probability"]


def test_schema_3_requires_the_three_probabilities_and_earlier_versions_do_not(tmp_path):
    document = classify(tmp_path, classifier_packages(tmp_path / "models", head_role=None))
    assert validation_errors(document) == []
    assert all(entry["calibrated"] is False for entry in document["classifiers"].values())
    entry = document["classifiers"]["ms_vs_nmosd"]
    del entry["fused"]
    assert any(problem.startswith("classifiers/ms_vs_nmosd") and "fused" in problem
               for problem in validation_errors(document))
    for key in ("densenet_probability", "calibrated_probability", "fused_probability", "calibrated"):
        for other in document["classifiers"].values():
            other.pop(key, None)
    for other in document["classifiers"].values():
        other.pop("fused", None)
    document["schema_version"] = "2"  # a document written before the decision head
    assert validation_errors(document) == []
    document["classifiers"]["ms_vs_nmosd"]["calibrated_probability"] = 1.5
    assert validation_errors(document)


def test_morphometry_features_of_the_measured_lesions():
    from sct_lesion_classify.io.image import load_image, load_mask
    from sct_lesion_classify.lesion.morphometry import measure_lesions

    image = load_image(SUBJECT.t2w)
    lesion, _ = load_mask(SUBJECT.lesion_mask, image.grid)
    cord, _ = load_mask(SUBJECT.cord_mask, image.grid)
    morphometry = measure_lesions(lesion, image.zooms, image.affine, image=image.data, cord_mask=cord)
    features = dict(zip(MORPHOMETRY_FEATURES, morphometry_features(morphometry)))
    assert features["count"] == morphometry.count >= 1
    assert features["log_total_volume_mm3"] == pytest.approx(math.log1p(morphometry.total_volume_mm3))
    assert math.isnan(features["vertebral_level"])  # estimated levels: no level
    assert math.isfinite(features["eccentricity_ratio"]) and math.isfinite(features["intensity_ratio"])
    labels = np.zeros(image.shape, np.int32)
    labels[cord] = 4  # the whole cord at C4
    with_levels = measure_lesions(lesion, image.zooms, image.affine, vertebral_labels=labels)
    assert dict(zip(MORPHOMETRY_FEATURES, morphometry_features(with_levels)))["vertebral_level"] == 4.0


def test_calibrate_and_logit_are_inverse_at_temperature_one():
    p = np.array([1e-9, 0.2, 0.5, 0.93, 1.0])
    assert np.allclose(calibrate(p, 1.0), np.clip(p, 1e-6, 1 - 1e-6))
    assert logit(0.5) == 0.0 and np.isfinite(logit(1.0))


# ------------------------------------------------------------------------------ evaluation
def evaluation_records(n: int = 200):
    """Records of model 3 (MS vs NMOSD): an overconfident network, its calibration, a better fusion."""
    from sct_lesion_classify.train.evaluation.runner import SubjectRecord

    rng = np.random.default_rng(5)
    records = []
    for i in range(n):
        true_logit = rng.normal(0, 2.0)
        nmosd = bool(rng.random() < sigmoid(true_logit))
        densenet = float(sigmoid(3.0 * true_logit))
        calibrated = float(calibrate(densenet, 3.0))
        fused = float(sigmoid(3.0 * (1.0 if nmosd else -1.0) + rng.normal(0, 1.0)))
        role = "ms_vs_nmosd"
        records.append(SubjectRecord(
            f"sub-{i:03d}", "NMOSD" if nmosd else "MS", difficult=False, status="ok",
            probabilities={role: fused}, positive_classes={role: "NMOSD"},
            densenet_probabilities={role: densenet}, calibrated_probabilities={role: calibrated},
            fused_probabilities={role: fused},
            features=(5.0, 1.0, 20.0 + 30.0 * nmosd + rng.normal(0, 15), np.nan, 0.3, 1.5)))
    return records


def test_the_report_puts_densenet_morphometry_and_fusion_side_by_side(tmp_path):
    from sct_lesion_classify.train.evaluation.baseline import LogisticBaseline
    from sct_lesion_classify.train.evaluation.report import build_report, combine_sets, markdown

    records = evaluation_records()
    features = np.array([r.features for r in records], float)
    baseline = LogisticBaseline.fit(features, [r.truth("ms_vs_nmosd") for r in records])
    report = build_report(records, baselines={"ms_vs_nmosd": baseline}, description={"set": "test"}, n_resamples=20)
    entry = report["classifiers"]["ms_vs_nmosd"]["all"]
    side = entry["side_by_side"]
    assert set(side) == {"densenet", "baseline", "fused"} and set(side["fused"]) == {"accuracy", "auc"}
    assert side["baseline"]["auc"] == entry["baseline"]["auc"]
    assert side["fused"]["auc"] == entry["model"]["auc"]  # the decision used the fused probability
    assert side["fused"]["auc"]["value"] > side["densenet"]["auc"]["value"]
    ece = entry["ece"]
    assert ece["after"] < ece["before"] and ece["fused"] is not None
    assert "model" in entry and "ece" in entry["model"]  # the earlier keys stay
    text = markdown(combine_sets({"in_distribution": report}))
    assert "| | DenseNet121 alone | morphometry alone | fused |" in text
    floors = ece["if_calibrated"]
    assert set(floors) == {"before", "after", "fused"}
    assert all(0.0 <= f["median"] <= f["p95"] <= 1.0 for f in floors.values())
    after = floors["after"]
    assert (f"ECE before calibration {ece['before']} (calibrated: {floors['before']['median']:.2f}, "
            f"up to {floors['before']['p95']:.2f}), after {ece['after']} (calibrated: "
            f"{after['median']:.2f}, up to {after['p95']:.2f})") in text
    assert "| ms_vs_nmosd: ECE before / after calibration |" in text
    assert text.count("perfectly calibrated probabilities would show") == 1  # the bracket explained once


def test_an_uncalibrated_model_is_reported_so():
    from sct_lesion_classify.train.evaluation.report import build_report
    from sct_lesion_classify.train.evaluation.runner import SubjectRecord

    records = [SubjectRecord(r.participant_id, r.diagnosis, False, "ok", probabilities=dict(r.densenet_probabilities),
                             positive_classes=r.positive_classes,
                             densenet_probabilities=r.densenet_probabilities,
                             calibrated_probabilities={"ms_vs_nmosd": None}, fused_probabilities={"ms_vs_nmosd": None})
               for r in evaluation_records()]
    entry = build_report(records, baselines={}, description={}, n_resamples=20)["classifiers"]["ms_vs_nmosd"]["all"]
    assert entry["ece"]["after"] is None and entry["ece"]["fused"] is None
    assert entry["ece"]["if_calibrated"]["after"] is None and entry["ece"]["if_calibrated"]["before"] is not None
    assert entry["side_by_side"]["fused"] is None and entry["side_by_side"]["baseline"] is None
    assert entry["side_by_side"]["densenet"]["auc"] == entry["model"]["auc"]


def test_reliability_diagram_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    from sct_lesion_classify.train.evaluation.plots import write_figures
    from sct_lesion_classify.train.evaluation.report import _four_class

    records = evaluation_records()
    write_figures(tmp_path, records, {}, {"ms_vs_nmosd": "NMOSD"}, _four_class(records))
    png = tmp_path / "reliability_ms_vs_nmosd.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert (tmp_path / "roc_ms_vs_nmosd.png").is_file()


def test_fit_decision_head_on_a_validation_split_writes_a_valid_card():
    """The training hook on a fake run: ten validation patients (the same scan under ten names),
    their network probabilities, and the morphometry of their manual masks."""
    from dataclasses import replace
    from types import SimpleNamespace

    from sct_lesion_classify.train.decision_head import fit_decision_head

    labels = [0, 1] * 5
    probabilities = [0.05, 0.9, 0.4, 0.97, 0.1, 0.6, 0.3, 0.99, 0.02, 0.45]
    val = [SimpleNamespace(participant_id=f"sub-v{i}", label=label) for i, label in enumerate(labels)]
    test = [SimpleNamespace(participant_id="sub-t0", label=1), SimpleNamespace(participant_id="sub-t1", label=0)]

    class Objective:
        @staticmethod
        def evaluable(samples):
            return list(samples)

        @staticmethod
        def patient_probabilities(samples, predict):
            return np.array([probabilities[int(s.participant_id[-1])] for s in samples])

    subjects = {s.participant_id: replace(SUBJECT, participant_id=s.participant_id) for s in val + test}
    data = SimpleNamespace(val=val, test=test, split=SimpleNamespace(
        val=tuple(subjects[s.participant_id] for s in val), test=tuple(subjects[s.participant_id] for s in test)))
    fitted = fit_decision_head(Objective(), data, predict=None)
    assert fitted.calibration.fitted_on == "validation split, 10 patients"
    assert fitted.calibration.ece_after <= fitted.calibration.ece_before
    assert fitted.fusion.features == FEATURES and len(fitted.fusion.coefficients) == len(FEATURES)
    # every patient has the same lesions: only the network's logit can carry weight
    assert all(abs(c) < 1e-12 for c in fitted.fusion.coefficients[1:]) and fitted.fusion.coefficients[0] > 0
    assert set(fitted.metrics) == {"val", "test"}
    assert set(fitted.metrics["val"]) == {"patient_ece", "patient_ece_calibrated", "fused_patient_auc",
                                          "fused_patient_accuracy", "fused_patient_ece"}
    assert fitted.metrics["val"]["fused_patient_auc"] == pytest.approx(1.0)
    document = tiny_card("tumor_vs_demyelinating", "classification")
    document["decision"]["calibration"] = fitted.calibration.to_json()
    document["fusion"] = fitted.fusion.to_json()
    card = ModelCard.from_json(json.loads(json.dumps(document)))  # schema-valid, plain JSON
    head = DecisionHead.of_card(card)
    assert head.calibrated and head.fusion is not None
