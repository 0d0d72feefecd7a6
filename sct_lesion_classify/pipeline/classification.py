"""The work of ``sct_classify_lesion``: lesion mask (given or segmented), morphometry, the three
classifiers, the diagnosis JSON (validated before it is written) and the QC entry.

:func:`run_classification` runs the stages in order; each is a function that returns a frozen
record:

1. :func:`load_inputs` -> :class:`ClassificationInputs` (T2w, cT1w, vertebral labels);
2. :func:`lesion_mask_stage` -> :class:`LesionMaskStage` (the given mask, or the segmentation's);
3. :func:`measure` -> ``LesionMorphometry``;
4. :func:`classifier_inputs` -> :class:`ClassifierInputs` (one tensor per input contract);
5. :func:`run_classifiers` -> :class:`ClassifierRuns` (results, and CAMs with ``-gradcam 1``);
6. :func:`compose` -> ``Diagnosis`` (None for an empty lesion mask);
7. :func:`saliency_maps` -> :class:`SaliencyMaps` (Grad-CAM volumes on the image's grid);
   (4-7 together: :func:`classification_stage` -> :class:`Classification`)
8. :func:`write_lesion_table` -> the lesion table in ``sct_analyze_lesion``'s columns and its
   label map (``lesion.analysis_table``), then :func:`build_document` -> ``DiagnosisDocument``
   (written once, validated, last);
9. :func:`qc_stage` -> the QC page.

Warnings are values of these records, gathered in pipeline order by :func:`gather_warnings`.
:class:`ClassificationModels` is built once (sessions created once) and reused for every image.
"""

from __future__ import annotations

import datetime
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from sct_lesion_classify.classify.diagnosis import (
    CLASSES,
    ROLE_CLASSES,
    ClassifierResult,
    Diagnosis,
    compose_diagnosis,
)
from sct_lesion_classify.classify.document import (
    SYNTHETIC_WARNING,
    DiagnosisDocument,
    GradcamRecord,
    InputRecord,
    MaskRecord,
    ModelRecord,
    Provenance,
)
from sct_lesion_classify.classify.gradcam import cam_volume
from sct_lesion_classify.classify.inference import Classifier
from sct_lesion_classify.classify.inputs import ClassifierSlices
from sct_lesion_classify.cord.localize import CordLocalization, cord_from_mask_file
from sct_lesion_classify.errors import InputError
from sct_lesion_classify.io.image import Image, load_image, load_mask, save_like
from sct_lesion_classify.lesion.analysis_table import build_table, label_map_dtype, number_cell
from sct_lesion_classify.lesion.morphometry import LesionMorphometry, measure_lesions
from sct_lesion_classify.modelpkg.card import InputSpec
from sct_lesion_classify.modelpkg.package import ModelPackage, file_sha256
from sct_lesion_classify.pipeline.models import ModelSelection, choose_classifiers
from sct_lesion_classify.pipeline.outputs import OutputNames, gradcam_output, lesion_table_outputs, output_stem
from sct_lesion_classify.pipeline.paths import check_output_path, check_qc_folder, make_output_folder
from sct_lesion_classify.pipeline.segmentation import (
    SegmentationModels,
    SegmentationRequest,
    run_segmentation,
)
from sct_lesion_classify.runtime.session import Pending, build_concurrently, build_in_background
from sct_lesion_classify.trust import TrustAssessment, assess, classification_checks, segmentation_checks

logger = logging.getLogger(__name__)

#: How the written Grad-CAM maps are scaled (``classify.gradcam``), recorded in the JSON.
GRADCAM_NORMALIZATION = ("relu(CAM) divided by its maximum over the volume (1 = strongest evidence "
                         "for the positive class in this image); 0 on slices not classified")


