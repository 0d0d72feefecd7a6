"""``sct_lesion_classify evaluate``: the pipeline on held-out BIDS sets, against their manual labels.

Every subject of the split goes through the code of ``sct_classify_lesion`` (segmentation
included, unless ``--use-manual-lesion``); the report gives Dice per diagnosis, cord Dice, the
lesion detection rate, the share of predicted lesion volume outside the true cord dilated by 2 mm,
the paper's Table 2 metrics with 95% bootstrap intervals for each classifier (all subjects and
``difficult == 1``) beside a morphometry-only logistic baseline, calibration, ROC curves and
confusion matrices (PNG), as JSON and Markdown. Optional sets of held-out-style phantoms
(--shifted), lesions inserted into real scans (--real-background) and untouched healthy real scans
(--real-healthy: false-positive lesion volume) are reported beside it, so the drop in transfer is
visible. A set holding training subjects is refused. Subjects with a cT1w image (ce-gad_T1w) are
decided, as by sct_classify_lesion, by the installed cT1w-aware variants (*_t1c packages); the
T2w-only classifiers then also classify them on the same lesion masks (no second segmentation)
and the report gives both side by side (accuracy, AUC, ECE, four-class accuracy).
"""

from __future__ import annotations

import argparse
from typing import Sequence

from sct_lesion_classify.cli.frame import SCTArgumentParser, positive_int, run_command

PROG = "sct_lesion_classify evaluate"
#: The optional held-out sets reported beside --bids (train.evaluation.sets): option, help.
_TRANSFER_SETS = (
    ("--shifted", "BIDS dataset of phantoms in a style training never used (e.g. 'phantom --style shifted'); "
                  "refused when its style is realistic or randomised."),
    ("--real-background", "BIDS dataset of lesions inserted into real healthy scans ('insert-lesions')."),
    ("--real-healthy", "BIDS dataset of untouched real scans without lesion: reports the false-positive lesion "
                       "volume per scan, and the cord Dice where a cord mask exists."),
)


def get_parser() -> SCTArgumentParser:
    """The subcommand's parser."""
    parser = SCTArgumentParser(prog=PROG, description=__doc__.split("\n\n")[1].replace("\n", " "))
    parser.mandatory.add_argument("--bids", "-bids", metavar="<folder>", required=True,
                                  help="BIDS dataset with manual labels and participants.tsv (SPEC section 6).")
    parser.mandatory.add_argument("-o", metavar="<folder>", required=True,
                                  help="Output folder: predictions, evaluation.json, evaluation.md and PNG figures.")
    parser.optional.add_argument("--split", "-split", default="test", choices=("train", "val", "test", "all"),
                                 help="Subjects evaluated in each set: participants.tsv's split (default: test); "
                                      "'all' takes every subject; a set whose participants.tsv has no split is "
                                      "taken whole. A set with a subject of the 'train' split is refused.")
    for option, help_text in _TRANSFER_SETS:
        parser.optional.add_argument(option, "-" + option.lstrip("-"), metavar="<folder>", default=None,
                                     help=help_text)
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
    from sct_lesion_classify.io.bids import discover_subjects
    from sct_lesion_classify.modelpkg.registry import bundled_names
    from sct_lesion_classify.pipeline.classification import ClassificationModels
    from sct_lesion_classify.pipeline.models import select_models
    from sct_lesion_classify.train.evaluation import plots
    from sct_lesion_classify.train.evaluation.baseline import LogisticBaseline
    from sct_lesion_classify.train.evaluation.report import build_healthy_section, build_report, combine_sets, write_report
    from sct_lesion_classify.train.evaluation.runner import evaluate_subjects, manual_mask_features
    from sct_lesion_classify.train.evaluation.sets import (IN_DISTRIBUTION, REAL_BACKGROUND, REAL_HEALTHY,
                                                          SHIFTED, select_set)

    log = logging.getLogger("sct_lesion_classify")
    bids = Path(args.bids)
    folders_of_sets = {IN_DISTRIBUTION: args.bids, SHIFTED: args.shifted, REAL_BACKGROUND: args.real_background,
                       REAL_HEALTHY: args.real_healthy}
    # every set is checked before any work
    sets = [select_set(name, Path(folder), args.split) for name, folder in folders_of_sets.items() if folder]
    plots.require_matplotlib()
    folders = list(args.custom_model)
    if args.models:
        folders += [str(Path(args.models) / name) for name in bundled_names(args.models)]
    selection = select_models(folders, segment=True, cord_localizer=True,
                              t1c=any(s.t1c is not None for chosen in sets for s in chosen.subjects))
    models = ClassificationModels.load(selection)
    output = Path(args.o)
    output.mkdir(parents=True, exist_ok=True)

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
    models_text = ", ".join(f"{p.name} {p.version}" for p in selection.packages(with_t1c=False))
    t1c_models_text = ", ".join(f"{p.name} {p.version}" for p in selection.t1c_classifiers.values())

    sections = {}
    for chosen in sets:
        # the in-distribution set keeps the one-set layout (predictions/, PNGs at the top)
        folder = output if chosen.name == IN_DISTRIBUTION else output / chosen.name
        folder.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=len(chosen.subjects), desc=f"evaluate {chosen.name}", unit="subject", disable=args.v == 0)
        records = evaluate_subjects(chosen.subjects, models, folder, use_manual_lesion=args.use_manual_lesion,
                                    progress=lambda record: bar.update(1))
        bar.close()
        description = {"set": chosen.label, "bids": str(chosen.bids), "split": chosen.split,
                       "lesion masks": "manual" if args.use_manual_lesion else "automatic", "models": models_text}
        if any(record.t2w_only is not None for record in records):
            description["cT1w-aware models (subjects with a cT1w)"] = t1c_models_text
        if not chosen.has_lesions:
            sections[chosen.name] = build_healthy_section(records, description=description)
            continue
        description["baseline fitted on"] = f"{len(used)} training subjects (manual masks)"
        sections[chosen.name] = build_report(records, baselines=baselines, description=description,
                                             n_resamples=args.bootstrap, seed=args.seed)
        plots.write_figures(folder, records, baselines, positive_class, sections[chosen.name]["four_class"])
    report = combine_sets(sections)
    json_path, md_path = write_report(report, output)
    log.info("Evaluation report: %s and %s", json_path, md_path)
    return 0 if all(section["subjects"]["ok"] for section in sections.values()) else 1

