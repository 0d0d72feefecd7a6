"""The evaluation report: Dice per diagnosis, the Table 2 metrics per classifier (all subjects and
``difficult == 1``) beside the morphometry-only baseline, calibration, four-class accuracy; written
as JSON and Markdown, with ROC curves, confusion matrices and reliability diagrams as PNG.

Each classifier's section also puts side by side (``side_by_side``) the DenseNet alone (the
network's probability), the morphometry baseline alone and the fusion of the two (the card's
``fusion`` head, when it has one), with their accuracy and AUC, and gives the expected calibration
error before and after the card's calibration (``ece``), each beside the ECE that perfectly
calibrated probabilities would show on the same subjects (``ece.if_calibrated``: on a few dozen
subjects it is far from 0); ``model`` is the probability the decision used (fused, else
calibrated, else the network's).

When cT1w-aware variants classified some subjects of a set (a cT1w image and the ``_t1c``
packages installed), the set's ``t2w_only_comparison`` puts their accuracy, AUC and ECE per
classifier, and the four-class accuracy, beside those of the T2w-only classifiers on the same
subjects and lesion masks (:func:`t2w_only_comparison`); without them the report has no such key.

Several sets (``train.evaluation.sets``) are reported side by side: :func:`combine_sets` puts one
section per set under ``sets`` and keeps the in-distribution section's keys at the top level, and
the Markdown opens with one table holding a column per set.
"""

from __future__ import annotations

import datetime
from collections import Counter
from pathlib import Path

import numpy as np

from sct_lesion_classify.classify.diagnosis import CLASSES, ROLE_CLASSES
from sct_lesion_classify.io.atomic import write_json_atomic, write_text_atomic
from sct_lesion_classify.train.evaluation.baseline import FEATURES, LogisticBaseline
from sct_lesion_classify.train.evaluation.metrics import (
    METRIC_NAMES,
    bootstrap_binary_metrics,
    ece_if_calibrated,
    expected_calibration_error,
)
from sct_lesion_classify.train.evaluation.runner import CORD_MARGIN_MM, SubjectRecord
from sct_lesion_classify.train.evaluation.sets import IN_DISTRIBUTION, SET_LABELS


def build_report(records: list[SubjectRecord], *, baselines: dict[str, LogisticBaseline],
                 description: dict, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Aggregate the per-subject records into the report document."""
    ok = [r for r in records if r.status == "ok"]
    report = {
        "description": description,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "subjects": _subject_counts(records, ok),
        "segmentation": _segmentation(ok),
        "classifiers": {},
        "four_class": _four_class(ok),
        "trust_checks": trust_check_counts(ok),
        "baseline_features": list(FEATURES),
    }
    comparison = t2w_only_comparison(ok, n_resamples=n_resamples, seed=seed)
    if comparison is not None:
        report["t2w_only_comparison"] = comparison
    report["records"] = [r.to_json() for r in records]
    for role in ROLE_CLASSES:
        report["classifiers"][role] = _classifier(ok, role, baselines.get(role), n_resamples, seed)
    return report


#: The figures of each classifier in the cT1w-aware vs T2w-only comparison (``model``'s keys).
T2W_ONLY_METRICS = ("accuracy", "auc", "ece")


def t2w_only_comparison(records: list[SubjectRecord], *, n_resamples: int, seed: int) -> dict | None:
    """The cT1w-aware classifiers (which decided) beside the T2w-only ones, on the processed
    subjects that both classified (same lesion masks): per role ``t1c`` and ``t2w_only`` hold the
    accuracy and AUC (bootstrap estimates) and the ECE of the deciding probability, as each
    classifier's ``all.model`` reports them (None without subjects of both classes);
    ``four_class`` holds the four-class figures both ways. None when no subject has both."""
    both = [r for r in records if r.t2w_only is not None]
    if not both:
        return None
    t2w_only = [r.with_t2w_only() for r in both]
    classifiers = {}
    for role in ROLE_CLASSES:
        entries = {kind: _classifier(subset, role, None, n_resamples, seed)["all"]
                   for kind, subset in (("t1c", both), ("t2w_only", t2w_only))}
        classifiers[role] = {"n": entries["t1c"]["n"], **{
            kind: None if "model" not in entry else {name: entry["model"][name] for name in T2W_ONLY_METRICS}
            for kind, entry in entries.items()}}
    return {"n": len(both), "classifiers": classifiers,
            "four_class": {"t1c": _four_class(both), "t2w_only": _four_class(t2w_only)}}


def trust_check_counts(records: list[SubjectRecord]) -> dict:
    """How many of the processed scans each trust check flagged: ``n`` (scans whose checks were
    recorded) and ``flagged`` (code -> scans, sorted by code). A model that looks better by its
    Dice can still leave, say, more stray pieces of cord for the largest-piece rule to remove;
    ``cord_fragmented`` shows that."""
    recorded = [r for r in records if r.trust_checks is not None]
    # each record holds a code once (TrustAssessment.codes), so this counts scans
    flagged = Counter(code for record in recorded for code in record.trust_checks)
    return {"n": len(recorded), "flagged": dict(sorted(flagged.items()))}


def _subject_counts(records: list[SubjectRecord], ok: list[SubjectRecord]) -> dict:
    """A section's ``subjects``: all of them, those processed (``ok``) and those that failed."""
    return {"total": len(records), "ok": len(ok), "failed": len(records) - len(ok)}


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
        "lesion_dice_all": _summary([r.lesion_dice for r in records if r.diagnosis in CLASSES]),
        "outside_cord": _outside_cord(records),
        "predicted_lesion_mm3": _summary([r.predicted_lesion_mm3 for r in records]),
        "lesion_volume_ratio": _volume_ratio(records),
    }


