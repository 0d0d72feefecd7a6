"""``sct_lesion_classify train``: train one model family on a labelled BIDS dataset.

Families: ``cord`` (2D U-Net cord localizer), ``lesion`` (2D MultiResUNet), and the classifiers
``tumor_vs_demyelinating``, ``astrocytoma_vs_ependymoma``, ``ms_vs_nmosd`` (DenseNet121; add
``--with-t1c`` for the variant that uses the contrast-enhanced T1w). Writes the model package
``<-o>/<name>/`` (``<name>.onnx``, the model card ``<name>.json`` and ``<name>_training_log.csv``);
checkpoints stay in ``<-o>/.train_runs/<name>/`` for ``--resume``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Sequence

from sct_lesion_classify.cli.frame import (
    SCTArgumentParser, positive_float, positive_int, probability, run_command,
)

PROG = "sct_lesion_classify train"

#: Family names, kept here (not imported from train.recipes) so that -h needs no torch.
FAMILIES = ("cord", "lesion", "tumor_vs_demyelinating", "astrocytoma_vs_ependymoma", "ms_vs_nmosd")


def _semver(text: str) -> str:
    import re

    if not re.fullmatch(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?", text):
        raise argparse.ArgumentTypeError(f"not a semantic version X.Y.Z: {text!r}")
    return text


def get_parser() -> SCTArgumentParser:
    """The subcommand's parser."""
    parser = SCTArgumentParser(prog=PROG, description=__doc__.split("\n\n")[1].replace("\n", " "))
    parser.mandatory.add_argument("family", choices=FAMILIES,
                                  help="Model family to train: " + ", ".join(FAMILIES) + ".")
    parser.mandatory.add_argument("--bids", "-bids", metavar="<folder>", required=True, nargs="+",
                                  help="BIDS dataset with manual labels and participants.tsv (SPEC "
                                       "section 6). Several datasets are trained on together, each "
                                       "split on its own (e.g. phantoms of the realistic and the "
                                       "randomised style).")
    parser.mandatory.add_argument("-o", metavar="<folder>", required=True,
                                  help="Models folder: the package is written to <folder>/<name>/.")
    parser.optional.add_argument("--epochs", type=positive_int, default=None,
                                 help="Maximum number of epochs (default: the family's).")
    parser.optional.add_argument("--steps-per-epoch", type=positive_int, default=None,
                                 help="Training batches per epoch (default: the family's).")
    parser.optional.add_argument("--batch-size", type=positive_int, default=None,
                                 help="Samples per batch (default: the family's; classifiers draw "
                                      "equal halves per class).")
    parser.optional.add_argument("--lr", type=positive_float, default=None,
                                 help="Initial Adam learning rate (default: the family's); reduced "
                                      "on validation plateaus.")
    parser.optional.add_argument("--patience", type=positive_int, default=None,
                                 help="Early stopping: epochs without validation improvement "
                                      "(default: the family's).")
    parser.optional.add_argument("--seed", type=int, default=0, help="Random seed (default 0).")
    parser.optional.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                                 help="Training device (default cpu).")
    parser.optional.add_argument("--resume", action="store_true",
                                 help="Continue the run saved in <folder>/.train_runs/<name>/.")
    parser.optional.add_argument("--with-t1c", action="store_true",
                                 help="Classifiers: train the variant whose first channel is the "
                                      "contrast-enhanced T1w (sub-XX_ce-gad_T1w.nii.gz).")
    parser.optional.add_argument("--input-contract", choices=("lesion_roi", "whole_slice"),
                                 default=None,
                                 help="Classifiers: what the network sees of each lesion slice. "
                                      "lesion_roi: 64 x 192 pixels of 1.25 mm (80 x 240 mm, A-P x "
                                      "S-I) centred on the lesion; whole_slice: the whole slice "
                                      "padded to a square and resized to 256 x 256 (Zhuo et al. "
                                      "2022; 5.3 times the FLOPs). The model card records it and "
                                      "inference follows the card. Default: lesion_roi.")
    parser.optional.add_argument("--grid-mm", type=positive_float, default=None,
                                 help="Lesion model: in-plane spacing of the model grid in mm "
                                      "(default: the recipe's); the training patches keep their "
                                      "extent in mm. The model card records it and inference follows "
                                      "the card.")
    parser.optional.add_argument("--base-filters", type=positive_int, default=None,
                                 help="Lesion model: filters of the MultiResUNet's first level "
                                      "(doubling at each of its 5 levels; default: the recipe's). "
                                      "The cost per pixel grows as its square.")
    parser.optional.add_argument("--neighbour-slices", type=int, default=None, metavar="<int>",
                                 help="Cord localizer and lesion model: sagittal neighbours on each side "
                                      "of a slice that the network also sees, as further input "
                                      "channels (2.5D; default 0: one slice), meant to let it tell a "
                                      "lateral slice that cuts the edge of the cord from its middle. "
                                      "A neighbour is one slice away, whatever the slice thickness. "
                                      "The model card lists the channels and inference follows the "
                                      "card.")
    parser.optional.add_argument("--intensity-curve", type=probability, default=None, metavar="<prob>",
                                 help="Probability that a training sample passes through a random, "
                                      "not necessarily increasing, intensity curve before the other "
                                      "intensity augmentations: tissues keep their boundaries and "
                                      "swap brightness at random (CSF darker than the cord, dark "
                                      "fat), so that no contrast is a shortcut (default 0). The model "
                                      "card records it.")
    parser.optional.add_argument("--paint-lesions", type=probability, default=None, metavar="<prob>",
                                 help="Cord localizer: probability that a training sample gets one to "
                                      "three synthetic lesions (bright, or dark like a haemosiderin "
                                      "cap) painted inside its cord label, which stays cord, so that "
                                      "an intramedullary lesion of any look is kept in the cord "
                                      "(default 0). The model card records it.")
    parser.optional.add_argument("--loss", choices=("dice_bce", "bce"), default=None,
                                 help="Segmentation families: the training loss. dice_bce: soft Dice "
                                      "+ binary cross-entropy (the default); bce: cross-entropy "
                                      "alone, whose probabilities are calibrated, so thresholding at "
                                      "0.5 does not widen a structure by its uncertain rim as a soft "
                                      "Dice term does. The model card records it.")
    parser.optional.add_argument("--init-from", metavar="<file|folder>", default=None,
                                 help="Start from these weights instead of a random initialization: "
                                      "a checkpoint (best.pt or last.pt of an earlier run of the same "
                                      "family, in <folder>/.train_runs/<name>/) or a model package "
                                      "folder of the same family (e.g. a bundled model, "
                                      "models/<name>/: its ONNX weights, checked against the card's "
                                      "sha256). Fine-tuning, with a new optimizer and schedule. The "
                                      "model card records where they came from and their sha256.")
    parser.optional.add_argument("--no-input-cache", action="store_true",
                                 help="Classifiers: rebuild the model inputs from the images instead "
                                      "of keeping them in <folder>/.train_runs/inputs/ (reused by "
                                      "the other classifiers and by --resume).")
    parser.optional.add_argument("--prepare-inputs", action="store_true",
                                 help="Classifiers: build the model inputs into the input cache and "
                                      "stop, without training. The classifiers of one input contract "
                                      "(and cT1w or not) share their inputs, so the families can then "
                                      "train side by side from the cache.")
    parser.optional.add_argument("--val-fraction", type=probability, default=0.2,
                                 help="Validation share per diagnosis for subjects without a split in "
                                      "participants.tsv (default 0.2, the paper's 80/20).")
    parser.optional.add_argument("--ignore-split-column", action="store_true",
                                 help="Split every non-test subject deterministically (per patient, "
                                      "stratified by diagnosis) instead of using participants.tsv's "
                                      "train/val labels.")
    parser.optional.add_argument("--workers", type=int, default=0,
                                 help="Data-loader worker processes (default 0: in the main process).")
    parser.optional.add_argument("--threads", type=positive_int, default=None,
                                 help="PyTorch CPU threads (default: PyTorch's choice).")
    parser.optional.add_argument("--no-bf16", action="store_true",
                                 help="Train in float32 on the CPU even where the family uses bf16 autocast.")
    parser.optional.add_argument("--version", type=_semver, default="0.1.0",
                                 help="Semantic version written in the model card (default 0.1.0).")
    parser.add_misc_args(remove_temp=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(get_parser(), argv, lambda args: _run(args, argv))


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    import logging
    from pathlib import Path

    from sct_lesion_classify.errors import InputError, require_training_extras

    if args.workers < 0:
        raise InputError(f"--workers must be >= 0, got {args.workers}")
    datasets = tuple(Path(path) for path in args.bids)
    for bids in datasets:
        if not (bids / "participants.tsv").is_file():
            raise InputError(f"{bids}: not a BIDS dataset with participants.tsv")
    from sct_lesion_classify.train.family import TrainOptions, train_family
    from sct_lesion_classify.train.recipes import RECIPES

    recipe = RECIPES[args.family]  # a classifier's default contract is the recipe's (lesion_roi)
    if args.input_contract is not None:
        recipe = recipe.with_input_contract(args.input_contract)  # an InputError for the segmentation families
    if args.with_t1c:
        recipe = recipe.t1c_variant()  # an InputError for the segmentation families
    recipe = recipe.with_grid(args.grid_mm, args.base_filters)  # an InputError but for the lesion model
    recipe = recipe.with_loss(args.loss)  # an InputError for the classifiers
    recipe = recipe.with_neighbour_slices(args.neighbour_slices)  # an InputError for the classifiers
    recipe = recipe.with_intensity_curve(args.intensity_curve)
    recipe = recipe.with_painted_lesions(args.paint_lesions)  # an InputError but for the cord localizer
    require_training_extras("train")  # after the options, so that a wrong option is named first
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    init_from = None if args.init_from is None else Path(args.init_from)
    if init_from is not None and not (init_from.is_file() or init_from.is_dir()):
        raise InputError(f"--init-from {init_from}: no such file or folder")
    models_dir = Path(args.o)
    models_dir.mkdir(parents=True, exist_ok=True)
    options = TrainOptions(
        bids=datasets if len(datasets) > 1 else datasets[0], models_dir=models_dir,
        epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size, lr=args.lr, patience=args.patience, seed=args.seed,
        device=args.device, resume=args.resume, val_fraction=args.val_fraction,
        use_split_column=not args.ignore_split_column, workers=args.workers, version=args.version,
        command=" ".join(["sct_lesion_classify", "train"] + [shlex.quote(a) for a in argv]),
        progress=args.v >= 1 and sys.stderr.isatty(), bf16=False if args.no_bf16 else None,
        cache_inputs=not args.no_input_cache, init_from=init_from)
    if args.prepare_inputs:
        from sct_lesion_classify.train.family import prepare_inputs

        count = prepare_inputs(recipe, options)
        logging.getLogger("sct_lesion_classify").info(
            "model inputs of %d subjects in %s", count, models_dir / ".train_runs" / "inputs")
        return 0
    outcome = train_family(recipe, options)
    logging.getLogger("sct_lesion_classify").info("model package: %s", outcome.package_dir)
    return 0
