"""``sct_deepseg_imlesion``: cascaded intramedullary lesion segmentation (sct_deepseg-compatible).

Cord localization (``-s``, the bundled localizer, or SCT's own) -> box around the cord with the
model card's margins -> 2D MultiResUNet on the sagittal slices of the box -> postprocessing ->
mask on the native grid of ``-i``, with a BIDS sidecar and an optional QC entry.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from sct_lesion_classify.cli.common import add_segmentation_args
from sct_lesion_classify.cli.frame import SCTArgumentParser, exit_without_teardown, run_command

PROG = "sct_deepseg_imlesion"


def get_parser() -> SCTArgumentParser:
    """The command's parser (SCT groups: MANDATORY / OPTIONAL / MISC)."""
    from sct_lesion_classify.pipeline.outputs import OutputNames  # standard library only

    parser = SCTArgumentParser(
        prog=PROG,
        description=(
            "Segment an intramedullary lesion (tumour or demyelinating lesion) on a sagittal T2w image of "
            "the spinal cord: cord localization, crop around the cord, 2D MultiResUNet on the sagittal "
            "slices, postprocessing. The mask is written on the grid of the input. Reference models are "
            "trained on synthetic phantoms: research use only."
        ),
    )
    parser.mandatory.add_argument(
        "-i", metavar="<file>", required=True,
        help="T2w image (NIfTI, 3D; sagittal acquisition expected, any orientation accepted).")
    parser.optional.add_argument(
        "-o", metavar="<file>", default=None,
        help=f"Output lesion mask. Default: <folder of -i>/{OutputNames('<stem>').lesion_mask}.")
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

    from sct_lesion_classify.cli.common import segmentation_request, viewer_syntax
    from sct_lesion_classify.pipeline.models import select_models
    from sct_lesion_classify.pipeline.segmentation import SegmentationModels, run_segmentation

    request = segmentation_request(args, output_path=args.o)
    selection = select_models(args.custom_model, segment=True, cord_localizer=request.needs_builtin_cord,
                              classify=False)
    start = time.perf_counter()
    models = SegmentationModels.load(selection, in_background=True)  # created while the image is read
    args.stage_times.add({"load_models": time.perf_counter() - start})
    try:
        outputs = run_segmentation(request, models)
    finally:
        models.wait()  # nothing still running once main returns, also after an error
    args.stage_times.add(outputs.runtime_s)
    log = logging.getLogger("sct_lesion_classify")
    for message in outputs.warnings:
        log.warning(message)
    overlays = [(outputs.paths.mask, "red")]
    if outputs.paths.cord is not None:
        overlays = [(outputs.paths.cord, "green"), (outputs.paths.crop_box, "blue")] + overlays
    log.info(viewer_syntax(request.image_path, overlays))
    if outputs.qc_page is not None:
        log.info("QC report: %s", outputs.qc_page)
    return 0


def console_entry() -> None:
    """Console-script entry point (the process ends without the interpreter's teardown)."""
    exit_without_teardown(main())


if __name__ == "__main__":
    console_entry()
