"""One classifier package run on the slices that contain lesion (the paper's per-slice rule).

:class:`Classifier` holds a package and its ONNX Runtime session (built once). ``classify``
builds the input with :func:`~sct_lesion_classify.classify.inputs.build_classifier_slices` (the
function training uses too), runs every slice and returns the slice probabilities and their mean,
the network's patient probability (the card's ``decision.aggregation``), then applies the card's
decision head (:class:`~sct_lesion_classify.classify.fusion.DecisionHead`: calibration, and the
fusion with the lesion morphometry when the caller gives it). ``classify_with_cam`` also
returns the class-activation map of each slice from the same network call (packages whose card
names an ``output.cam_tensor``; :mod:`sct_lesion_classify.classify.gradcam` maps it to the image).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES, ClassifierResult
from sct_lesion_classify.classify.fusion import DecisionHead
from sct_lesion_classify.classify.inputs import ClassifierSlices, build_classifier_slices
from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.modelpkg.card import InputSpec
from sct_lesion_classify.modelpkg.package import ModelPackage
from sct_lesion_classify.runtime.preprocess import CanonicalVolume
from sct_lesion_classify.runtime.session import Predictor

if TYPE_CHECKING:
    from sct_lesion_classify.lesion.morphometry import LesionMorphometry

logger = logging.getLogger(__name__)


class Classifier:
    """A classifier package ready to classify many subjects with one session.

    Parameters
    ----------
    package
        A verified package with ``task == "classification"``.
    role
        The step it serves (:data:`~sct_lesion_classify.classify.diagnosis.ROLE_CLASSES`).
    threads
        ONNX Runtime intra-op threads (default: the usable cores).
    batch_size
        Slices per network call.
    """

    def __init__(self, package: ModelPackage, role: str, *, threads: int | None = None,
                 batch_size: int = 8) -> None:
        card = package.card
        if card.task != "classification" or card.decision is None:
            raise ModelError(f"{package.folder}: model {card.name} is not a classifier")
        if role not in ROLE_CLASSES or set(card.output.classes) != set(ROLE_CLASSES[role]):
            raise ModelError(f"{package.folder}: model {card.name} separates {list(card.output.classes)}, "
                             f"not {list(ROLE_CLASSES.get(role, ()))}")
        if card.decision.aggregation != "mean":
            raise ModelError(f"{package.card_path}: aggregation {card.decision.aggregation!r} is not supported")
        self.package = package
        self.role = role
        self.batch_size = batch_size
        self.head = DecisionHead.of_card(card, source=str(package.card_path))
        self._predictor = Predictor.create(package, threads=threads)

    @property
    def low_confidence_band(self) -> float:
        """The card's band around 0.5 within which the decision is low-confidence."""
        return float(self.package.card.decision.low_confidence_band)

    @property
    def input_contract(self) -> InputSpec:
        """What :meth:`inputs` depends on besides the images: the card's ``input`` section (its
        first channel says whether the cT1w is used). Classifiers with equal contracts get the
        same tensor, so a caller builds it once for all of them."""
        return self.package.card.input

    def inputs(self, t2w: CanonicalVolume, lesion_mask: np.ndarray,
               t1c: CanonicalVolume | None = None) -> ClassifierSlices:
        """The network input of one subject: T2w image, lesion mask on its grid, optional cT1w
        image on its grid (used only by a cT1w-aware model)."""
        return build_classifier_slices(t2w, lesion_mask, self.package.card.input, t1c=t1c)

    @property
    def has_cam(self) -> bool:
        """Whether the package outputs a class-activation map (card ``output.cam_tensor``)."""
        return self._predictor.cam_name is not None

    def classify(self, slices: ClassifierSlices, morphometry: LesionMorphometry | None = None
                 ) -> ClassifierResult:
        """Slice probabilities of the positive class, their mean, and the card's decision head.

        ``morphometry`` (the lesions the slices were built from) feeds the card's fusion head;
        without it the decision uses the calibrated (or the network's) probability.

        Raises
        ------
        ModelError
            When there is no slice (an empty lesion mask gets no diagnosis: callers check first).
        """
        result, _ = self._run(slices, morphometry, with_cam=False)
        return result

    def classify_with_cam(self, slices: ClassifierSlices, morphometry: LesionMorphometry | None = None
                          ) -> tuple[ClassifierResult, np.ndarray]:
        """:meth:`classify`, plus the CAM ``(N, h, w)`` of each slice (same network calls).

        Raises
        ------
        ModelError
            No slice, or a package without CAM output (check :attr:`has_cam` first).
        """
        result, cam = self._run(slices, morphometry, with_cam=True)
        assert cam is not None
        return result, cam

    def _run(self, slices: ClassifierSlices, morphometry: LesionMorphometry | None, *,
             with_cam: bool) -> tuple[ClassifierResult, np.ndarray | None]:
        if slices.empty:
            raise ModelError(f"model {self.package.name}: no slice to classify (empty lesion mask)")
        card = self.package.card
        probabilities, cams = [], []
        for start in range(0, slices.batch.shape[0], self.batch_size):
            batch = slices.batch[start:start + self.batch_size]
            if with_cam:
                output, cam = self._predictor.predict_with_cam(batch)
                cams.append(cam)
            else:
                output = self._predictor.predict(batch)
            probabilities.append(self._positive_probability(output))
        per_slice = np.clip(np.concatenate(probabilities), 0.0, 1.0)
        head = self.head.apply(float(per_slice.mean()), morphometry)
        result = ClassifierResult(
            role=self.role, model_name=card.name, model_version=card.version,
            model_sha256=self.package.sha256, positive_class=card.output.positive_class,
            probability=head.decided, slice_probabilities=tuple(float(p) for p in per_slice),
            slices_used=slices.slice_indices, densenet_probability=head.densenet,
            calibrated_probability=head.calibrated, fused_probability=head.fused)
        return result, (np.concatenate(cams) if with_cam else None)

    def _positive_probability(self, output: np.ndarray) -> np.ndarray:
        card = self.package.card
        output = output.reshape(output.shape[0], -1)
        if output.shape[1] == 1:
            values = output[:, 0]
            return 1.0 / (1.0 + np.exp(-values)) if card.output.activation == "none" else values
        if card.output.activation == "none":
            shifted = np.exp(output - output.max(axis=1, keepdims=True))
            output = shifted / shifted.sum(axis=1, keepdims=True)
        return output[:, card.positive_index]
