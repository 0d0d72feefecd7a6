"""``sct_classify_lesion``: differential diagnosis from a T2w image and its lesion mask.

Runs the three DenseNet121 classifiers (tumour vs demyelinating, astrocytoma vs ependymoma, MS vs
NMOSD) on the sagittal slices that contain lesion and writes the diagnosis JSON (SPEC section 3)
with lesion morphometry and provenance. Without ``-lesion``, the segmentation of
``sct_deepseg_imlesion`` runs first (same options) and its mask is saved.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from sct_lesion_classify.cli.common import add_segmentation_args
from sct_lesion_classify.cli.frame import SCTArgumentParser, exit_without_teardown, run_command

PROG = "sct_classify_lesion"


def get_parser() -> SCTArgumentParser:
    """The command's parser (SCT groups: MANDATORY / OPTIONAL / MISC)."""
    from sct_lesion_classify.pipeline.outputs import OutputNames  # standard library only

    names = OutputNames("<stem>")
    parser = SCTArgumentParser(
        prog=PROG,
        description=(
            "Suggest a differential diagnosis (astrocytoma, ependymoma, multiple sclerosis, NMOSD) for an "
            "intramedullary lesion on sagittal T2w MRI, with probabilities, lesion morphometry and a QC "
            "report, written as JSON beside the input with a trust level (ok, review, unreliable), plus "
            "a lesion table in sct_analyze_lesion's columns (<stem>_lesion_seg_analysis.csv) and the "
            "labelled lesion map (<stem>_lesion_seg_label.nii.gz). Reference models are trained on "
            "synthetic phantoms: research use only, not a medical device."
        ),
    )
    parser.mandatory.add_argument(
        "-i", metavar="<file>", required=True, help="T2w image (NIfTI, 3D, sagittal acquisition expected).")
    parser.optional.add_argument(
        "-lesion", metavar="<file>", default=None,
        help="Lesion mask on the grid of -i (automatic or corrected by hand). Without it, the lesion is "
             f"segmented first (as sct_deepseg_imlesion) and the mask saved as {names.lesion_mask}.")
    parser.optional.add_argument(
        "-i-t1c", metavar="<file>", default=None,
        help="Contrast-enhanced T1w image already on the grid of -i. Used by cT1w-aware models when they "
             "are installed; otherwise ignored with a warning.")
    parser.optional.add_argument(
        "-vert", metavar="<file>", default=None,
        help="Vertebral labels on the grid of -i (sct_label_vertebrae's _seg_labeled.nii.gz, or "
             "PAM50_levels warped by sct_warp_template): lesion levels become exact instead of estimated.")
    parser.optional.add_argument(
        "-o", metavar="<file>", default=None,
        help=f"Output diagnosis JSON. Default: <folder of -i>/{names.diagnosis}. Without -lesion, the "
             f"lesion mask goes to the folder of the JSON ({names.lesion_mask}), so -o keeps every "
             "output out of the input folder.")
    parser.optional.add_argument(
        "-gradcam", metavar="<int>", type=int, choices=(0, 1), default=0,
        help=f"1: also write a Grad-CAM saliency map per classifier, {names.gradcam('<role>')} beside "
             "the JSON (native grid of -i, values in [0, 1], 0 outside the classified slices), and show "
             "it in the QC report. Needs packages exported with a CAM output (this version). Default: 0.")
    add_segmentation_args(parser)
    parser.add_qc_args()
    parser.add_misc_args()
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (0, 1 or 2)."""
    return run_command(get_parser(), argv, _run)


def _run(args: argparse.Namespace) -> int:
    import logging
    import time
    from pathlib import Path

    from sct_lesion_classify.cli.common import segmentation_request
    from sct_lesion_classify.pipeline.classification import (
        ClassificationModels,
        ClassificationRequest,
        run_classification,
    )
    from sct_lesion_classify.pipeline.models import select_models
    from sct_lesion_classify.pipeline.outputs import OutputNames

    mask_output = None
    if args.o and not args.lesion:
        mask_output = Path(args.o).parent / OutputNames.of(args.i).lesion_mask
    seg_request = segmentation_request(args, output_path=mask_output)
    request = ClassificationRequest(
        segmentation=seg_request,
        lesion_path=Path(args.lesion) if args.lesion else None,
        t1c_path=Path(args.i_t1c) if args.i_t1c else None,
        vert_path=Path(args.vert) if args.vert else None,
        output_path=Path(args.o) if args.o else None,
        gradcam=bool(args.gradcam),
    )
    selection = select_models(args.custom_model, segment=request.lesion_path is None,
                              cord_localizer=seg_request.needs_builtin_cord, t1c=request.t1c_path is not None)
    start = time.perf_counter()
    models = ClassificationModels.load(selection, in_background=True)
    args.stage_times.add({"load_models": time.perf_counter() - start})
    try:
        outputs = run_classification(request, models)
    finally:
        models.wait_for_sessions()
    args.stage_times.add(outputs.document.provenance.runtime_s)
    log = logging.getLogger("sct_lesion_classify")
    trust = outputs.document.trust
    flags = f" [{', '.join(trust.codes)}]" if trust.codes else ""
    if outputs.diagnosis is None:
        log.info("No diagnosis (empty lesion mask). Trust: %s%s", trust.level, flags)
    else:
        d = outputs.diagnosis
        log.info("Most likely: %s (%s, confidence %s, trust %s%s): %s", d.most_likely_class, d.group,
                 d.confidence, trust.level, flags, ", ".join(f"{k} {v:.2f}" for k, v in d.probabilities.items()))
    for check in trust.checks:
        log.warning("trust (%s): %s", check.severity, check.message)
    log.info("Diagnosis written to %s", outputs.json_path)
    if outputs.lesion_table is not None:
        log.info("Lesion table (sct_analyze_lesion's columns) written to %s, labels to %s", outputs.lesion_table,
                 outputs.lesion_labels)
    for path in outputs.gradcam_paths.values():
        log.info("Grad-CAM map written to %s", path)
    if outputs.qc_page is not None:
        log.info("QC report: %s", outputs.qc_page)
    return 0


def console_entry() -> None:
    """Console-script entry point (the process ends without the interpreter's teardown)."""
    exit_without_teardown(main())


if __name__ == "__main__":
    console_entry()