@dataclass(frozen=True)
class ClassificationRequest:
    """What the user asked ``sct_classify_lesion`` to do.

    ``segmentation`` carries the image, ``-s``, the segmentation options and the QC options; it is
    run only when ``lesion_path`` is None. ``gradcam`` (``-gradcam 1``) writes one Grad-CAM map per
    applied classifier that has a CAM output (``pipeline.outputs.gradcam_output``).
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

    @property
    def inputs(self) -> tuple[Path | None, ...]:
        """Every input file (outputs must overwrite none of them)."""
        seg = self.segmentation
        return (seg.image_path, seg.cord_mask_path, self.lesion_path, self.t1c_path, self.vert_path)

    def diagnosis_output(self) -> Path:
        """``-o``, or ``<folder of -i>/<stem>_diagnosis.json``."""
        if self.output_path is not None:
            return self.output_path
        return self.image_path.parent / OutputNames.of(self.image_path).diagnosis


@dataclass
class ClassificationModels:
    """The three classifiers (and their cT1w-aware variants, when installed), loaded once."""

    classifiers: Mapping[str, Classifier]
    t1c_classifiers: Mapping[str, Classifier] = field(default_factory=dict)
    segmentation: SegmentationModels | None = None
    selection: ModelSelection = field(default_factory=ModelSelection)

    @classmethod
    def load(cls, selection: ModelSelection, *, threads: int | None = None,
             in_background: bool = False) -> "ClassificationModels":
        """Build the sessions of the selected packages (``pipeline.models.select_models``).

        With ``in_background`` nothing is waited for: every session is still being created when
        this returns (``runtime.session.Pending``; the segmentation's first, in the order they
        run), the first use of a model waits for its session, or raises its error, and the caller
        calls :meth:`wait_for_sessions` before it returns. For a command that runs one image, this
        overlaps their creation with reading and segmenting the image (``sct_classify_lesion`` at
        512x512x15: the classifiers' about 0.1-0.15 s of 2.5 s, medians of 10 interleaved runs).
        """
        builders: dict[tuple[str, str], Callable[[], Any]] = {}
        if selection.lesion:
            for name, build in SegmentationModels.builders(selection, threads=threads).items():
                builders["segmentation", name] = build
        for kind, packages in (("t2w", selection.classifiers), ("t1c", selection.t1c_classifiers)):
            for role, package in packages.items():
                builders[kind, role] = functools.partial(Classifier, package, role, threads=threads)
        built = build_in_background(builders) if in_background else build_concurrently(builders)
        segmentation = None
        if selection.lesion:
            segmentation = SegmentationModels.of(
                selection, _select(built, {key: key[1] for key in builders if key[0] == "segmentation"}))
        return cls(classifiers=_select(built, {("t2w", role): role for role in selection.classifiers}),
                   t1c_classifiers=_select(built, {("t1c", role): role for role in selection.t1c_classifiers}),
                   segmentation=segmentation, selection=selection)

    def wait_for_sessions(self) -> None:
        """Wait until no session is still being created (after ``in_background``).

        A command calls it before it returns, also after an error, so that nothing of it is
        still running (or logging) once ``main`` has returned.
        """
        for models in (self.classifiers, self.t1c_classifiers):
            if isinstance(models, Pending):
                models.wait()
        if self.segmentation is not None:
            self.segmentation.wait()

    def for_image(self, *, with_t1c: bool) -> tuple[dict[str, Classifier], tuple[str, ...]]:
        """The classifier of each role for an image with (or without) a cT1w, and the warnings."""
        return choose_classifiers(self.classifiers, self.t1c_classifiers, with_t1c)


def _select(built: Mapping[Any, Any], keys: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """The values of ``keys`` (key in ``built`` -> key in the result): still pending, or built."""
    if isinstance(built, Pending):
        return built.only(keys)
    return {new: built[old] for old, new in keys.items()}


@dataclass(frozen=True)
class ClassificationOutputs:
    """What :func:`run_classification` computed and wrote."""

    json_path: Path
    document: DiagnosisDocument = field(repr=False)
    lesion_path: Path
    qc_page: Path | None
    gradcam_paths: Mapping[str, Path] = field(default_factory=dict)  # role -> written map
    lesion_table: Path | None = None  # <stem>_lesion_seg_analysis.csv
    lesion_labels: Path | None = None  # <stem>_lesion_seg_label.nii.gz

    @property
    def diagnosis(self) -> Diagnosis | None:
        """The composed diagnosis (None for an empty lesion mask)."""
        return self.document.diagnosis

    @property
    def morphometry(self) -> LesionMorphometry:
        """The lesion morphometry."""
        return self.document.lesions


# ------------------------------------------------------------------------------- stage records
@dataclass(frozen=True)
class ClassificationInputs:
    """The loaded images of one request, on one grid."""

    image: Image = field(repr=False)
    t1c: Image | None = field(repr=False)
    vertebral_labels: np.ndarray | None = field(repr=False)
    load_s: float


@dataclass(frozen=True)
class LesionMaskStage:
    """The lesion mask (given or segmented) and the cord found on the way."""

    mask: np.ndarray = field(repr=False)  # bool, canonical
    path: Path
    source: str  # "user" (-lesion) or "automatic"
    cord: CordLocalization | None = field(repr=False)
    warnings: tuple[str, ...]
    runtime_s: Mapping[str, float]  # "load" (a given mask) or "segmentation_<stage>"
    #: The segmentation's trust checks when it was segmented here (the sidecar's ``Trust``), so
    #: that :func:`trust_stage` does not compute them again; None for a given mask.
    segmentation_trust: TrustAssessment | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ClassifierInputs:
    """The input of each classifier: one tensor per input contract, shared by its classifiers."""

    slices: Mapping[str, ClassifierSlices] = field(repr=False)  # role -> input
    warnings: tuple[str, ...]
    seconds: Mapping[str, float]  # role -> time to build its input (0 when shared)


@dataclass(frozen=True)
class ClassifierRuns:
    """What each classifier said, and its CAM (the classified slices) with ``-gradcam 1``."""

    results: Mapping[str, ClassifierResult]
    cams: Mapping[str, np.ndarray] = field(repr=False)
    seconds: Mapping[str, float]


@dataclass(frozen=True)
class SaliencyMaps:
    """The Grad-CAM volumes (canonical, in [0, 1]) of the classifiers that gave a CAM."""

    volumes: Mapping[str, np.ndarray] = field(repr=False)
    seconds: Mapping[str, float]


@dataclass(frozen=True)
class Classification:
    """What the classifiers made of one lesion mask (nothing for an empty one)."""

    results: Mapping[str, ClassifierResult]
    diagnosis: Diagnosis | None
    saliency: SaliencyMaps
    warnings: tuple[str, ...]
    seconds: Mapping[str, float]  # role -> input, classification and Grad-CAM volume


# ---------------------------------------------------------------------------------- the workflow
def run_classification(request: ClassificationRequest, models: ClassificationModels) -> ClassificationOutputs:
    """Classify the lesion of ``request.image_path`` and write the diagnosis JSON."""
    json_path = check_outputs(request)
    inputs = load_inputs(request)
    lesion = lesion_mask_stage(request, models, inputs)
    start = time.perf_counter()
    morphometry = measure(inputs, lesion)
    morphometry_s = time.perf_counter() - start
    used, choice_warnings = models.for_image(with_t1c=inputs.t1c is not None)
    classified = classification_stage(request, used, inputs, lesion, morphometry)
    warnings = gather_warnings(request, inputs.image, lesion, morphometry, used, choice_warnings, classified)
    runtime = _runtime(inputs, lesion, morphometry_s, classified.seconds)

    make_output_folder(json_path)
    gradcam_paths, gradcam_s = write_saliency(json_path, request.image_path, inputs.image, classified.saliency)
    if gradcam_s is not None:
        runtime["gradcam_write"] = gradcam_s
    table_path, labels_path = write_lesion_table(json_path, request.image_path, inputs.image, lesion,
                                                 morphometry, classified.diagnosis)
    packages = models.selection.packages(with_t1c=inputs.t1c is not None, segmented=lesion.source == "automatic")
    trust = trust_stage(inputs, lesion, classified, packages)
    document = build_document(request, inputs, lesion, morphometry, classified, warnings, runtime, packages,
                              _gradcam_records(used, gradcam_paths) if request.gradcam else None, trust)
    document.write(json_path)
    for message in warnings:
        logger.warning(message)
    qc_page = qc_stage(request, inputs.image, lesion, document, classified.saliency)
    return ClassificationOutputs(json_path=json_path, document=document, lesion_path=lesion.path,
                                 qc_page=qc_page, gradcam_paths=gradcam_paths, lesion_table=table_path,
                                 lesion_labels=labels_path)


def check_outputs(request: ClassificationRequest) -> Path:
    """Check, before any work, the diagnosis JSON, the Grad-CAM maps and the QC folder; the JSON path."""
    json_path = check_output_path(request.diagnosis_output(), request.inputs, what="diagnosis JSON",
                                  nifti=False)
    check_qc_folder(request.segmentation.qc.folder)
    table, labels = lesion_table_outputs(json_path, request.image_path)
    check_output_path(table, request.inputs, what="lesion table", nifti=False)
    check_output_path(labels, request.inputs, what="lesion label map")
    if request.gradcam:
        for role in ROLE_CLASSES:
            check_output_path(gradcam_output(json_path, request.image_path, role), request.inputs,
                              what=f"Grad-CAM map of {role}")
    return json_path


def load_inputs(request: ClassificationRequest) -> ClassificationInputs:
    """The T2w image, and the cT1w image and vertebral labels when given (both on its grid)."""
    start = time.perf_counter()
    image = load_image(request.image_path, what="T2w image")
    t1c = _load_t1c(request.t1c_path, image)
    vert = None
    if request.vert_path is not None:
        vert_image = load_image(request.vert_path, what="vertebral labels")
        if not vert_image.grid.same_space(image.grid):
            raise InputError(f"{request.vert_path}: vertebral labels are not on the grid of {request.image_path}")
        vert = np.rint(vert_image.data).astype(np.int32)
    return ClassificationInputs(image=image, t1c=t1c, vertebral_labels=vert, load_s=time.perf_counter() - start)


def _load_t1c(path: Path | None, image: Image) -> Image | None:
    if path is None:
        return None
    t1c = load_image(path, what="cT1w image")
    if not t1c.grid.same_space(image.grid):
        raise InputError(f"{path}: cT1w image is not on the grid of the T2w image (shape {t1c.grid.shape} vs "
                         f"{image.grid.shape}, or affines differ); register it to the T2w first "
                         "(e.g. sct_register_multimodal)")
    return t1c


def lesion_mask_stage(request: ClassificationRequest, models: ClassificationModels,
                      inputs: ClassificationInputs) -> LesionMaskStage:
    """The ``-lesion`` mask (and the cord: ``-s``, or the localizer when loaded), else the segmentation's."""
    if request.lesion_path is None:
        return _segment_lesion(request, models, inputs.image)
    seg = request.segmentation
    start = time.perf_counter()
    mask, warnings = load_mask(request.lesion_path, inputs.image.grid, what="lesion mask")
    cord = None
    if seg.cord_mask_path is not None:
        cord = cord_from_mask_file(seg.cord_mask_path, inputs.image, source="user")
    elif models.segmentation is not None and models.segmentation.cord is not None:
        cord = models.segmentation.cord.localize(inputs.image)
    return LesionMaskStage(mask=mask, path=request.lesion_path, source="user", cord=cord,
                           warnings=_with_cord_warnings(warnings, cord),
                           runtime_s={"load": time.perf_counter() - start})


def _segment_lesion(request: ClassificationRequest, models: ClassificationModels, image: Image) -> LesionMaskStage:
    if models.segmentation is None:
        raise InputError("no -lesion mask given and no segmentation models loaded")
    outputs = run_segmentation(request.segmentation, models.segmentation, image=image, protected=request.inputs)
    mask = outputs.segmentation.mask
    if mask.dtype != bool:
        mask = mask > 0.5
    return LesionMaskStage(mask=mask, path=outputs.paths.mask, source="automatic", cord=outputs.cord,
                           warnings=_with_cord_warnings(outputs.warnings, outputs.cord),
                           runtime_s={f"segmentation_{k}": v for k, v in outputs.runtime_s.items() if k != "load"},
                           segmentation_trust=outputs.trust)


def _with_cord_warnings(warnings: Sequence[str], cord: CordLocalization | None) -> tuple[str, ...]:
    """``warnings``, then the cord's (once each), or the warning that there is no cord."""
    warnings = list(warnings)
    if cord is None:
        return (*warnings, "no cord mask (give -s): lesion position and lesion/cord intensity ratio not computed")
    return (*warnings, *[w for w in cord.warnings if w not in warnings])


def measure(inputs: ClassificationInputs, lesion: LesionMaskStage) -> LesionMorphometry:
    """Lesion morphometry (``lesion.morphometry``), with the cord and the vertebral labels when known."""
    image = inputs.image
    return measure_lesions(lesion.mask, image.zooms, image.affine, image=image.data,
                           cord_mask=lesion.cord.mask if lesion.cord else None,
                           vertebral_labels=inputs.vertebral_labels)


def classification_stage(request: ClassificationRequest, used: Mapping[str, Classifier],
                         inputs: ClassificationInputs, lesion: LesionMaskStage,
                         morphometry: LesionMorphometry) -> Classification:
    """Classifier inputs, classifiers, composition and saliency (stages 4-7), when there is a lesion."""
    if morphometry.count == 0:
        return Classification(results={}, diagnosis=None, saliency=SaliencyMaps(volumes={}, seconds={}),
                              warnings=(f"the lesion mask is empty ({lesion.path}): no diagnosis",), seconds={})
    slices = classifier_inputs(used, inputs, lesion.mask)
    runs = run_classifiers(used, slices, gradcam=request.gradcam, morphometry=morphometry)
    saliency = saliency_maps(runs, slices)
    seconds = {role: slices.seconds[role] + runs.seconds[role] + saliency.seconds.get(role, 0.0) for role in used}
    return Classification(results=runs.results, diagnosis=compose(used, runs.results), saliency=saliency,
                          warnings=slices.warnings, seconds=seconds)


def classifier_inputs(used: Mapping[str, Classifier], inputs: ClassificationInputs,
                      lesion_mask: np.ndarray) -> ClassifierInputs:
    """The input of each classifier; classifiers with the same input contract share one tensor."""
    built: dict[InputSpec, ClassifierSlices] = {}
    slices: dict[str, ClassifierSlices] = {}
    seconds: dict[str, float] = {}
    warnings = []
    for role, classifier in used.items():
        start = time.perf_counter()
        if classifier.input_contract not in built:
            built[classifier.input_contract] = classifier.inputs(inputs.image, lesion_mask, t1c=inputs.t1c)
        slices[role] = built[classifier.input_contract]
        seconds[role] = time.perf_counter() - start
        if slices[role].fallback:
            warnings.append(f"{role}: no slice reaches the minimum lesion area of the model card; "
                            "the slice(s) with the largest lesion area were used")
    return ClassifierInputs(slices=slices, warnings=tuple(warnings), seconds=seconds)


def run_classifiers(used: Mapping[str, Classifier], inputs: ClassifierInputs, *, gradcam: bool,
                    morphometry: LesionMorphometry | None = None) -> ClassifierRuns:
    """Run each classifier on its input; with ``gradcam``, keep the CAM of those that have one.

    ``morphometry`` (the lesions the inputs were built from) feeds the cards' fusion heads
    (``classify.fusion``)."""
    results: dict[str, ClassifierResult] = {}
    cams: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for role, classifier in used.items():
        start = time.perf_counter()
        results[role], cam = _classify(classifier, inputs.slices[role], morphometry,
                                       with_cam=gradcam and classifier.has_cam)
        if cam is not None:
            cams[role] = cam
        seconds[role] = time.perf_counter() - start
    return ClassifierRuns(results=results, cams=cams, seconds=seconds)


def _classify(classifier: Classifier, slices: ClassifierSlices, morphometry: LesionMorphometry | None, *,
              with_cam: bool) -> tuple[ClassifierResult, np.ndarray | None]:
    if with_cam:
        return classifier.classify_with_cam(slices, morphometry)
    return classifier.classify(slices, morphometry), None


def compose(used: Mapping[str, Classifier], results: Mapping[str, ClassifierResult]) -> Diagnosis:
    """The four-class diagnosis, with each classifier's low-confidence band."""
    return compose_diagnosis(dict(results), {role: c.low_confidence_band for role, c in used.items()})


def saliency_maps(runs: ClassifierRuns, inputs: ClassifierInputs) -> SaliencyMaps:
    """Each CAM as a volume on the image's canonical grid (``classify.gradcam.cam_volume``)."""
    volumes: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for role, cam in runs.cams.items():
        start = time.perf_counter()
        volumes[role] = cam_volume(cam, inputs.slices[role])
        seconds[role] = time.perf_counter() - start
    return SaliencyMaps(volumes=volumes, seconds=seconds)


def write_saliency(json_path: Path, image_path: Path, image: Image,
                   saliency: SaliencyMaps) -> tuple[dict[str, Path], float | None]:
    """Write the Grad-CAM maps beside the JSON; their paths, and the seconds taken (None: no map)."""
    start = time.perf_counter()
    paths = {role: gradcam_output(json_path, image_path, role) for role in saliency.volumes}
    for role, volume in saliency.volumes.items():
        save_like(volume, image.grid, paths[role], dtype=np.float32)
    return paths, (time.perf_counter() - start if paths else None)


def write_lesion_table(json_path: Path, image_path: Path, image: Image, lesion: LesionMaskStage,
                       morphometry: LesionMorphometry, diagnosis: Diagnosis | None) -> tuple[Path, Path]:
    """Write the lesion table (``lesion.analysis_table``) and its label map beside the JSON; their paths.

    The label map holds the lesions' numbers on the input's grid (``save_like``, as the mask);
    the table's last columns are the diagnosis probabilities ``p_<class>`` and
    ``most_likely_class`` (empty without a diagnosis), the same on every row.
    """
    table_path, labels_path = lesion_table_outputs(json_path, image_path)
    labels, count = morphometry.labels, morphometry.count  # as measure_lesions numbered the lesions
    subject = {f"p_{name}": number_cell(None if diagnosis is None else diagnosis.probabilities[name])
               for name in CLASSES}
    subject["most_likely_class"] = "" if diagnosis is None else diagnosis.most_likely_class
    table = build_table(labels, morphometry.lesions, image.zooms, image_name=output_stem(image_path),
                        image=image.data, cord_mask=lesion.cord.mask if lesion.cord else None,
                        subject_values=subject)
    save_like(labels, image.grid, labels_path, dtype=label_map_dtype(count))
    table.write(table_path)
    return table_path, labels_path


def _gradcam_records(used: Mapping[str, Classifier], paths: Mapping[str, Path]) -> dict[str, GradcamRecord]:
    return {role: GradcamRecord(path=str(path), model_name=used[role].package.name,
                                normalization=GRADCAM_NORMALIZATION) for role, path in paths.items()}


def gather_warnings(request: ClassificationRequest, image: Image, lesion: LesionMaskStage,
                    morphometry: LesionMorphometry, used: Mapping[str, Classifier],
                    choice_warnings: tuple[str, ...], classified: Classification) -> tuple[str, ...]:
    """Every warning of the run, in pipeline order, each once."""
    warnings = [*lesion.warnings, *morphometry.warnings, *choice_warnings]
    if request.gradcam:
        warnings += [f"-gradcam 1: model {c.package.name} has no CAM output; re-export it with this version "
                     f"(no Grad-CAM map for {role})" for role, c in used.items() if not c.has_cam]
    warnings += classified.warnings
    warnings += [SYNTHETIC_WARNING.format(name=c.package.name, version=c.package.version)
                 for c in used.values() if c.package.card.training.synthetic_data]
    warnings += acquisition_warnings(image)
    return tuple(dict.fromkeys(warnings))


def acquisition_warnings(image: Image) -> list[str]:
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


def trust_stage(inputs: ClassificationInputs, lesion: LesionMaskStage, classified: Classification,
                packages: Sequence[ModelPackage]) -> TrustAssessment:
    """The trust checks of the run (``sct_lesion_classify.trust``): input, masks and classifiers.

    The input and mask checks are the segmentation's when it ran here (same image, cord, mask and
    segmentation cards, which come first in ``packages``); computed here for a given mask.
    """
    if lesion.segmentation_trust is not None:
        mask_checks = list(lesion.segmentation_trust.checks)
    else:
        image = inputs.image
        mask_checks = segmentation_checks(image.data, image.zooms, lesion.cord, lesion.mask, packages)
    return assess([*mask_checks, *classification_checks(classified.results, classified.diagnosis)])


def _trusted_diagnosis(diagnosis: Diagnosis | None, trust: TrustAssessment) -> Diagnosis | None:
    """The diagnosis, its confidence made low when the trust level is not ok."""
    if diagnosis is None or trust.level == "ok":
        return diagnosis
    return diagnosis.with_low_confidence(f"trust level {trust.level}: {', '.join(trust.codes)}")


def _runtime(inputs: ClassificationInputs, lesion: LesionMaskStage, morphometry_s: float,
             per_role: Mapping[str, float]) -> dict[str, float]:
    """Seconds per stage, as the JSON's ``provenance.runtime_s`` records them (``batch.table`` groups them)."""
    runtime = {"load": inputs.load_s}
    for stage, seconds in lesion.runtime_s.items():
        runtime[stage] = runtime.get(stage, 0.0) + seconds
    runtime["morphometry"] = morphometry_s
    runtime.update({f"classify_{role}": seconds for role, seconds in per_role.items()})
    return runtime


def build_document(request: ClassificationRequest, inputs: ClassificationInputs, lesion: LesionMaskStage,
                   morphometry: LesionMorphometry, classified: Classification, warnings: tuple[str, ...],
                   runtime: Mapping[str, float], packages: Sequence[ModelPackage],
                   gradcam: Mapping[str, GradcamRecord] | None, trust: TrustAssessment) -> DiagnosisDocument:
    """The typed diagnosis document of the run (its confidence low unless ``trust`` is ok)."""
    grid = inputs.image.grid
    cord = lesion.cord
    return DiagnosisDocument(
        input=InputRecord(
            path=str(request.image_path), sha256=file_sha256(request.image_path),
            shape=tuple(int(n) for n in grid.shape),
            voxel_size_mm=tuple(round(float(z), 6) for z in np.sqrt((grid.affine[:3, :3] ** 2).sum(axis=0))),
            orientation=grid.orientation, t1c_path=str(request.t1c_path) if request.t1c_path else None),
        lesion_mask=MaskRecord(path=str(lesion.path), source=lesion.source),
        cord_mask=None if cord is None else MaskRecord(
            path=str(cord.path) if cord.path and cord.source == "user" else None,
            source="automatic" if cord.source == "builtin" else cord.source),
        lesions=morphometry, classifiers=dict(classified.results),
        diagnosis=_trusted_diagnosis(classified.diagnosis, trust), warnings=warnings, trust=trust,
        provenance=Provenance(
            command_line=request.segmentation.command_line,
            date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            runtime_s=dict(runtime), models=tuple(ModelRecord.of(p) for p in packages)),
        gradcam=gradcam)


def qc_stage(request: ClassificationRequest, image: Image, lesion: LesionMaskStage, document: DiagnosisDocument,
             saliency: SaliencyMaps) -> Path | None:
    """The QC entry of the run (None without ``-qc``)."""
    qc = request.segmentation.qc
    if qc.folder is None:
        return None
    from sct_lesion_classify.qc import add_entry, classification_entry

    diagnosis = document.diagnosis
    draft = classification_entry(
        command="sct_classify_lesion", input_path=str(request.image_path), image=image.data,
        zooms_mm=image.zooms, lesion=lesion.mask,
        probabilities={role: result.probability for role, result in document.classifiers.items()},
        diagnosis=None if diagnosis is None else diagnosis.most_likely_class,
        class_probabilities=None if diagnosis is None else diagnosis.probabilities,
        confidence=None if diagnosis is None else diagnosis.confidence,
        saliency=dict(saliency.volumes) or None,
        cord_mask=lesion.cord.mask if lesion.cord else None, warnings=document.warnings,
        dataset=qc.dataset, subject=qc.subject, command_line=request.segmentation.command_line,
        trust_level=document.trust.level)
    return add_entry(qc.folder, draft)
