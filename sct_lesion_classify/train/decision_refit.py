"""Refitting the classifiers' decision heads on the lesion masks the pipeline segments.

``train`` fits each classifier's calibration (temperature) and fusion with morphometry on the
validation patients' *manual* lesion masks (:mod:`sct_lesion_classify.train.decision_head`). A
user who lets the pipeline segment gets other masks: a plaque segmented at half its size, a
lesion split in two, a mask centred elsewhere. The network's probability and the morphometry then
move, and a head fitted on manual masks is neither calibrated nor well fused for them.

:func:`score_subjects` runs the pipeline on the validation subjects (segmentation with the loaded
lesion model and cord localizer, then each classifier on the segmented mask, the T2w-only ones
always and the cT1w-aware variants where the subject has a cT1w image) and keeps, per package, each
patient's network probability (before calibration) and the segmented mask's morphometry.
:func:`refit_card` fits the same calibration and fusion on those (the functions of
:mod:`~sct_lesion_classify.train.decision_head`) and returns the card with them, the
``fitted_on`` text naming the segmentation packages, and the head's figures on these patients in
``metrics["decision_head"]``. The network (the ONNX file and its sha256) is not touched.

``sct_lesion_classify calibrate`` is the command (``cli.calibrate``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from sct_lesion_classify.classify.diagnosis import role_label
from sct_lesion_classify.classify.fusion import DecisionHead
from sct_lesion_classify.errors import LesionClassifyError
from sct_lesion_classify.io.bids import BidsSubject
from sct_lesion_classify.lesion.morphometry import LesionMorphometry
from sct_lesion_classify.modelpkg.card import ModelCard
from sct_lesion_classify.pipeline.classification import (
    ClassificationModels,
    ClassificationRequest,
    classification_stage,
    lesion_mask_stage,
    load_inputs,
    measure,
)
from sct_lesion_classify.pipeline.options import SegmentationOptions
from sct_lesion_classify.pipeline.outputs import OutputNames
from sct_lesion_classify.pipeline.segmentation import SegmentationRequest
from sct_lesion_classify.train.decision_head import fit_calibration, fit_fusion, head_metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatientScore:
    """One patient as a classifier saw it through the pipeline.

    Attributes
    ----------
    participant_id
        The BIDS subject.
    probability
        The network's patient probability of the positive class (the mean of its slice
        probabilities, before calibration or fusion).
    morphometry
        The morphometry of the segmented lesion mask (what the fusion head reads at inference).
    label
        1 when the subject's diagnosis is the classifier's positive class, else 0.
    """

    participant_id: str
    probability: float
    morphometry: LesionMorphometry
    label: int


def score_subjects(subjects: Iterable[BidsSubject], models: ClassificationModels, work_dir: Path, *,
                   progress: Callable[[BidsSubject], None] | None = None) -> dict[str, list[PatientScore]]:
    """Segment each subject once and score it with every classifier that applies to it.

    Parameters
    ----------
    subjects
        Labelled subjects (a diagnosis); the others are skipped with a warning.
    models
        The loaded packages; ``models.segmentation`` must hold the lesion model.
    work_dir
        Where the segmented masks are written (``<work_dir>/<k>_<participant_id>/`` for the k-th
        subject: two datasets may both hold a ``sub-001``).
    progress
        Called after each subject.

    Returns
    -------
    dict
        Package name -> the patients it classified. A subject the pipeline refuses (e.g. no cord
        found) or whose segmentation finds no lesion is left out, with a warning: the classifiers
        never see it at inference either.
    """
    scores: dict[str, list[PatientScore]] = {}
    for index, subject in enumerate(subjects):
        for name, score in _score_subject(subject, models, work_dir / f"{index:04d}_{subject.participant_id}"):
            scores.setdefault(name, []).append(score)
        if progress is not None:
            progress(subject)
    return scores


def _score_subject(subject: BidsSubject, models: ClassificationModels,
                   folder: Path) -> list[tuple[str, PatientScore]]:
    """(package name, score) of each classifier that applies to ``subject``; none when it is left out."""
    if subject.diagnosis is None:
        logger.warning("%s: no diagnosis in participants.tsv: skipped", subject.participant_id)
        return []
    request = ClassificationRequest(
        segmentation=SegmentationRequest(image_path=subject.t2w,
                                         output_path=folder / OutputNames.of(subject.t2w).lesion_mask,
                                         options=SegmentationOptions(),
                                         command_line=f"sct_lesion_classify calibrate ({subject.participant_id})"),
        t1c_path=subject.t1c)
    try:
        inputs = load_inputs(request)
        lesion = lesion_mask_stage(request, models, inputs)
    except LesionClassifyError as exc:  # the pipeline would refuse this image too: not used
        logger.warning("%s: skipped (%s)", subject.participant_id, exc)
        return []
    morphometry = measure(inputs, lesion)
    if morphometry.count == 0:
        logger.warning("%s: the segmentation found no lesion: not used for the decision heads",
                       subject.participant_id)
        return []
    # the T2w-only classifiers, then (with a cT1w) the set the pipeline uses for this image, of
    # which only the cT1w-aware variants are new (the composition needs all three roles)
    runs = [(models.classifiers, replace(inputs, t1c=None), set(models.classifiers))]
    if inputs.t1c is not None and models.t1c_classifiers:
        runs.append((models.for_image(with_t1c=True)[0], inputs, set(models.t1c_classifiers)))
    scored = []
    for used, run_inputs, roles in runs:
        classified = classification_stage(request, used, run_inputs, lesion, morphometry)
        for role, result in classified.results.items():
            truth = role_label(subject.diagnosis, role)
            if role in roles and truth is not None:
                scored.append((result.model_name, PatientScore(
                    subject.participant_id, float(result.densenet_probability), morphometry,
                    int(truth == result.positive_class))))
    return scored


def refit_card(card: ModelCard, scores: Sequence[PatientScore], fitted_on: str) -> ModelCard | None:
    """``card`` with its calibration and fusion fitted on ``scores``; None (with a warning) when
    they cannot be fitted there (patients of one class only: the card is then left as it is).

    The fusion is left out, as ``train`` leaves it out, with too few patients of each class
    (:func:`~sct_lesion_classify.train.decision_head.fit_fusion`).
    """
    probabilities = [s.probability for s in scores]
    labels = [s.label for s in scores]
    morphometries = [s.morphometry for s in scores]
    calibration = fit_calibration(probabilities, labels, fitted_on)
    if calibration is None:
        logger.warning("%s: the decision head is left as trained", card.name)
        return None
    fusion = fit_fusion(probabilities, morphometries, labels, calibration.temperature, fitted_on)
    head = DecisionHead.of(calibration, fusion, source=f"{card.name} refitted decision head")
    figures = head_metrics(head, probabilities, morphometries, labels)
    metrics = {**card.metrics, "decision_head": {"fitted_on": fitted_on, "patients": len(scores), **figures}}
    return replace(card, decision=replace(card.decision, calibration=calibration), fusion=fusion, metrics=metrics)


def fitted_on_text(n_patients: int, segmentation: Sequence[Any]) -> str:
    """The ``fitted_on`` of a refitted head: the split, the patients and the segmentation packages
    (``segmentation``: the packages that made the masks, e.g. the cord localizer and the lesion model)."""
    packages = ", ".join(f"{package.name} {package.version}" for package in segmentation)
    return f"validation split, {n_patients} patients, lesion masks segmented by {packages}"