def _volume_ratio(records: list[SubjectRecord]) -> dict:
    """Predicted over manual lesion volume, pooled over the subjects that have both (a model that
    marks too little or too much of every lesion shows here, where the Dice does not say which)."""
    measured = [r for r in records if r.true_lesion_mm3 is not None and r.predicted_lesion_mm3 is not None]
    predicted = sum(r.predicted_lesion_mm3 for r in measured)
    true = sum(r.true_lesion_mm3 for r in measured)
    return {"n": len(measured), "predicted_mm3": round(predicted, 3), "true_mm3": round(true, 3),
            "ratio": round(predicted / true, 4) if true > 0 else None}


def _outside_cord(records: list[SubjectRecord]) -> dict:
    """Predicted lesion volume beyond the true cord dilated by CORD_MARGIN_MM: pooled over the set
    (outside volume / predicted volume) and per subject (subjects with a prediction)."""
    measured = [r for r in records if r.outside_cord_mm3 is not None and r.predicted_lesion_mm3 is not None]
    predicted = sum(r.predicted_lesion_mm3 for r in measured)
    outside = sum(r.outside_cord_mm3 for r in measured)
    return {"margin_mm": CORD_MARGIN_MM, "n": len(measured),
            "predicted_mm3": round(predicted, 3), "outside_mm3": round(outside, 3),
            "share": round(outside / predicted, 4) if predicted > 0 else None,
            "share_per_subject": _summary([r.outside_cord_mm3 / r.predicted_lesion_mm3 for r in measured
                                           if r.predicted_lesion_mm3 > 0])}


def build_healthy_section(records: list[SubjectRecord], *, description: dict) -> dict:
    """The section of a set of scans without lesion: false-positive lesion volume and cord Dice."""
    ok = [r for r in records if r.status == "ok"]
    volumes = [r.predicted_lesion_mm3 for r in ok if r.predicted_lesion_mm3 is not None]
    return {
        "description": description,
        "subjects": _subject_counts(records, ok),
        "healthy": {
            "false_positive_mm3": _summary(volumes),
            "false_positive_mm3_max": round(max(volumes), 3) if volumes else None,
            "scans_with_false_positive": sum(1 for v in volumes if v > 0),
            "scans_with_diagnosis": sum(1 for r in ok if r.most_likely_class is not None),
            "cord_dice": _summary([r.cord_dice for r in ok]),
        },
        "trust_checks": trust_check_counts(ok),
        "records": [r.to_json() for r in records],
    }


