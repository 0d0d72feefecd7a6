"""The evaluation report: Dice per diagnosis, the Table 2 metrics per classifier (all subjects and
``difficult == 1``) beside the morphometry-only baseline, calibration, four-class accuracy; written
as JSON and Markdown, with ROC curves and confusion matrices as PNG.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np

from sct_lesion_classify.classify.diagnosis import CLASSES, ROLE_CLASSES
from sct_lesion_classify.io.atomic import write_json_atomic, write_text_atomic
from sct_lesion_classify.train.evaluation.baseline import FEATURES, LogisticBaseline
from sct_lesion_classify.train.evaluation.metrics import (
    METRIC_NAMES,
    bootstrap_binary_metrics,
    expected_calibration_error,
)
from sct_lesion_classify.train.evaluation.runner import SubjectRecord


def build_report(records: list[SubjectRecord], *, baselines: dict[str, LogisticBaseline],
                 description: dict, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Aggregate the per-subject records into the report document."""
    ok = [r for r in records if r.status == "ok"]
    report = {
        "description": description,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "subjects": {"total": len(records), "ok": len(ok), "failed": len(records) - len(ok)},
        "segmentation": _segmentation(ok),
        "classifiers": {},
        "four_class": _four_class(ok),
        "baseline_features": list(FEATURES),
        "records": [r.to_json() for r in records],
    }
    for role in ROLE_CLASSES:
        report["classifiers"][role] = _classifier(ok, role, baselines.get(role), n_resamples, seed)
    return report


def _summary(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": round(float(np.mean(values)), 4), "sd": round(float(np.std(values, ddof=1)) if len(values) > 1
                                                                  else 0.0, 4), "n": len(values)}


def _segmentation(records: list[SubjectRecord]) -> dict:
    by_class = {name: _summary([r.lesion_dice for r in records if r.diagnosis == name]) for name in CLASSES}
    detected = [r.lesion_detected for r in records if r.lesion_detected is not None]
    return {
        "lesion_dice": by_class,
        "lesion_dice_tumor": _summary([r.lesion_dice for r in records if r.diagnosis in CLASSES[:2]]),
        "lesion_dice_demyelinating": _summary([r.lesion_dice for r in records if r.diagnosis in CLASSES[2:]]),
        "cord_dice": _summary([r.cord_dice for r in records]),
        "lesion_detection_rate": round(float(np.mean(detected)), 4) if detected else None,
    }


def _classifier(records, role, baseline, n_resamples, seed) -> dict:
    relevant = [r for r in records if r.truth(role) is not None]
    scored = [r for r in relevant if role in r.probabilities]
    result = {"positive_class": scored[0].positive_classes[role] if scored else None,
              "n": len(scored), "n_no_diagnosis": len(relevant) - len(scored)}
    for subset_name, subset in (("all", scored), ("difficult", [r for r in scored if r.difficult])):
        truth = np.array([r.truth(role) for r in subset], bool)
        scores = np.array([r.probabilities[role] for r in subset], float)
        entry = {"n": len(subset)}
        if len(subset) >= 2 and truth.any() and (~truth).any():
            estimates = bootstrap_binary_metrics(truth, scores, n_resamples=n_resamples, seed=seed)
            entry["model"] = {name: estimates[name].to_json() for name in METRIC_NAMES}
            entry["model"]["ece"] = round(expected_calibration_error(truth, scores), 4)
            if baseline is not None:
                features = np.array([r.features for r in subset], float)
                base = bootstrap_binary_metrics(truth, baseline.predict(features), n_resamples=n_resamples, seed=seed)
                entry["baseline"] = {name: base[name].to_json() for name in METRIC_NAMES}
        result[subset_name] = entry
    return result


