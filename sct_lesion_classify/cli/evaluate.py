"""``sct_lesion_classify evaluate``: the pipeline on a BIDS split, against its manual labels.

Every subject of the split goes through the code of ``sct_classify_lesion`` (segmentation
included, unless ``--use-manual-lesion``); the report gives Dice per diagnosis, cord Dice, the
lesion detection rate, the paper's Table 2 metrics with 95% bootstrap intervals for each
classifier (all subjects and ``difficult == 1``) beside a morphometry-only logistic baseline,
calibration, ROC curves and confusion matrices (PNG), as JSON and Markdown.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from sct_lesion_classify.cli.frame import SCTArgumentParser, positive_int, run_command

PROG = "sct_lesion_classify evaluate"


def get_parser() -> SCTArgumentParser:
    """The subcommand's parser."""
    parser = SCTArgumentParser(prog=PROG, description=__doc__.split("\n\n")[1].replace("\n", " "))
    parser.mandatory.add_argument("--bids", "-bids", metavar="<folder>", required=True,
                                  help="BIDS dataset with manual labels and participants.tsv (SPEC section 6).")
    parser.mandatory.add_argument("-o", metavar="<folder>", required=True,
                                  help="Output folder: predictions, evaluation.json, evaluation.md and PNG figures.")
    parser.optional.add_argument("--split", "-split", default="test", choices=("train", "val", "test", "all"),
                                 help="Subjects evaluated: participants.tsv's split (default: test); 'all' "
                                      "takes every subject.")
    parser.optional.add_argument("--models", "-models", metavar="<folder>", default=None,
                                 help="Folder of model packages (e.g. the output of 'train') used instead of "
                                      "the installed ones; each subfolder <name>/ holding <name>.json and <name>.onnx "
                                      "is used for its step.")
    parser.optional.add_argument("-custom-model", metavar="<folder>", action="append", default=[],
                                 help="One model package folder (repeatable), as for the pipeline commands.")
    parser.optional.add_argument("--baseline-bids", metavar="<folder>", default=None,
                                 help="BIDS dataset whose 'train' split fits the morphometry baseline "
                                      "(default: --bids).")
    parser.optional.add_argument("--use-manual-lesion", action="store_true",
                                 help="Classify the manual lesion masks instead of the segmentation's.")
    parser.optional.add_argument("--bootstrap", type=positive_int, default=2000,
                                 help="Bootstrap resamples of the confidence intervals (default 2000).")
    parser.optional.add_argument("--seed", type=int, default=0, help="Seed of the bootstrap (default 0).")
    parser.add_misc_args(remove_temp=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand; returns the exit code."""
    return run_command(get_parser(), argv, _run)


def _run(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from tqdm import tqdm

    from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES, role_label
    from sct_lesion_classify.errors import InputError
    from sct_lesion_classify.io.bids import discover_subjects
    from sct_lesion_classify.modelpkg.registry import bundled_names
    from sct_lesion_classify.pipeline.classification import ClassificationModels
    from sct_lesion_classify.pipeline.models import select_models
    from sct_lesion_classify.train.evaluation import plots
    from sct_lesion_classify.train.evaluation.baseline import LogisticBaseline
    from sct_lesion_classify.train.evaluation.report import build_report, roc_data, write_report
    from sct_lesion_classify.train.evaluation.runner import evaluate_subjects, manual_mask_features

    log = logging.getLogger("sct_lesion_classify")
    bids = Path(args.bids)
    subjects = discover_subjects(bids)
    chosen = [s for s in subjects if args.split == "all" or s.split == args.split]
    if not chosen:
        raise InputError(f"{bids}: no subject in split {args.split!r} ({len(subjects)} subjects in all)")
    missing = [s.participant_id for s in chosen if s.diagnosis is None]
    if missing:
        raise InputError(f"{bids}/participants.tsv: no diagnosis for {', '.join(missing[:5])}")
    folders = list(args.custom_model)
    if args.models:
        folders += [str(Path(args.models) / name) for name in bundled_names(args.models)]
    selection = select_models(folders, segment=True, cord_localizer=True,
                              t1c=any(s.t1c is not None for s in chosen))
    models = ClassificationModels.load(selection)
    output = Path(args.o)
    output.mkdir(parents=True, exist_ok=True)

    bar = tqdm(total=len(chosen), desc="evaluate", unit="subject", disable=args.v == 0)
    records = evaluate_subjects(chosen, models, output, use_manual_lesion=args.use_manual_lesion,
                                progress=lambda record: bar.update(1))
    bar.close()

    baseline_subjects = [s for s in discover_subjects(Path(args.baseline_bids or bids)) if s.split == "train"]
    features, used = manual_mask_features(baseline_subjects)
    baselines = {}
    positive_class = {role: c.package.card.output.positive_class for role, c in models.classifiers.items()}
    for role in ROLE_CLASSES:
        rows = [i for i, s in enumerate(used) if role_label(s.diagnosis, role) is not None]
        labels = [role_label(used[i].diagnosis, role) == positive_class[role] for i in rows]
        if rows and any(labels) and not all(labels):
            baselines[role] = LogisticBaseline.fit(features[rows], labels)
    if not baselines:
        log.warning("no training subjects with both classes: the morphometry baseline is not reported")

    description = {
        "bids": str(bids), "split": args.split, "lesion masks": "manual" if args.use_manual_lesion else "automatic",
        "models": ", ".join(f"{p.name} {p.version}" for p in selection.packages(with_t1c=False)),
        "baseline fitted on": f"{len(used)} training subjects (manual masks)",
    }
    report = build_report(records, baselines=baselines, description=description,
                          n_resamples=args.bootstrap, seed=args.seed)
    json_path, md_path = write_report(report, output)
    for role in ROLE_CLASSES:
        truth, scores, base = roc_data(records, role, baselines.get(role))
        if truth.size and truth.any() and (~truth).any():
            plots.plot_roc(output / f"roc_{role}.png", role, truth, scores, base)
            negative = next(c for c in ROLE_CLASSES[role] if c != positive_class[role])
            plots.plot_confusion(output / f"confusion_{role}.png", role, [negative, positive_class[role]],
                                 plots.binary_confusion(truth, scores))
    four = report["four_class"]
    plots.plot_confusion(output / "confusion_four_class.png", "four classes", four["classes"], four["confusion"])
    log.info("Evaluation report: %s and %s", json_path, md_path)
    return 0 if report["subjects"]["ok"] else 1