def combine_sets(sections: dict[str, dict]) -> dict:
    """One report of several sets: ``sets`` holds each set's section (report order); the top level
    keeps the in-distribution section's keys (``description``, ``subjects``, ``segmentation``,
    ``classifiers``, ``four_class``, ``records``, ...) as a one-set report has them."""
    if IN_DISTRIBUTION not in sections:
        raise ValueError("the in-distribution set is always reported")
    ordered = {name: sections[name] for name in SET_LABELS if name in sections}
    return {**sections[IN_DISTRIBUTION], "sets": ordered}


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
            entry["side_by_side"] = _side_by_side(subset, role, truth, entry.get("baseline"), n_resamples, seed)
            entry["ece"] = _calibration(subset, role, truth, seed)
        result[subset_name] = entry
    return result


#: The figures of the side-by-side comparison.
SIDE_BY_SIDE_METRICS = ("accuracy", "auc")


def head_scores(records: list[SubjectRecord], role: str) -> dict[str, np.ndarray | None]:
    """The network's, the calibrated and the fused probabilities of ``role`` over ``records``
    (None for a kind some record lacks: a model without calibration or fusion). Records written
    before these existed give their ``probabilities`` as the network's."""
    densenet = np.array([r.densenet_probabilities.get(role, r.probabilities[role]) for r in records], float)
    scores: dict[str, np.ndarray | None] = {"densenet": densenet}
    for kind, values in (("calibrated", [r.calibrated_probabilities.get(role) for r in records]),
                         ("fused", [r.fused_probabilities.get(role) for r in records])):
        scores[kind] = None if not values or any(v is None for v in values) else np.array(values, float)
    return scores


def _side_by_side(records, role, truth, baseline: dict | None, n_resamples, seed) -> dict:
    """Accuracy and AUC of the DenseNet alone, the morphometry baseline alone and the fused head."""
    def figures(scores):
        if scores is None:
            return None
        estimates = bootstrap_binary_metrics(truth, scores, n_resamples=n_resamples, seed=seed)
        return {name: estimates[name].to_json() for name in SIDE_BY_SIDE_METRICS}

    scores = head_scores(records, role)
    return {"densenet": figures(scores["densenet"]),
            "baseline": None if baseline is None else {name: baseline[name] for name in SIDE_BY_SIDE_METRICS},
            "fused": figures(scores["fused"])}


def _calibration(records, role, truth, seed: int = 0) -> dict:
    """ECE of the network's probabilities (before) and of the calibrated ones (after; None for an
    uncalibrated model), and of the fused ones (None without fusion); ``if_calibrated`` gives, for
    each, the ECE that perfectly calibrated probabilities would show on these subjects (median and
    95th percentile, :func:`~sct_lesion_classify.train.evaluation.metrics.ece_if_calibrated`):
    an ECE target below it cannot be shown on a set of this size."""
    scores = head_scores(records, role)

    def ece(kind):
        return None if scores[kind] is None else round(expected_calibration_error(truth, scores[kind]), 4)

    def floor(kind):
        return None if scores[kind] is None else ece_if_calibrated(scores[kind], seed=seed).to_json()

    kinds = ("densenet", "calibrated", "fused")
    names = ("before", "after", "fused")
    return {**{name: ece(kind) for name, kind in zip(names, kinds)},
            "if_calibrated": {name: floor(kind) for name, kind in zip(names, kinds)}}


def _four_class(records) -> dict:
    decided = [r for r in records if r.most_likely_class is not None and r.diagnosis in CLASSES]
    confusion = [[sum(1 for r in decided if r.diagnosis == t and r.most_likely_class == p) for p in CLASSES]
                 for t in CLASSES]
    accuracy = sum(confusion[i][i] for i in range(4)) / len(decided) if decided else None
    return {"classes": list(CLASSES), "confusion": confusion, "n": len(decided),
            "accuracy": None if accuracy is None else round(accuracy, 4)}