def _four_class(records) -> dict:
    decided = [r for r in records if r.most_likely_class is not None]
    confusion = [[sum(1 for r in decided if r.diagnosis == t and r.most_likely_class == p) for p in CLASSES]
                 for t in CLASSES]
    accuracy = sum(confusion[i][i] for i in range(4)) / len(decided) if decided else None
    return {"classes": list(CLASSES), "confusion": confusion, "n": len(decided),
            "accuracy": None if accuracy is None else round(accuracy, 4)}


def roc_data(records: list[SubjectRecord], role: str, baseline: LogisticBaseline | None):
    """(truth, model scores, baseline scores or None) of one classifier over the scored subjects."""
    scored = [r for r in records if r.status == "ok" and r.truth(role) is not None and role in r.probabilities]
    truth = np.array([r.truth(role) for r in scored], bool)
    scores = np.array([r.probabilities[role] for r in scored], float)
    base = baseline.predict(np.array([r.features for r in scored], float)) if baseline and scored else None
    return truth, scores, base


def write_report(report: dict, folder: Path) -> tuple[Path, Path]:
    """Write ``evaluation.json`` and ``evaluation.md`` into ``folder`` (atomically)."""
    json_path, md_path = folder / "evaluation.json", folder / "evaluation.md"
    write_json_atomic(json_path, report)
    write_text_atomic(md_path, markdown(report))
    return json_path, md_path


def _fmt(estimate: dict | None) -> str:
    if not estimate or estimate.get("value") is None:
        return "n/a"
    low, high = estimate["ci95"]
    ci = f" ({low:.2f}-{high:.2f})" if low is not None else ""
    return f"{estimate['value']:.2f}{ci}"


def markdown(report: dict) -> str:
    """The report as Markdown tables."""
    lines = ["# Evaluation report", ""]
    description = report["description"]
    lines += [f"- {key}: {value}" for key, value in description.items()]
    subjects = report["subjects"]
    lines += [f"- subjects: {subjects['total']} ({subjects['ok']} processed, {subjects['failed']} failed)",
              f"- date: {report['date']}", ""]
    seg = report["segmentation"]
    lines += ["## Segmentation", "", "| | Dice mean | SD | n |", "| --- | --- | --- | --- |"]
    for name, s in list(seg["lesion_dice"].items()) + [("tumour (all)", seg["lesion_dice_tumor"]),
                                                        ("demyelinating (all)", seg["lesion_dice_demyelinating"]),
                                                        ("cord", seg["cord_dice"])]:
        lines.append(f"| {name} | {s['mean'] if s['mean'] is not None else 'n/a'} | "
                     f"{s['sd'] if s['sd'] is not None else 'n/a'} | {s['n']} |")
    lines += ["", f"Lesion detection rate: {seg['lesion_detection_rate']}", ""]
    lines += ["## Classifiers (95% bootstrap CI)", ""]
    for role, entry in report["classifiers"].items():
        lines += [f"### {role} (positive class: {entry['positive_class']}; n = {entry['n']}, "
                  f"no diagnosis: {entry['n_no_diagnosis']})", ""]
        for subset in ("all", "difficult"):
            data = entry.get(subset, {})
            if "model" not in data:
                lines += [f"{subset}: n = {data.get('n', 0)}, not enough subjects of both classes", ""]
                continue
            lines += [f"{subset} (n = {data['n']}; model ECE {data['model']['ece']})", "",
                      "| metric | DenseNet121 | morphometry baseline |", "| --- | --- | --- |"]
            for name in METRIC_NAMES:
                lines.append(f"| {name} | {_fmt(data['model'][name])} | {_fmt(data.get('baseline', {}).get(name))} |")
            lines.append("")
    four = report["four_class"]
    lines += ["## Four classes", "", f"accuracy {four['accuracy']} (n = {four['n']})", "",
              "| truth \\ predicted | " + " | ".join(four["classes"]) + " |",
              "| --- |" + " --- |" * len(four["classes"])]
    for name, row in zip(four["classes"], four["confusion"]):
        lines.append(f"| {name} | " + " | ".join(map(str, row)) + " |")
    return "\n".join(lines) + "\n"
