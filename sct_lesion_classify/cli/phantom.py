"""``sct_lesion_classify phantom``: write a synthetic BIDS dataset of sagittal T2w spine MRI."""

from __future__ import annotations

import argparse
from typing import Sequence

from sct_lesion_classify.cli.frame import SCTArgumentParser, positive_int, run_command

PROG = "sct_lesion_classify phantom"
#: Styles of ``phantom.style.STYLES`` (repeated here: the parser imports nothing heavy).
STYLES = ("realistic", "randomised", "shifted")


def shape_argument(text: str) -> tuple[int, int, int]:
    """``argparse`` type: ``APxSIxRL`` (e.g. ``512x512x15``) -> canonical (RL, AP, SI)."""
    parts = text.lower().split("x")
    try:
        ap, si, rl = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected APxSIxRL such as 512x512x15, got {text!r}") from None
    if min(ap, si) < 32 or rl < 3 or max(ap, si) > 1024 or rl > 64:
        raise argparse.ArgumentTypeError(
            f"sizes out of range in {text!r}: in-plane 32-1024, slices 3-64")
    return (rl, ap, si)


def get_parser() -> SCTArgumentParser:
    parser = SCTArgumentParser(
        prog=PROG,
        description="Generate a synthetic BIDS dataset of sagittal T2w spine MRI with intramedullary "
                    "lesions (astrocytoma, ependymoma, MS, NMOSD), ground-truth cord and lesion masks "
                    "in derivatives/labels and participants.tsv (diagnosis, age, sex, difficult, "
                    "split, style). Deterministic for a given seed.")
    parser.mandatory.add_argument("-o", metavar="<folder>", required=True,
                                  help="Output folder (new or empty).")
    parser.optional.add_argument("-n", metavar="<int>", type=positive_int, default=8,
                                 help="Number of subjects (classes balanced in blocks of 4). Default: 8.")
    parser.optional.add_argument("--seed", metavar="<int>", type=int, default=0,
                                 help="Random seed; subject k depends only on (seed, k). Default: 0.")
    parser.optional.add_argument("--with-t1c", action="store_true",
                                 help="Also write a contrast-enhanced T1w (sub-XX_ce-gad_T1w.nii.gz).")
    parser.optional.add_argument("--shape", metavar="<APxSIxRL>", type=shape_argument, default=None,
                                 help="Matrix of every subject, e.g. 512x512x15 (in-plane A-P, in-plane "
                                      "S-I, number of sagittal slices); the field of view stays "
                                      "realistic (240-320 mm S-I), or with a random style follows "
                                      "from the drawn voxel size. Default: sampled per subject.")
    parser.optional.add_argument("--split", choices=("auto", "train", "val", "test"), default="auto",
                                 help="auto: 70/15/15 train/val/test per subject; or mark every "
                                      "subject with one split. Default: auto.")
    parser.optional.add_argument("--jobs", "-j", metavar="<int>", type=positive_int, default=1,
                                 help="Worker processes generating subjects in parallel; the dataset is "
                                      "the same for any number. Default: 1.")
    parser.optional.add_argument("--style", choices=STYLES, default="realistic",
                                 help="realistic: a clinical sagittal T2w protocol. randomised: "
                                      "contrast, resolution (0.3-1.2 mm in-plane, 0.8-4 mm slices, "
                                      "3D isotropic), field of view, tilt, curvature, artefacts and "
                                      "lesion look-alikes drawn at random per subject (training data). "
                                      "shifted: a family randomised never draws (1.7-2.3 mm slices, "
                                      "8-12 deg coronal tilt, CSF darker than the cord), for evaluation "
                                      "only. randomised and shifted need MONAI and PyTorch. "
                                      "Default: realistic.")
    parser.add_misc_args(remove_temp=False)
    return parser


def _body(args: argparse.Namespace) -> int:
    import logging
    import sys
    from pathlib import Path

    from tqdm import tqdm

    from sct_lesion_classify.phantom.artefacts import require_monai
    from sct_lesion_classify.phantom.dataset import write_dataset

    if args.style != "realistic":
        require_monai(args.style)  # before the progress bar: the error stays one line
    logger = logging.getLogger("sct_lesion_classify")
    with tqdm(total=args.n, desc="phantom", unit="subject", file=sys.stderr,
              disable=args.v == 0) as bar:
        subjects = write_dataset(Path(args.o), args.n, args.seed, with_t1c=args.with_t1c,
                                 shape=args.shape, split=args.split, style=args.style,
                                 jobs=args.jobs, progress=bar.update)
    logger.info("Wrote %d subjects to %s", len(subjects), args.o)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(get_parser(), argv, _body)