def scored_records(records: list[SubjectRecord], role: str) -> list[SubjectRecord]:
    """The processed subjects that ``role`` applies to and that it scored."""
    return [r for r in records if r.status == "ok" and r.truth(role) is not None and role in r.probabilities]


def roc_data(records: list[SubjectRecord], role: str, baseline: LogisticBaseline | None):
    """(truth, model scores, baseline scores or None) of one classifier over the scored subjects."""
    scored = scored_records(records, role)
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
    """The report as Markdown: the table comparing the sets (a column per set), then each set's
    details (segmentation, classifiers with their intervals, four classes). ``report`` is
    :func:`combine_sets`' output."""
    sets = report["sets"]
    lines = ["# Evaluation report", "", f"- date: {report['date']}", ""]
    lines += comparison_table(sets) + [""]
    for name, section in sets.items():
        lines += [f"## {SET_LABELS.get(name, name)}", ""]
        lines += [f"- {key}: {value}" for key, value in section["description"].items()]
        subjects = section["subjects"]
        lines += [f"- subjects: {subjects['total']} ({subjects['ok']} processed, {subjects['failed']} failed)", ""]
        if "healthy" in section:
            lines += _healthy_markdown(section["healthy"])
        else:
            lines += _lesion_set_markdown(section)
        lines += _trust_markdown(section.get("trust_checks"))
    return "\n".join(lines) + "\n"


def _trust_markdown(counts: dict | None) -> list[str]:
    """The set's trust checks: how many scans each flagged (none for a report without them)."""
    if not counts or not counts["n"]:
        return []
    flagged = ", ".join(f"{code} {n}" for code, n in counts["flagged"].items()) or "none"
    return ["### Trust checks", "", f"Scans flagged by each check, of {counts['n']}: {flagged}.", ""]


def _cell_fragmented(section: dict) -> str:
    """'5 of 24': scans whose cord the trust check ``cord_fragmented`` flagged."""
    counts = section.get("trust_checks")
    if not counts or not counts["n"]:
        return "-"
    return f"{counts['flagged'].get('cord_fragmented', 0)} of {counts['n']}"


def _cell_summary(summary: dict | None, digits: int = 3) -> str:
    if not summary or summary.get("mean") is None:
        return "-"
    return f"{summary['mean']:.{digits}f} (n {summary['n']})"


def _cell_outside(section: dict) -> str:
    outside = section.get("segmentation", {}).get("outside_cord")
    if not outside or outside["share"] is None:
        return "-"
    return f"{100 * outside['share']:.2f}% ({outside['outside_mm3']:.0f} of {outside['predicted_mm3']:.0f} mm3)"


def _cell_volume_ratio(section: dict) -> str:
    volumes = section.get("segmentation", {}).get("lesion_volume_ratio")
    if not volumes or volumes["ratio"] is None:
        return "-"
    return f"{volumes['ratio']:.2f} ({volumes['predicted_mm3']:.0f} / {volumes['true_mm3']:.0f} mm3)"


def _cell_classifier(section: dict, role: str) -> str:
    model = section.get("classifiers", {}).get(role, {}).get("all", {}).get("model")
    if not model:
        return "-"
    return f"{_fmt_value(model['accuracy'])} / {_fmt_value(model['auc'])}"


def _cell_ece(section: dict, role: str) -> str:
    ece = section.get("classifiers", {}).get(role, {}).get("all", {}).get("ece")
    if not ece:
        return "-"
    if ece["after"] is None:
        return f"{ece['before']:.3f} / uncalibrated"
    floor = (ece.get("if_calibrated") or {}).get("after")
    return f"{ece['before']:.3f} / {ece['after']:.3f}" + ("" if floor is None else f" ({_floor(floor)})")


#: What the bracket after each ECE means (once per report).
ECE_NOTE = ("ECE in brackets, 'calibrated: median, up to p95': the expected calibration error that "
            "perfectly calibrated probabilities would show on the same subjects (labels drawn from "
            "the probabilities). On a few dozen subjects it is far from 0; an observed ECE below "
            "its p95 is consistent with calibration at this size.")


