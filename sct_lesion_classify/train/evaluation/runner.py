"""Running the pipeline on every subject of a BIDS split, as the commands do.

Each subject goes through :func:`~sct_lesion_classify.pipeline.classification.run_classification`
(the code of ``sct_classify_lesion``, segmentation included unless manual lesion masks are asked
for); its outputs are written under the evaluation folder and compared with the manual masks.
Subjects without a diagnosis (healthy scans) go through the same code; their record holds the
predicted lesion volume (false positives) and the cord Dice.

When the pipeline classified a subject with cT1w-aware variants (the subject has a cT1w and the
variants are installed), the T2w-only classifiers also classify it, on the same lesion mask and
morphometry (no second segmentation), and the record keeps what they said under ``t2w_only``
(:func:`t2w_only_outcome`); the record's own figures stay those of the models the pipeline chose.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES, ClassifierResult, Diagnosis, role_label
from sct_lesion_classify.errors import LesionClassifyError
from sct_lesion_classify.io.bids import BidsSubject
from sct_lesion_classify.io.image import Image, load_image, load_mask
from sct_lesion_classify.pipeline.classification import (
    ClassificationInputs,
    ClassificationModels,
    ClassificationOutputs,
    ClassificationRequest,
    LesionMaskStage,
    classification_stage,
    run_classification,
)
from sct_lesion_classify.pipeline.options import SegmentationOptions
from sct_lesion_classify.pipeline.outputs import OutputNames
from sct_lesion_classify.pipeline.segmentation import SegmentationRequest
from sct_lesion_classify.train.decision_head import truth_morphometry
from sct_lesion_classify.train.evaluation.baseline import morphometry_features
from sct_lesion_classify.train.evaluation.metrics import dice, volume_outside

#: Margin around the true cord (mm) beyond which predicted lesion volume counts as outside it.
CORD_MARGIN_MM = 2.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ClassifierOutcome:
    """What a set of classifiers said about one subject: per role, the deciding probability of the
    positive class, the network's, the calibrated and the fused one (None: not in its card), and
    the four-class diagnosis composed from them (empty / None without a lesion).

    :class:`SubjectRecord` holds these fields for the classifiers that decided (keyword-only)."""

    probabilities: dict[str, float] = field(default_factory=dict)  # role -> P(positive class), deciding
    densenet_probabilities: dict[str, float] = field(default_factory=dict)
    calibrated_probabilities: dict[str, float | None] = field(default_factory=dict)
    fused_probabilities: dict[str, float | None] = field(default_factory=dict)
    positive_classes: dict[str, str] = field(default_factory=dict)
    class_probabilities: dict[str, float] = field(default_factory=dict)
    most_likely_class: str | None = None

    @classmethod
    def of(cls, results: Mapping[str, ClassifierResult], diagnosis: Diagnosis | None) -> "ClassifierOutcome":
        """The outcome of the classifiers' ``results`` and the ``diagnosis`` composed from them."""
        return cls(
            probabilities={role: round(float(r.probability), 6) for role, r in results.items()},
            densenet_probabilities={role: round(float(r.densenet_probability), 6) for role, r in results.items()},
            calibrated_probabilities={role: _rounded(r.calibrated_probability) for role, r in results.items()},
            fused_probabilities={role: _rounded(r.fused_probability) for role, r in results.items()},
            positive_classes={role: r.positive_class for role, r in results.items()},
            class_probabilities={} if diagnosis is None else dict(diagnosis.probabilities),
            most_likely_class=None if diagnosis is None else diagnosis.most_likely_class)

    def values(self) -> dict:
        """The fields by name (as :class:`SubjectRecord` holds them)."""
        return {f.name: getattr(self, f.name) for f in fields(ClassifierOutcome)}

    def to_json(self) -> dict:
        """A JSON-ready dict: the record's keys of these figures (``positive_classes`` left out)."""
        return {name: value for name, value in self.values().items() if name != "positive_classes"}


