"""``sct_lesion_classify insert-lesions``: synthetic lesions painted inside the cord of real healthy scans."""

from __future__ import annotations

import argparse
from typing import Sequence

from sct_lesion_classify.cli.frame import SCTArgumentParser, positive_float, positive_int, run_command

PROG = "sct_lesion_classify insert-lesions"
CLASSES = ("astrocytoma", "ependymoma", "MS", "NMOSD")  # io.bids.DIAGNOSES (not imported: -h stays light)


def get_parser() -> SCTArgumentParser:
    parser = SCTArgumentParser(
        prog=PROG,
        description="Paint synthetic intramedullary lesions (astrocytoma, ependymoma, MS, NMOSD) inside "
                    "the cord of real healthy T2w scans and write a BIDS dataset that 'train', "
                    "'evaluate' and 'batch' read: the images on their own grid, the truth lesion masks "
                    "and the cord masks in derivatives/labels, participants.tsv (diagnosis, age, sex, "
                    "difficult, split, source_image, style). Lesion sizes, counts, extents, positions "
                    "and T2 signal follow the phantoms' class statistics (Zhuo et al. 2022, Table 1); "
                    "the signal is set from the cord's own intensity in each image and the image's "
                    "noise level is kept. Deterministic for a given seed; inputs are only read.")
    source = parser.mandatory.add_mutually_exclusive_group(required=True)
    source.add_argument("-i", metavar="<file>", default=None,
                        help="A healthy T2w image (NIfTI); needs -s.")
    source.add_argument("--bids", "-bids", metavar="<folder>", default=None,
                        help="A BIDS dataset of healthy controls; each subject with a cord mask "
                             "(derivatives/labels/sub-XX/anat/sub-XX_T2w_seg-manual.nii.gz) is used.")
    parser.mandatory.add_argument("-o", metavar="<folder>", required=True,
                                  help="Output BIDS dataset folder (new or empty).")
    opt = parser.optional
    opt.add_argument("-s", metavar="<file>", default=None,
                     help="Cord mask of -i on its grid (e.g. the '_seg' output of 'sct_deepseg "
                          "spinalcord'). Lesions are painted only inside it.")
    opt.add_argument("-n", metavar="<int>", type=positive_int, default=4,
                     help="Cases per input scan. Default: 4.")
    opt.add_argument("--classes", "-classes", metavar="<class>", nargs="+", choices=CLASSES,
                     default=list(CLASSES),
                     help=f"Diagnoses, cycled over the cases in this order ({', '.join(CLASSES)}). "
                          "Default: all four.")
    opt.add_argument("--seed", metavar="<int>", type=int, default=0,
                     help="Random seed; case k of input j depends only on (seed, j, k). Default: 0.")
    opt.add_argument("--split", choices=("auto", "train", "val", "test"), default="auto",
                     help="auto: 70/15/15 train/val/test drawn per input scan (all cases of one scan "
                          "share it); or mark every case with one split. Default: auto.")
    opt.add_argument("--segment-mm", metavar="<float>", type=positive_float, default=17.5,
                     help="Height of one vertebral segment (body and disc) in mm, to turn the class's "
                          "extent in segments into a length along the cord. Default: 17.5 (adult "
                          "cervical); about 22-25 for thoracic scans.")
    opt.add_argument("--allow-partial", action="store_true",
                     help="Let a lesion longer than the cord in the image run out of it at either end, "
                          "as in a cropped scan (its truth mask is the part inside). Without it such a "
                          "case is refused before anything is written.")
    parser.add_misc_args(remove_temp=False)
    return parser


def _body(args: argparse.Namespace) -> int:
    import logging
    import sys
    from pathlib import Path

    from tqdm import tqdm

    from sct_lesion_classify.errors import InputError
    from sct_lesion_classify.insertion.dataset import plan_insertion, write_insertion_dataset
    from sct_lesion_classify.io.bids import check_output_folder
    from sct_lesion_classify.insertion.sources import scan_from_files, scans_from_bids

    input_root = Path(args.bids) if args.bids else None
    if args.i is not None:
        if args.s is None:
            raise InputError("-i needs its cord mask: add -s <file>")
        scans = [scan_from_files(args.i, args.s)]
    else:
        if args.s is not None:
            raise InputError("-s goes with -i; with --bids the cord masks come from derivatives/labels")
        scans = scans_from_bids(input_root)
    check_output_folder(Path(args.o), input_root)
    plan = plan_insertion(scans, cases_per_scan=args.n, seed=args.seed, classes=args.classes,
                          split=args.split, segment_mm=args.segment_mm,
                          allow_partial=args.allow_partial)
    with tqdm(total=plan.n_cases, desc="insert-lesions", unit="case", file=sys.stderr,
              disable=args.v == 0) as bar:
        subjects = write_insertion_dataset(Path(args.o), plan, input_root=input_root,
                                           progress=bar.update)
    logging.getLogger("sct_lesion_classify").info("Wrote %d cases from %d scan(s) to %s",
                                                  len(subjects), len(scans), args.o)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(get_parser(), argv, _body)