def _floor(floor: dict) -> str:
    """'calibrated: 0.07, up to 0.11': the ECE that calibrated probabilities would show here."""
    return f"calibrated: {floor['median']:.2f}, up to {floor['p95']:.2f}"


def _fmt_value(estimate: dict) -> str:
    return "n/a" if estimate.get("value") is None else f"{estimate['value']:.2f}"


def comparison_table(sets: dict[str, dict]) -> list[str]:
    """Markdown lines of the table with one column per set and one row per figure ("-" where a
    figure does not apply to a set)."""
    def seg(key, sub=None):
        def cell(section):
            data = section.get("segmentation", {}).get(key)
            return _cell_summary(data.get(sub) if sub and data else data)
        return cell

    def healthy(key, fmt):
        def cell(section):
            value = section.get("healthy", {}).get(key)
            return "-" if value is None else fmt(value)
        return cell

    def cord(section):
        data = section.get("segmentation", section.get("healthy", {})).get("cord_dice")
        return _cell_summary(data)

    def four(section):
        value = section.get("four_class", {}).get("accuracy")
        return "-" if value is None else f"{value:.2f} (n {section['four_class']['n']})"

    rows = [("subjects (processed / total)", lambda s: f"{s['subjects']['ok']} / {s['subjects']['total']}")]
    rows += [(f"lesion Dice, {name}", seg("lesion_dice", name)) for name in CLASSES]
    rows += [("lesion Dice, tumours", seg("lesion_dice_tumor")),
             ("lesion Dice, demyelinating", seg("lesion_dice_demyelinating")),
             ("lesion Dice, all", seg("lesion_dice_all")),
             ("lesion detection rate", lambda s: "-" if s.get("segmentation", {}).get("lesion_detection_rate") is None
              else f"{s['segmentation']['lesion_detection_rate']:.2f}"),
             ("predicted / true lesion volume", _cell_volume_ratio),
             (f"predicted lesion volume outside the cord + {CORD_MARGIN_MM:g} mm", _cell_outside),
             ("false-positive lesion volume per scan, mm3 (mean)",
              healthy("false_positive_mm3", lambda v: _cell_summary(v, 1))),
             ("false-positive lesion volume, largest scan, mm3", healthy("false_positive_mm3_max", lambda v: f"{v:.1f}")),
             ("cord Dice", cord),
             ("scans flagged cord_fragmented (trust check)", _cell_fragmented)]
    rows += [(f"{role}: accuracy / AUC", lambda s, role=role: _cell_classifier(s, role)) for role in ROLE_CLASSES]
    rows += [(f"{role}: ECE before / after calibration", lambda s, role=role: _cell_ece(s, role))
             for role in ROLE_CLASSES]
    rows += [("four-class accuracy", four)]
    lines = ["| | " + " | ".join(SET_LABELS.get(name, name) for name in sets) + " |",
             "| --- |" + " --- |" * len(sets)]
    for title, cell in rows:
        lines.append(f"| {title} | " + " | ".join(cell(section) for section in sets.values()) + " |")
    return lines