@dataclass(frozen=True)
class SubjectRecord(ClassifierOutcome):
    """What the pipeline gave for one subject, against its manual masks and diagnosis; the
    :class:`ClassifierOutcome` fields are those of the classifiers that decided."""

    participant_id: str
    diagnosis: str  # "" for a subject without one (a healthy scan)
    difficult: bool
    status: str  # "ok" or the error message
    cord_dice: float | None = None
    lesion_dice: float | None = None
    lesion_detected: bool | None = None
    predicted_lesion_mm3: float | None = None
    true_lesion_mm3: float | None = None  # the manual lesion mask's volume
    outside_cord_mm3: float | None = None  # predicted lesion beyond the true cord + CORD_MARGIN_MM
    features: tuple[float, ...] = ()
    #: The T2w-only classifiers on the same mask, when cT1w-aware variants decided (else None).
    t2w_only: ClassifierOutcome | None = None
    #: The codes of the trust checks that fired on the result (None: not recorded, e.g. a failure).
    trust_checks: tuple[str, ...] | None = None

    @property
    def outcome(self) -> ClassifierOutcome:
        """The deciding classifiers' figures of this record."""
        return ClassifierOutcome(**self.values())

    def with_t2w_only(self) -> "SubjectRecord":
        """This record with the T2w-only classifiers' figures in place of the deciding ones (for
        the report's comparison); the record itself when there are none."""
        if self.t2w_only is None:
            return self
        return replace(self, **self.t2w_only.values(), t2w_only=None)

    def truth(self, role: str) -> bool | None:
        """Whether the subject is positive for ``role`` (None if the model does not apply)."""
        label = role_label(self.diagnosis, role)
        if label is None:
            return None
        return label == self.positive_classes.get(role, ROLE_CLASSES[role][0])

    def to_json(self) -> dict:
        """A JSON-ready dict (NaN as None)."""
        def clean(x):
            return None if isinstance(x, float) and x != x else x
        document = {
            "participant_id": self.participant_id, "diagnosis": self.diagnosis, "difficult": self.difficult,
            "status": self.status, "cord_dice": clean(self.cord_dice), "lesion_dice": clean(self.lesion_dice),
            "lesion_detected": self.lesion_detected,
            "predicted_lesion_mm3": None if self.predicted_lesion_mm3 is None else round(self.predicted_lesion_mm3, 3),
            "true_lesion_mm3": None if self.true_lesion_mm3 is None else round(self.true_lesion_mm3, 3),
            "outside_cord_mm3": None if self.outside_cord_mm3 is None else round(self.outside_cord_mm3, 3),
            "trust_checks": None if self.trust_checks is None else list(self.trust_checks),
            **self.outcome.to_json(),
        }
        if self.t2w_only is not None:  # only where cT1w-aware variants decided: T2w-only reports are unchanged
            document["t2w_only"] = self.t2w_only.to_json()
        return document


def evaluate_subjects(subjects: Iterable[BidsSubject], models: ClassificationModels, output_dir: Path, *,
                      use_manual_lesion: bool = False,
                      progress: Callable[[SubjectRecord], None] | None = None) -> list[SubjectRecord]:
    """Run the pipeline on each subject and compare with its manual masks.

    A subject whose processing fails is recorded with its error; the others go on.
    """
    records = []
    for subject in subjects:
        try:
            record = _evaluate_one(subject, models, output_dir, use_manual_lesion)
        except LesionClassifyError as exc:
            record = SubjectRecord(subject.participant_id, subject.diagnosis or "", bool(subject.difficult),
                                   status=f"failed: {exc}")
            logger.warning("%s: %s", subject.participant_id, exc)
        records.append(record)
        if progress is not None:
            progress(record)
    return records


