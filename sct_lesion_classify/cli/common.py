"""Options shared by the pipeline commands (segmentation flags used by both commands)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from sct_lesion_classify.cli.frame import SCTArgumentParser, non_negative_float

if TYPE_CHECKING:
    from sct_lesion_classify.pipeline.options import SegmentationOptions
    from sct_lesion_classify.pipeline.segmentation import SegmentationRequest


def add_segmentation_args(parser: SCTArgumentParser, *, cord_mask_option: bool = True) -> None:
    """Add the options of the cascaded lesion segmentation (``sct_deepseg_imlesion``).

    ``sct_classify_lesion`` takes the same options for the segmentation it runs when no
    ``-lesion`` mask is given; ``sct_lesion_classify batch`` takes them without ``-s``
    (``cord_mask_option=False``: the cord masks come from the dataset).
    """
    from sct_lesion_classify.pipeline.options import CORD_METHODS  # standard library only
    from sct_lesion_classify.pipeline.outputs import OutputNames  # standard library only

    names = OutputNames("<stem>")
    opt = parser.optional
    if cord_mask_option:
        opt.add_argument(
            "-s", metavar="<file>", default=None,
            help="Spinal cord mask on the grid of -i (e.g. the '_seg' output of 'sct_deepseg spinalcord'). "
                 "Skips cord localization.")
    opt.add_argument(
        "-cord-method", choices=CORD_METHODS, default="auto",
        help="R|How to find the cord when -s is not given:\n"
             "  builtin: the bundled cord localizer (default for auto);\n"
             "  sct: SCT's own cord segmentation ('sct_deepseg spinalcord'; needs SCT on PATH);\n"
             "  auto: -s when given, else builtin.")
    opt.add_argument(
        "-save-cord", metavar="<int>", type=int, choices=(0, 1), default=0,
        help=f"Also write the cord mask as {names.cord_mask} and the crop box as {names.crop_box}. "
             "Default: 0.")
    opt.add_argument(
        "-no-crop", action="store_true",
        help="Segment the whole field of view instead of the box around the cord (for comparison, or "
             "for images already cropped to the cord). Without a cord there is no cord constraint: the "
             "card's cord_margin_mm, which keeps the lesion within that distance of the cord, is not "
             "applied.")
    opt.add_argument(
        "-thr", metavar="<float>", type=non_negative_float, default=None,
        help="Threshold of the lesion probability (0 writes the soft probability map). Default: the "
             "model card's (0.5 for the bundled model).")
    opt.add_argument(
        "-largest", metavar="<int>", type=int, choices=(0, 1), default=None,
        help="Keep only the largest lesion. Default: the model card's.")
    opt.add_argument(
        "-fill-holes", metavar="<int>", type=int, choices=(0, 1), default=None,
        help="Fill holes in the lesion mask. Default: the model card's.")
    opt.add_argument(
        "-remove-small", metavar="<size>", nargs="+", default=None, type=size_text,
        action=RemoveSmallAction,
        help="Remove lesions smaller than this, in mm3 or voxels: '20mm3', '5vox', or SCT's form "
             "'10 20 10vox' where the unit of the last value applies to the values without one (no "
             "unit at all: voxels, as in SCT). With several sizes, a lesion smaller than any is "
             "removed. Default: the model card's.")
    opt.add_argument(
        "-custom-model", metavar="<folder>", action="append", default=[],
        help="A model package folder (<name>.onnx + <name>.json model card) to use instead of the "
             "bundled one with the same task. Repeatable: the card's task says which step it replaces.")


def size_text(text: str) -> str:
    """``argparse`` type for one ``-remove-small`` value: ``20mm3``, ``5vox`` or a bare ``5``.

    Returned stripped and lower case; a bare number gets its unit from :class:`RemoveSmallAction`.
    """
    from sct_lesion_classify.errors import InputError
    from sct_lesion_classify.lesion.postprocess import parse_size

    text = text.strip().lower()
    try:
        parse_size(text)
        return text
    except InputError:
        pass
    try:
        parse_size(text + "vox")  # a bare number
    except InputError:
        raise argparse.ArgumentTypeError(
            f"expected a size like '20mm3', '5vox' or '10 20 10vox', got {text!r}") from None
    return text


def remove_small_sizes(values: Sequence[str]) -> tuple[str, ...]:
    """The ``-remove-small`` values with a unit each (SCT's rule for values given without one).

    A value without a unit takes the unit of the last value (``10 20 10vox`` -> 10vox 20vox
    10vox; ``5 20mm3`` -> 5mm3 20mm3), or voxels when the last value has none either (``5`` ->
    5vox, as ``sct_deepseg`` reads it). Values with their own unit keep it (``20mm3 5vox``).
    """
    from sct_lesion_classify.lesion.postprocess import SIZE_UNITS

    def unit_of(value: str) -> str | None:
        return next((unit for unit in SIZE_UNITS if value.endswith(unit)), None)

    last_unit = unit_of(values[-1]) or "vox"
    return tuple(value if unit_of(value) else f"{value}{last_unit}" for value in values)


class RemoveSmallAction(argparse.Action):
    """``-remove-small``: store the values (checked by :func:`size_text`) with their units."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, remove_small_sizes(values))


def segmentation_options(args: argparse.Namespace) -> SegmentationOptions:
    """The typed segmentation options of a parsed command line (shared by every image of the run)."""
    from sct_lesion_classify.pipeline.options import SegmentationOptions

    return SegmentationOptions(
        cord_method=args.cord_method,
        save_cord=bool(args.save_cord),
        crop=not args.no_crop,
        threshold=args.thr,
        largest=None if args.largest is None else bool(args.largest),
        fill_holes=None if args.fill_holes is None else bool(args.fill_holes),
        remove_small=args.remove_small,
        remove_temp=bool(args.r),
    )


def segmentation_request(args: argparse.Namespace, *, output_path: str | Path | None) -> SegmentationRequest:
    """The typed segmentation request of a parsed command line (imports the pipeline lazily)."""
    from sct_lesion_classify.pipeline.options import QcOptions
    from sct_lesion_classify.pipeline.segmentation import SegmentationRequest

    return SegmentationRequest(
        image_path=Path(args.i),
        output_path=Path(output_path) if output_path else None,
        cord_mask_path=Path(args.s) if args.s else None,
        options=segmentation_options(args),
        qc=QcOptions(folder=Path(args.qc) if args.qc else None, dataset=args.qc_dataset,
                     subject=args.qc_subject),
        command_line=args.command_line,
    )


def viewer_syntax(image: Path, overlays: list[tuple[Path, str]]) -> str:
    """SCT's closing message: how to look at the result in FSLeyes or ITK-SNAP."""
    fsleyes = " ".join([f"fsleyes {image}"] + [f"{path} -cm {colour} -a 70.0" for path, colour in overlays])
    itksnap = f"itksnap -g {image} -s {overlays[-1][0]}"
    return ("\nDone! To view results, run one of the following commands (depending on your preferred "
            f"viewer):\n{fsleyes} &\n\n{itksnap}\n")