def _head_markdown(data: dict) -> list[str]:
    """The side-by-side table (DenseNet alone, morphometry alone, fused) and the calibration line."""
    side, ece = data.get("side_by_side"), data.get("ece")
    if not side:
        return []
    lines = ["| | DenseNet121 alone | morphometry alone | fused |", "| --- | --- | --- | --- |"]
    for name in SIDE_BY_SIDE_METRICS:
        cells = [_fmt((side.get(kind) or {}).get(name)) if side.get(kind) else "-"
                 for kind in ("densenet", "baseline", "fused")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    floors = ece.get("if_calibrated") or {}

    def with_floor(name):
        value = ece[name]
        return f"{value}" + ("" if floors.get(name) is None else f" ({_floor(floors[name])})")

    after = "uncalibrated" if ece["after"] is None else with_floor("after")
    fused = "" if ece["fused"] is None else f", fused {with_floor('fused')}"
    return lines + ["", f"ECE before calibration {with_floor('before')}, after {after}{fused}", ""]


def _t2w_only_markdown(comparison: dict) -> list[str]:
    """One table per classifier, and one for the four classes: cT1w-aware beside T2w-only."""
    def ece(figures):
        return "n/a" if figures is None else f"{figures['ece']:.3f}"

    def accuracy(four):
        return "n/a" if four["accuracy"] is None else f"{four['accuracy']:.2f} (n {four['n']})"

    lines = ["### cT1w-aware vs T2w-only classifiers (same lesion masks)", "",
             f"{comparison['n']} subjects with a cT1w image, decided by the cT1w-aware variants and also classified "
             "by the T2w-only classifiers (95% bootstrap CI).", ""]
    header = ["| | cT1w-aware | T2w-only |", "| --- | --- | --- |"]
    for role, entry in comparison["classifiers"].items():
        lines += [f"#### {role}, cT1w-aware vs T2w-only (n = {entry['n']})", ""]
        if entry["t1c"] is None and entry["t2w_only"] is None:
            lines += ["not enough subjects of both classes", ""]
            continue
        lines += header
        for name in SIDE_BY_SIDE_METRICS:
            lines.append(f"| {name} | " + " | ".join(_fmt((entry[kind] or {}).get(name))
                                                    for kind in ("t1c", "t2w_only")) + " |")
        lines += [f"| ece | {ece(entry['t1c'])} | {ece(entry['t2w_only'])} |", ""]
    four = comparison["four_class"]
    return lines + header + [f"| four-class accuracy | {accuracy(four['t1c'])} | {accuracy(four['t2w_only'])} |", ""]


def _healthy_markdown(healthy: dict) -> list[str]:
    fp = healthy["false_positive_mm3"]
    return [f"False-positive lesion volume per scan: mean {fp['mean']} mm3, largest "
            f"{healthy['false_positive_mm3_max']} mm3 (n {fp['n']}); scans with a predicted lesion: "
            f"{healthy['scans_with_false_positive']}, with a diagnosis: {healthy['scans_with_diagnosis']}; "
            f"cord Dice {_cell_summary(healthy['cord_dice'])}.", ""]


def _lesion_set_markdown(report: dict) -> list[str]:
    lines = []
    seg = report["segmentation"]
    lines += ["### Segmentation", "", "| | Dice mean | SD | n |", "| --- | --- | --- | --- |"]
    for name, s in list(seg["lesion_dice"].items()) + [("tumour (all)", seg["lesion_dice_tumor"]),
                                                        ("demyelinating (all)", seg["lesion_dice_demyelinating"]),
                                                        ("cord", seg["cord_dice"])]:
        lines.append(f"| {name} | {s['mean'] if s['mean'] is not None else 'n/a'} | "
                     f"{s['sd'] if s['sd'] is not None else 'n/a'} | {s['n']} |")
    lines += ["", f"Lesion detection rate: {seg['lesion_detection_rate']}; predicted lesion volume outside the "
                  f"true cord dilated by {CORD_MARGIN_MM:g} mm: {_cell_outside(report)}", ""]
    lines += ["### Classifiers (95% bootstrap CI)", "", ECE_NOTE, ""]
    for role, entry in report["classifiers"].items():
        lines += [f"#### {role} (positive class: {entry['positive_class']}; n = {entry['n']}, "
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
            lines += _head_markdown(data)
    if "t2w_only_comparison" in report:
        lines += _t2w_only_markdown(report["t2w_only_comparison"])
    four = report["four_class"]
    lines += ["### Four classes", "", f"accuracy {four['accuracy']} (n = {four['n']})", "",
              "| truth \\ predicted | " + " | ".join(four["classes"]) + " |",
              "| --- |" + " --- |" * len(four["classes"])]
    for name, row in zip(four["classes"], four["confusion"]):
        lines.append(f"| {name} | " + " | ".join(map(str, row)) + " |")
    return lines + [""]