def _evaluate_one(subject: BidsSubject, models: ClassificationModels, output_dir: Path,
                  use_manual_lesion: bool) -> SubjectRecord:
    folder = output_dir / "predictions" / subject.participant_id / "anat"
    names = OutputNames.of(subject.t2w)
    seg_request = SegmentationRequest(
        image_path=subject.t2w, output_path=folder / names.lesion_mask,
        options=SegmentationOptions(save_cord=True),
        command_line=f"sct_lesion_classify evaluate ({subject.participant_id})")
    request = ClassificationRequest(segmentation=seg_request,
                                    lesion_path=subject.lesion_mask if use_manual_lesion else None,
                                    t1c_path=subject.t1c, output_path=folder / names.diagnosis)
    outputs = run_classification(request, models)

    image = load_image(subject.t2w, what="T2w image")
    record = dict(participant_id=subject.participant_id, diagnosis=subject.diagnosis or "",
                  difficult=bool(subject.difficult), status="ok",
                  features=tuple(morphometry_features(outputs.morphometry)),
                  trust_checks=outputs.document.trust.codes)
    predicted_lesion, _ = load_mask(outputs.lesion_path, image.grid, what="predicted lesion mask")
    # counted on the mask read back (not outputs.morphometry.total_volume_mm3): the Dice and the volume
    # outside the cord use this mask, and a soft map (threshold 0) is binarized at >= 0.5 here but at > 0.5
    # by the pipeline, so the two volumes can differ there; they agree for a binary mask
    record["predicted_lesion_mm3"] = float(predicted_lesion.sum()) * float(np.prod(image.zooms))
    if subject.lesion_mask is not None:
        truth, _ = load_mask(subject.lesion_mask, image.grid, what="manual lesion mask")
        record["lesion_dice"] = dice(predicted_lesion, truth)
        record["true_lesion_mm3"] = float(truth.sum()) * float(np.prod(image.zooms))
        record["lesion_detected"] = bool((predicted_lesion & truth).any())
    if subject.cord_mask is not None:
        true_cord, _ = load_mask(subject.cord_mask, image.grid, what="manual cord mask")
        record["outside_cord_mm3"] = volume_outside(predicted_lesion, true_cord, image.zooms,
                                                    CORD_MARGIN_MM).outside_mm3
        cord_file = folder / names.cord_mask
        if cord_file.is_file():
            predicted_cord, _ = load_mask(cord_file, image.grid, what="predicted cord mask")
            record["cord_dice"] = dice(predicted_cord, true_cord)
    classifiers = outputs.document.classifiers
    record.update(ClassifierOutcome.of(classifiers, outputs.diagnosis).values())
    if subject.t1c is not None and models.t1c_classifiers and classifiers:
        # the cT1w-aware variants decided: the T2w-only classifiers on the same mask, for the comparison
        record["t2w_only"] = t2w_only_outcome(models, request, image, predicted_lesion, outputs)
    return SubjectRecord(**record)


def t2w_only_outcome(models: ClassificationModels, request: ClassificationRequest, image: Image,
                     lesion_mask: np.ndarray, outputs: ClassificationOutputs) -> ClassifierOutcome:
    """The T2w-only classifiers (``models.classifiers``) on the lesion mask and morphometry of a run.

    Runs the pipeline's classification stage (inputs, classifiers, decision heads, composition)
    on what ``run_classification`` already computed: ``lesion_mask`` (its mask, read back from
    ``outputs.lesion_path``: the pipeline's own for the binary masks evaluate writes) and ``outputs.morphometry`` (which fed the fusion heads), so
    nothing is segmented, localized or measured again and no file is written.

    Parameters
    ----------
    models
        The run's models.
    request
        The run's request.
    image
        The T2w image.
    lesion_mask
        The run's lesion mask (bool, canonical).
    outputs
        What the run computed and wrote.
    """
    lesion = LesionMaskStage(mask=lesion_mask, path=outputs.lesion_path,
                             source=outputs.document.lesion_mask.source, cord=None, warnings=(), runtime_s={})
    inputs = ClassificationInputs(image=image, t1c=None, vertebral_labels=None, load_s=0.0)
    classified = classification_stage(replace(request, gradcam=False), models.classifiers, inputs, lesion,
                                      outputs.morphometry)
    return ClassifierOutcome.of(classified.results, classified.diagnosis)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def manual_mask_features(subjects: Iterable[BidsSubject]) -> tuple[np.ndarray, list[BidsSubject]]:
    """Morphometry features from the manual masks (to fit the baseline on the training split),
    measured as training measures them for the fusion head (``train.decision_head.truth_morphometry``)."""
    rows, used = [], []
    for subject in subjects:
        if subject.lesion_mask is None or subject.diagnosis is None:
            continue
        rows.append(morphometry_features(truth_morphometry(subject)))
        used.append(subject)
    return np.array(rows), used
