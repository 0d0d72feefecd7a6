"""The work of ``sct_deepseg_imlesion``: load, localize the cord, segment, write, QC.

:class:`SegmentationModels` is built once (sessions created once) and reused for every image,
by the command and by the cohort runner. :func:`run_segmentation` takes a typed request, writes
the outputs atomically on the input's native grid and returns what it wrote.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from sct_lesion_classify import PROJECT_URL, __version__
from sct_lesion_classify.cord.crop import crop_box_around
from sct_lesion_classify.cord.localize import (
    BuiltinCordLocalizer,
    CordLocalization,
    cord_from_mask_file,
)
from sct_lesion_classify.cord.sct import sct_cord_segmentation
from sct_lesion_classify.errors import InputError
from sct_lesion_classify.io.atomic import write_json_atomic
from sct_lesion_classify.io.image import Image, load_image, save_like
from sct_lesion_classify.io.resample import ModelGridTooLarge
from sct_lesion_classify.lesion.postprocess import Postprocessing
from sct_lesion_classify.lesion.segment import LesionSegmentation, LesionSegmenter
from sct_lesion_classify.modelpkg.package import ModelPackage
from sct_lesion_classify.pipeline.models import ModelSelection
from sct_lesion_classify.pipeline.options import QcOptions, SegmentationOptions
from sct_lesion_classify.pipeline.outputs import OutputNames, sidecar_path
from sct_lesion_classify.pipeline.paths import check_output_path, check_qc_folder, make_output_folder
from sct_lesion_classify.runtime.session import Pending, build_concurrently, build_in_background

if TYPE_CHECKING:
    from sct_lesion_classify.trust import TrustAssessment

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentationRequest:
    """What the user asked ``sct_deepseg_imlesion`` (or ``sct_classify_lesion``) to segment.

    ``options`` and ``qc`` are built once per run (``cli.common``, the cohort runner) and shared
    by its images.
    """

    image_path: Path
    output_path: Path | None = None
    cord_mask_path: Path | None = None
    options: SegmentationOptions = field(default_factory=SegmentationOptions)
    qc: QcOptions = field(default_factory=QcOptions)
    command_line: str = ""

    def __post_init__(self) -> None:
        if self.options.cord_method == "sct" and self.cord_mask_path is not None:
            raise InputError("-cord-method sct and -s are exclusive: -s already gives the cord")

    @property
    def needs_builtin_cord(self) -> bool:
        """Whether the bundled cord localizer must run for this request."""
        return self.options.needs_builtin_cord(cord_mask_given=self.cord_mask_path is not None)

    def lesion_output(self) -> Path:
        """``-o``, or ``<folder of -i>/<stem>_lesion_seg.nii.gz``."""
        if self.output_path is not None:
            return self.output_path
        return self.image_path.parent / OutputNames.of(self.image_path).lesion_mask


@dataclass
class SegmentationModels:
    """The packages of the segmentation, loaded and verified once, with their sessions.

    ``packages`` are the selection's segmentation packages (cord localizer, lesion) and
    ``model_urls`` their download URLs (:func:`model_url`, one each), worked out once here so
    that writing a sidecar reads no registry. ``built`` holds the ``"lesion"`` segmenter and the
    ``"cord"`` localizer (when selected), or their sessions still being created
    (``runtime.session.Pending``): :attr:`lesion` and :attr:`cord` wait for them.
    """

    built: Mapping[str, Any] = field(repr=False)
    packages: tuple[ModelPackage, ...]
    model_urls: tuple[str | None, ...]

    @property
    def lesion(self) -> LesionSegmenter:
        """The lesion segmenter (waits for its session; raises its creation's error)."""
        return self.built["lesion"]

    @property
    def cord(self) -> BuiltinCordLocalizer | None:
        """The bundled cord localizer when selected (waits for its session), else None."""
        return self.built["cord"] if "cord" in self.built else None

    @staticmethod
    def builders(selection: ModelSelection, *, threads: int | None = None) -> dict[str, Callable[[], Any]]:
        """What creates the sessions: ``"cord"`` (when selected, first: it runs first), ``"lesion"``."""
        if selection.lesion is None:
            raise InputError("no lesion segmentation package selected for this run")
        builders: dict[str, Callable[[], Any]] = {}
        if selection.cord is not None:
            builders["cord"] = lambda: BuiltinCordLocalizer(selection.cord, threads=threads)
        builders["lesion"] = lambda: LesionSegmenter(selection.lesion, threads=threads)
        return builders

    @classmethod
    def load(cls, selection: ModelSelection, *, threads: int | None = None,
             in_background: bool = False) -> "SegmentationModels":
        """Build the sessions of the lesion package (and the cord localizer, when selected).

        With ``in_background`` this returns while the sessions are being created, so that a
        command reads its image meanwhile; the first use of :attr:`lesion` or :attr:`cord` waits
        for its session, or raises its error, and the command calls :meth:`wait` before it returns.
        """
        builders = cls.builders(selection, threads=threads)
        built = build_in_background(builders) if in_background else build_concurrently(builders)
        return cls.of(selection, built)

    @classmethod
    def of(cls, selection: ModelSelection, built: Mapping[str, Any]) -> "SegmentationModels":
        """The models of ``selection`` from what :meth:`builders` built (or is building)."""
        packages = selection.segmentation
        return cls(built=built, packages=packages, model_urls=tuple(model_url(p) for p in packages))

    def wait(self) -> None:
        """Wait until no session of these models is still being created."""
        if isinstance(self.built, Pending):
            self.built.wait()


@dataclass(frozen=True)
class SegmentationPaths:
    """The outputs of one segmentation, checked before any work is done."""

    mask: Path
    sidecar: Path
    cord: Path | None = None  # with -save-cord 1
    crop_box: Path | None = None  # with -save-cord 1


@dataclass(frozen=True)
class SegmentationOutputs:
    """What :func:`run_segmentation` computed and wrote."""

    paths: SegmentationPaths
    cord: CordLocalization | None = field(repr=False)
    segmentation: LesionSegmentation = field(repr=False)
    qc_page: Path | None
    warnings: tuple[str, ...]
    runtime_s: dict[str, float]
    trust: TrustAssessment | None = field(default=None, repr=False)  # the segmentation's checks


def run_segmentation(request: SegmentationRequest, models: SegmentationModels, *,
                     image: Image | None = None, protected: tuple[Path, ...] = ()) -> SegmentationOutputs:
    """Segment the lesion of ``request.image_path`` and write the outputs.

    Warnings are returned (``SegmentationOutputs.warnings``), not logged: the caller reports them
    once, with its own.

    Parameters
    ----------
    request
        The typed request.
    models
        Loaded packages (reused across images).
    image
        The already loaded image, if the caller has it.
    protected
        More input paths that outputs must not overwrite.
    """
    runtime: dict[str, float] = {}
    paths = _check_outputs(request, protected)
    check_qc_folder(request.qc.folder)

    start = time.perf_counter()
    if image is None:
        image = load_image(request.image_path, what="T2w image")
    runtime["load"] = time.perf_counter() - start

    postprocessing = _postprocessing(request.options, models.lesion.default_postprocessing)
    cord, segmentation, localize_s = _localize_and_segment(request, models, image, postprocessing)
    runtime["localize"] = localize_s
    runtime.update(segmentation.runtime_s)
    warnings = list(cord.warnings if cord else ()) + list(segmentation.warnings)

    trust = _segmentation_trust(image, cord, segmentation, models, soft=postprocessing.soft)
    start = time.perf_counter()
    _write_outputs(paths, request, models, image, cord, segmentation, trust, soft=postprocessing.soft)
    runtime["write"] = time.perf_counter() - start

    qc_page = None
    if request.qc.folder is not None:
        start = time.perf_counter()
        qc_page = _qc(request, image, cord, segmentation, models, warnings, trust)
        runtime["qc"] = time.perf_counter() - start
    return SegmentationOutputs(paths=paths, cord=cord, segmentation=segmentation, qc_page=qc_page,
                               warnings=tuple(warnings), runtime_s=runtime, trust=trust)


def _segmentation_trust(image: Image, cord: CordLocalization | None, segmentation: LesionSegmentation,
                        models: SegmentationModels, *, soft: bool) -> TrustAssessment:
    """The segmentation's trust checks (cord, lesion, acquisition; ``sct_lesion_classify.trust``)."""
    from sct_lesion_classify.trust import assess, segmentation_checks

    lesion = segmentation.mask > 0.5 if soft else segmentation.mask.astype(bool)
    return assess(segmentation_checks(image.data, image.zooms, cord, lesion, models.packages))


def _check_outputs(request: SegmentationRequest, protected: tuple[Path, ...] = ()) -> SegmentationPaths:
    """The output paths of ``request``, each checked (:func:`~.paths.check_output_path`)."""
    inputs = (request.image_path, request.cord_mask_path, *protected)
    mask = check_output_path(request.lesion_output(), inputs, what="output mask")
    sidecar = check_output_path(sidecar_path(mask), inputs, what="sidecar", nifti=False)
    if not request.options.save_cord:
        return SegmentationPaths(mask=mask, sidecar=sidecar)
    names = OutputNames.of(request.image_path)
    return SegmentationPaths(
        mask=mask, sidecar=sidecar,
        cord=check_output_path(mask.parent / names.cord_mask, inputs, what="cord mask"),
        crop_box=check_output_path(mask.parent / names.crop_box, inputs, what="crop box"))


def _localize_and_segment(
        request: SegmentationRequest, models: SegmentationModels, image: Image,
        postprocessing: Postprocessing) -> tuple[CordLocalization | None, LesionSegmentation, float]:
    """The cord (or None), the lesion segmentation and the seconds the cord took."""
    try:
        start = time.perf_counter()
        cord = _localize_cord(request, models, image)
        localize_s = time.perf_counter() - start
        segmentation = models.lesion.segment(image, cord if request.options.crop else None, postprocessing)
    except ModelGridTooLarge as exc:
        raise InputError(f"{request.image_path}: T2w image too large for the models: {exc}") from None
    return cord, segmentation, localize_s


def _write_outputs(paths: SegmentationPaths, request: SegmentationRequest, models: SegmentationModels,
                   image: Image, cord: CordLocalization | None, segmentation: LesionSegmentation,
                   trust: TrustAssessment, *, soft: bool) -> None:
    """The mask (uint8, or float32 when soft), its sidecar, and with -save-cord the cord and the box."""
    make_output_folder(paths.mask)
    save_like(segmentation.mask.astype(np.float32 if soft else np.uint8), image.grid, paths.mask,
              dtype=np.float32 if soft else np.uint8)
    write_json_atomic(paths.sidecar, _sidecar(request, models, soft, trust))
    if paths.cord is not None and cord is not None:
        save_like(cord.mask, image.grid, paths.cord, dtype=np.uint8)
        box = segmentation.box if request.options.crop else crop_box_around(
            cord.mask, image.zooms, models.lesion.package.card.input.crop_margins_mm)
        save_like(box.to_mask(), image.grid, paths.crop_box, dtype=np.uint8)


def _localize_cord(request: SegmentationRequest, models: SegmentationModels,
                   image: Image) -> CordLocalization | None:
    if request.cord_mask_path is not None:
        return cord_from_mask_file(request.cord_mask_path, image, source="user")
    if request.options.cord_method == "sct":
        return _sct_cord(request, image)
    if not request.needs_builtin_cord:
        return None
    if models.cord is None:
        raise InputError("the builtin cord localizer was not loaded for this request")
    return models.cord.localize(image)


def _sct_cord(request: SegmentationRequest, image: Image) -> CordLocalization:
    """SCT's cord segmentation (``-cord-method sct``), in a temporary folder."""
    workdir = Path(tempfile.mkdtemp(prefix="sct_lesion_classify-"))
    try:
        out = sct_cord_segmentation(request.image_path, workdir / OutputNames.of(request.image_path).cord_mask)
        return cord_from_mask_file(out, image, source="sct")
    finally:
        if request.options.remove_temp:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            logger.info("Temporary files kept in %s", workdir)


def _postprocessing(options: SegmentationOptions, defaults: Postprocessing) -> Postprocessing:
    return Postprocessing(
        threshold=defaults.threshold if options.threshold is None else options.threshold,
        fill_holes=defaults.fill_holes if options.fill_holes is None else options.fill_holes,
        largest=defaults.largest if options.largest is None else options.largest,
        remove_small=defaults.remove_small if options.remove_small is None else options.remove_small,
    )


def _sidecar(request: SegmentationRequest, models: SegmentationModels, soft: bool,
             trust: TrustAssessment) -> dict:
    """BIDS derivative sidecar with GeneratedBy (name, version, models with sha256, command).

    Beside our keys, the two that ``sct_deepseg`` writes in its sidecars: ``CodeURL`` (the
    project's repository) and ``ModelURL`` (the download URLs of the packages in use, as
    :func:`model_url` found them when the models were loaded; null when none has one, e.g. the
    bundled packages). ``Trust``: the segmentation's trust checks (cord, lesion, acquisition;
    ``sct_lesion_classify.trust``), the same object as the diagnosis JSON's ``trust``.
    """
    urls = models.model_urls
    return {
        "Description": "lesion probability map" if soft else "intramedullary lesion mask",
        "GeneratedBy": [{
            "Name": "sct_lesion_classify",
            "Version": __version__,
            "Description": "sct_deepseg_imlesion: cord localization, crop, 2D MultiResUNet",
            "CodeURL": PROJECT_URL,
            "ModelURL": [url for url in urls if url] or None,
            "CommandLine": request.command_line,
            "Models": [
                {"Name": p.name, "Version": p.version, "SHA256": p.sha256, "ModelURL": url,
                 "TrainingData": p.card.training.data, "SyntheticTrainingData": p.card.training.synthetic_data}
                for p, url in zip(models.packages, urls)
            ],
        }],
        "Sources": [str(request.image_path)],
        "Trust": trust.to_json(),
    }


def model_url(package: ModelPackage) -> str | None:
    """Where ``package`` is downloaded from: the registry's ``url`` for its name and version.

    None for a package the registry does not list with a URL (the bundled packages, a user's
    ``-custom-model`` of another name or version), or when the registry cannot be read.
    """
    from sct_lesion_classify.errors import ModelError
    from sct_lesion_classify.modelpkg.registry import load_registry

    try:
        entry = load_registry().get(package.name)
    except ModelError:
        return None
    if entry is None or entry.version != package.version:
        return None
    return entry.url


def _qc(request: SegmentationRequest, image: Image, cord: CordLocalization | None,
        segmentation: LesionSegmentation, models: SegmentationModels, warnings: list[str],
        trust: TrustAssessment) -> Path:
    from sct_lesion_classify.qc import add_entry, segmentation_entry

    box = segmentation.box
    details = [("lesion model", f"{models.lesion.package.name} {models.lesion.package.version}"),
               ("cord", cord.source if cord else "not localized (-no-crop)")]
    details += [("warning", w) for w in warnings]
    details += [(f"trust check {check.code}", check.message) for check in trust.checks]
    draft = segmentation_entry(
        command="sct_deepseg_imlesion", input_path=str(request.image_path), image=image.data,
        zooms_mm=image.zooms, lesion=segmentation.mask, cord_mask=cord.mask if cord else None,
        cord_box=None if box.is_full else tuple(zip(box.start, box.stop)), details=details,
        searched_region=None if box.is_full else segmentation.searched_region,
        dataset=request.qc.dataset, subject=request.qc.subject, command_line=request.command_line,
        trust_level=trust.level)
    return add_entry(request.qc.folder, draft)
