"""The work of ``sct_classify_lesion``: lesion mask (given or segmented), morphometry, the three
classifiers, the diagnosis JSON (validated before it is written) and the QC entry.

:class:`ClassificationModels` is built once (sessions created once) and reused for every image.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sct_lesion_classify import __version__
from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES, ClassifierResult, Diagnosis, compose_diagnosis
from sct_lesion_classify.classify.document import DISCLAIMER, SCHEMA_VERSION, SYNTHETIC_WARNING, write_diagnosis
from sct_lesion_classify.classify.gradcam import cam_volume
from sct_lesion_classify.classify.inference import Classifier
from sct_lesion_classify.classify.inputs import ClassifierSlices
from sct_lesion_classify.cord.localize import CordLocalization, cord_from_mask_file
from sct_lesion_classify.errors import InputError
from sct_lesion_classify.io.image import Image, load_image, load_mask, save_like
from sct_lesion_classify.lesion.morphometry import LesionMorphometry, measure_lesions
from sct_lesion_classify.modelpkg.package import file_sha256
from sct_lesion_classify.pipeline.models import ModelSelection, choose_classifiers
from sct_lesion_classify.pipeline.outputs import OutputNames, gradcam_output
from sct_lesion_classify.pipeline.paths import check_output_path, check_qc_folder, make_output_folder
from sct_lesion_classify.pipeline.segmentation import (
    SegmentationModels,
    SegmentationRequest,
    run_segmentation,
)

logger = logging.getLogger(__name__)

#: How the written Grad-CAM maps are scaled (``classify.gradcam``), recorded in the JSON.
GRADCAM_NORMALIZATION = ("relu(CAM) divided by its maximum over the volume (1 = strongest evidence "
                         "for the positive class in this image); 0 on slices not classified")


@dataclass(frozen=True)
class ClassificationRequest:
    """What the user asked ``sct_classify_lesion`` to do.

    ``segmentation`` carries the image, ``-s``, the segmentation options and the QC options; it is
    run only when ``lesion_path`` is None. ``gradcam`` (``-gradcam 1``) writes one Grad-CAM map per
    applied classifier that has a CAM output (:func:`gradcam_paths`).
    """

    segmentation: SegmentationRequest
    lesion_path: Path | None = None
    t1c_path: Path | None = None
    vert_path: Path | None = None
    output_path: Path | None = None
    gradcam: bool = False

    @property
    def image_path(self) -> Path:
        """The T2w image."""
        return self.segmentation.image_path

    def diagnosis_output(self) -> Path:
        """``-o``, or ``<folder of -i>/<stem>_diagnosis.json``."""
        if self.output_path is not None:
            return self.output_path
        return self.image_path.parent / OutputNames.of(self.image_path).diagnosis


@dataclass
class ClassificationModels:
    """The three classifiers (and their cT1w-aware variants, when installed), loaded once."""

    classifiers: dict[str, Classifier]
    t1c_classifiers: dict[str, Classifier] = field(default_factory=dict)
    segmentation: SegmentationModels | None = None
    selection: ModelSelection = field(default_factory=ModelSelection)

    @classmethod
    def load(cls, selection: ModelSelection, *, threads: int | None = None) -> "ClassificationModels":
        """Build the sessions of the selected packages (``pipeline.models.select_models``)."""
        segmentation = SegmentationModels.load(selection, threads=threads) if selection.lesion else None
        classifiers = {role: Classifier(p, role, threads=threads) for role, p in selection.classifiers.items()}
        t1c = {role: Classifier(p, role, threads=threads) for role, p in selection.t1c_classifiers.items()}
        return cls(classifiers=classifiers, t1c_classifiers=t1c, segmentation=segmentation, selection=selection)

    def for_image(self, *, with_t1c: bool) -> tuple[dict[str, Classifier], tuple[str, ...]]:
        """The classifier of each role for an image with (or without) a cT1w, and the warnings."""
        return choose_classifiers(self.classifiers, self.t1c_classifiers, with_t1c)


@dataclass(frozen=True)
class ClassificationOutputs:
    """What :func:`run_classification` computed and wrote."""

    json_path: Path
    document: dict = field(repr=False)
    diagnosis: Diagnosis | None
    morphometry: LesionMorphometry = field(repr=False)
    lesion_path: Path
    qc_page: Path | None
    warnings: tuple[str, ...]
    gradcam_paths: dict[str, Path] = field(default_factory=dict)  # role -> written map


def run_classification(request: ClassificationRequest, models: ClassificationModels) -> ClassificationOutputs:
    """Classify the lesion of ``request.image_path`` and write the diagnosis JSON."""
    runtime: dict[str, float] = {}
    seg = request.segmentation
    inputs = (seg.image_path, seg.cord_mask_path, request.lesion_path, request.t1c_path, request.vert_path)
    json_path = check_output_path(request.diagnosis_output(), inputs, what="diagnosis JSON", nifti=False)
    check_qc_folder(seg.qc.folder)
    if request.gradcam:
        for role in ROLE_CLASSES:
            check_output_path(gradcam_output(json_path, seg.image_path, role), inputs,
                              what=f"Grad-CAM map of {role}")
    warnings: list[str] = []

    start = time.perf_counter()
    image = load_image(seg.image_path, what="T2w image")
    t1c = _load_t1c(request.t1c_path, image)
    vert = None
    if request.vert_path is not None:
        vert_image = load_image(request.vert_path, what="vertebral labels")
        if not vert_image.grid.same_space(image.grid):
            raise InputError(f"{request.vert_path}: vertebral labels are not on the grid of {seg.image_path}")
        vert = np.rint(vert_image.data).astype(np.int32)
    runtime["load"] = time.perf_counter() - start

    cord: CordLocalization | None = None
    if request.lesion_path is not None:
        start = time.perf_counter()
        lesion_mask, mask_warnings = load_mask(request.lesion_path, image.grid, what="lesion mask")
        warnings += mask_warnings
        lesion_path, lesion_source = request.lesion_path, "user"
        if seg.cord_mask_path is not None:
            cord = cord_from_mask_file(seg.cord_mask_path, image, source="user")
        elif models.segmentation is not None and models.segmentation.cord is not None:
            cord = models.segmentation.cord.localize(image)
        runtime["load"] += time.perf_counter() - start
    else:
        if models.segmentation is None:
            raise InputError("no -lesion mask given and no segmentation models loaded")
        outputs = run_segmentation(seg, models.segmentation, image=image, protected=inputs)
        lesion_mask = outputs.segmentation.mask
        if lesion_mask.dtype != bool:
            lesion_mask = lesion_mask > 0.5
        lesion_path, lesion_source, cord = outputs.mask_path, "automatic", outputs.cord
        warnings += outputs.warnings
        runtime.update({f"segmentation_{k}": v for k, v in outputs.runtime_s.items() if k != "load"})
    if cord is not None:
        warnings += [w for w in cord.warnings if w not in warnings]
    else:
        warnings.append("no cord mask (give -s): lesion position and lesion/cord intensity ratio not computed")

    start = time.perf_counter()
    morphometry = measure_lesions(lesion_mask, image.zooms, image.affine, image=image.data,
                                  cord_mask=cord.mask if cord else None, vertebral_labels=vert)
    warnings += list(morphometry.warnings)
    runtime["morphometry"] = time.perf_counter() - start

    results: dict[str, ClassifierResult] = {}
    saliency: dict[str, np.ndarray] = {}  # role -> canonical Grad-CAM volume in [0, 1]
    diagnosis = None
    used, choice_warnings = models.for_image(with_t1c=t1c is not None)
    warnings += choice_warnings
    if request.gradcam:
        for role, classifier in used.items():
            if not classifier.has_cam:
                warnings.append(f"-gradcam 1: model {classifier.package.name} has no CAM output; "
                                "re-export it with this version (no Grad-CAM map for "
                                f"{role})")
    if morphometry.count == 0:
        warnings.append(f"the lesion mask is empty ({lesion_path}): no diagnosis")
    else:
        built: dict[tuple, ClassifierSlices] = {}  # one tensor per input contract, shared
        for role, classifier in used.items():
            start = time.perf_counter()
            slices = built.get(classifier.input_contract)
            if slices is None:
                slices = classifier.inputs(image.data, lesion_mask, image.zooms,
                                           t1c=t1c.data if t1c is not None else None)
                built[classifier.input_contract] = slices
            if slices.fallback:
                warnings.append(f"{role}: no slice reaches the minimum lesion area of the model card; "
                                "the slice(s) with the largest lesion area were used")
            if request.gradcam and classifier.has_cam:
                results[role], cam = classifier.classify_with_cam(slices)
                saliency[role] = cam_volume(cam, slices.slice_indices, image.data.shape, image.zooms,
                                            classifier.package.card.input)
            else:
                results[role] = classifier.classify(slices)
            runtime[f"classify_{role}"] = time.perf_counter() - start
        diagnosis = compose_diagnosis(results, {role: c.low_confidence_band for role, c in used.items()})
    for classifier in used.values():
        if classifier.package.card.training.synthetic_data:
            warnings.append(SYNTHETIC_WARNING.format(name=classifier.package.name,
                                                     version=classifier.package.version))
    warnings += _acquisition_warnings(image)
    warnings = list(dict.fromkeys(warnings))

    start = time.perf_counter()
    gradcam_paths = {role: gradcam_output(json_path, seg.image_path, role) for role in saliency}
    make_output_folder(json_path)
    for role, volume in saliency.items():
        save_like(volume, image.grid, gradcam_paths[role], dtype=np.float32)
    if saliency:
        runtime["gradcam_write"] = time.perf_counter() - start
        start = time.perf_counter()
    document = _document(request, image, lesion_path, lesion_source, cord, morphometry, results,
                         diagnosis, warnings, runtime, used, models)
    if request.gradcam:
        document["gradcam"] = {role: {"path": str(path), "model_name": used[role].package.name,
                                      "normalization": GRADCAM_NORMALIZATION}
                               for role, path in gradcam_paths.items()}
    write_diagnosis(json_path, document)
    runtime["write"] = time.perf_counter() - start
    for message in warnings:
        logger.warning(message)

    qc_page = None
    if seg.qc.folder is not None:
        qc_page = _qc(request, image, lesion_mask, cord, results, diagnosis, warnings, saliency)
    return ClassificationOutputs(json_path=json_path, document=document, diagnosis=diagnosis,
                                 morphometry=morphometry, lesion_path=lesion_path, qc_page=qc_page,
                                 warnings=tuple(warnings), gradcam_paths=gradcam_paths)


def _load_t1c(path: Path | None, image: Image) -> Image | None:
    if path is None:
        return None
    t1c = load_image(path, what="cT1w image")
    if not t1c.grid.same_space(image.grid):
        raise InputError(f"{path}: cT1w image is not on the grid of the T2w image (shape {t1c.grid.shape} vs "
                         f"{image.grid.shape}, or affines differ); register it to the T2w first "
                         "(e.g. sct_register_multimodal)")
    return t1c


def _acquisition_warnings(image: Image) -> list[str]:
    """Unusual geometry for the models: not a sagittal acquisition, or an unusual resolution."""
    zooms = image.zooms
    warnings = []
    if zooms[0] < max(zooms[1], zooms[2]) * 0.99 and zooms[0] < 2.0:
        warnings.append(f"the right-left voxel size ({zooms[0]:.2f} mm) is not the largest: the image may "
                        "not be a sagittal acquisition, which the models expect")
    if max(zooms[1], zooms[2]) > 1.5:
        warnings.append(f"in-plane voxel size {zooms[1]:.2f} x {zooms[2]:.2f} mm is coarser than the "
                        "models' training data (0.5-1.1 mm)")
    return warnings


def _document(request, image, lesion_path, lesion_source, cord, morphometry, results, diagnosis,
              warnings, runtime, used, models) -> dict:
    packages = models.selection.packages(with_t1c=request.t1c_path is not None,
                                         segmented=lesion_source == "automatic")
    return {
        "schema_version": SCHEMA_VERSION,
        "input": {
            "path": str(request.image_path),
            "sha256": file_sha256(request.image_path),
            "shape": [int(n) for n in image.grid.shape],
            "voxel_size_mm": [round(float(z), 6) for z in np.sqrt((image.grid.affine[:3, :3] ** 2).sum(axis=0))],
            "orientation": image.grid.orientation,
            "t1c_path": str(request.t1c_path) if request.t1c_path else None,
        },
        "lesion_mask": {"path": str(lesion_path), "source": lesion_source},
        "cord_mask": None if cord is None else {
            "path": str(cord.path) if cord.path and cord.source == "user" else None,
            "source": "automatic" if cord.source == "builtin" else cord.source},
        "lesions": morphometry.to_json(),
        "classifiers": {role: result.to_json() for role, result in results.items()},
        "diagnosis": None if diagnosis is None else diagnosis.to_json(),
        "warnings": warnings,
        "provenance": {
            "package": "sct_lesion_classify",
            "version": __version__,
            "command_line": request.segmentation.command_line,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "runtime_s": {k: round(v, 4) for k, v in runtime.items()},
            "models": [{"name": p.name, "version": p.version, "sha256": p.sha256,
                        "synthetic_training_data": bool(p.card.training.synthetic_data)} for p in packages],
        },
        "disclaimer": DISCLAIMER,
    }


def _qc(request, image, lesion_mask, cord, results, diagnosis, warnings, saliency) -> Path:
    from sct_lesion_classify.qc import add_entry, classification_entry

    seg = request.segmentation
    probabilities = {role: result.probability for role, result in results.items()}
    draft = classification_entry(
        command="sct_classify_lesion", input_path=str(request.image_path), image=image.data,
        zooms_mm=image.zooms, lesion=lesion_mask, probabilities=probabilities,
        diagnosis=None if diagnosis is None else diagnosis.most_likely_class,
        class_probabilities=None if diagnosis is None else diagnosis.probabilities,
        confidence=None if diagnosis is None else diagnosis.confidence,
        saliency=saliency or None,
        cord_mask=cord.mask if cord else None, warnings=tuple(warnings),
        dataset=seg.qc.dataset, subject=seg.qc.subject)
    return add_entry(seg.qc.folder, draft)
