"""``sct_lesion_classify calibrate``: refit the classifiers' decision heads on segmented masks.

Runs the pipeline (the lesion model and the cord localizer) on the validation split of labelled
BIDS datasets and refits, for each classifier package in --models (and each cT1w-aware variant,
on the subjects with a cT1w), the temperature scaling and the fusion with morphometry on the
network probabilities and the morphometry of the segmented masks, as a user who lets the pipeline
segment gets them. 'train' fits them on the manual masks; run this after it when the classifiers
will mostly see automatic masks. Each card is rewritten in place (the ONNX network is not
touched); its metrics.decision_head gives the figures on these patients.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from sct_lesion_classify.cli.frame import SCTArgumentParser, probability, run_command

PROG = "sct_lesion_classify calibrate"


def get_parser() -> SCTArgumentParser:
    """The subcommand's parser."""
    parser = SCTArgumentParser(prog=PROG, description=__doc__.split("\n\n")[1].replace("\n", " "))
    parser.mandatory.add_argument("--bids", "-bids", metavar="<folder>", required=True, nargs="+",
                                  help="The BIDS dataset(s) the classifiers were trained on; their "
                                       "validation split is used, split as 'train' splits it.")
    parser.mandatory.add_argument("--models", "-models", metavar="<folder>", required=True,
                                  help="Folder of model packages (the output of 'train'): the cards of its "
                                       "classifiers are rewritten. Its cord localizer and lesion model "
                                       "segment when it has them, else the installed ones.")
    parser.optional.add_argument("-o", metavar="<folder>", default=None,
                                 help="Keep the segmented masks of the validation subjects in this folder "
                                      "(default: a temporary folder, removed).")
    parser.optional.add_argument("--val-fraction", type=probability, default=0.2,
                                 help="As for 'train': validation share per diagnosis for subjects without a "
                                      "split in participants.tsv (default 0.2).")
    parser.optional.add_argument("--ignore-split-column", action="store_true",
                                 help="As for 'train': split every non-test subject deterministically.")
    parser.optional.add_argument("--seed", type=int, default=0,
                                 help="As for 'train': the seed of the deterministic split (default 0).")
    parser.optional.add_argument("--bump-version", choices=("major", "minor", "patch"), default=None,
                                 action="append",
                                 help="Increase the version of each rewritten card (patch: 2.0.0 -> 2.0.1). "
                                      "The refitted heads change the probabilities, so cards that are "
                                      "shared or bundled need a new version. Given more than once, the "
                                      "increases apply in turn (patch twice: 2.0.0 -> 2.0.2), so a script "
                                      "that refits once can reproduce a card whose heads were refitted "
                                      "again after a segmentation model changed. Default: versions kept.")
    parser.add_misc_args(remove_temp=False)
    return parser


def bumped(version: str, part: str) -> str:
    """``version`` (semantic, ``x.y.z[-pre][+build]``) with ``part`` increased and the parts after
    it reset: ``bumped("2.1.0", "patch") == "2.1.1"``, ``bumped("2.1.3-rc1", "minor") == "2.2.0"``."""
    major, minor, patch = (int(n) for n in version.split("+")[0].split("-")[0].split("."))
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand; returns the exit code."""
    return run_command(get_parser(), argv, _run)


def _run(args: argparse.Namespace) -> int:
    import logging
    import tempfile
    from pathlib import Path

    from tqdm import tqdm

    from sct_lesion_classify.errors import InputError
    from sct_lesion_classify.io.atomic import write_json_atomic
    from sct_lesion_classify.modelpkg.card import ModelCard
    from sct_lesion_classify.modelpkg.registry import bundled_names
    from sct_lesion_classify.pipeline.classification import ClassificationModels
    from sct_lesion_classify.pipeline.models import select_models
    from sct_lesion_classify.train.data import split_datasets
    from sct_lesion_classify.train.decision_refit import fitted_on_text, refit_card, score_subjects

    log = logging.getLogger("sct_lesion_classify")
    models_dir = Path(args.models)
    names = bundled_names(models_dir)
    if not names:
        raise InputError(f"{models_dir}: no model package (<name>/<name>.json and <name>.onnx)")
    datasets = [Path(folder) for folder in args.bids]
    for bids in datasets:
        if not (bids / "participants.tsv").is_file():
            raise InputError(f"{bids}: not a BIDS dataset with participants.tsv")
    _, split = split_datasets(datasets, args.val_fraction, args.seed, use_split_column=not args.ignore_split_column)
    subjects = [s for s in split.val if s.diagnosis is not None]
    if not subjects:
        raise InputError(f"no validation subjects with a diagnosis in {' '.join(args.bids)}")
    selection = select_models([models_dir / name for name in names], segment=True, cord_localizer=True,
                              t1c=any(s.t1c is not None for s in subjects))
    mine = {package.name: package for package in (*selection.classifiers.values(),
                                                   *selection.t1c_classifiers.values())
            if package.folder.resolve().parent == models_dir.resolve()}
    if not mine:
        raise InputError(f"{models_dir}: no classifier package to calibrate")
    models = ClassificationModels.load(selection)

    with tempfile.TemporaryDirectory(prefix="sct_lesion_classify_calibrate_") as scratch:
        work = Path(args.o) if args.o else Path(scratch)
        bar = tqdm(total=len(subjects), desc="calibrate", unit="subject", disable=args.v == 0)
        scores = score_subjects(subjects, models, work, progress=lambda subject: bar.update(1))
        bar.close()

    refitted = 0
    for name, package in mine.items():
        patients = scores.get(name, [])
        fitted_on = fitted_on_text(len(patients), selection.segmentation)
        card = refit_card(package.card, patients, fitted_on) if patients else None
        if card is None:
            log.warning("%s: not calibrated (%d validation patients)", name, len(patients))
            continue
        document = card.to_json()
        for part in args.bump_version or ():
            document["version"] = bumped(document["version"], part)
        ModelCard.from_json(document, source=package.card_path)  # schema and consistency checks
        write_json_atomic(package.card_path, document)
        refitted += 1
        head = card.metrics["decision_head"]
        log.info("%s: T = %.3g; ECE %.3f -> %.3f; %s (%s)", name, card.decision.calibration.temperature,
                 head["patient_ece"], head.get("patient_ece_calibrated", float("nan")),
                 "fused AUC %.3f, accuracy %.3f" % (head["fused_patient_auc"] or float("nan"),
                                                    head["fused_patient_accuracy"])
                 if card.fusion is not None else "no fusion", fitted_on)
    return 0 if refitted == len(mine) else 1
