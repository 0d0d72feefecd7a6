"""Composition of the three binary classifiers into a four-class diagnosis (SPEC section 3).

Model 1 separates tumour from demyelinating lesion, model 2 astrocytoma from ependymoma (among
tumours), model 3 MS from NMOSD (among demyelinating lesions). The four class probabilities are
composed hierarchically::

    P(astrocytoma) = P(tumor) * P(astrocytoma | tumor)
    P(ependymoma)  = P(tumor) * P(ependymoma | tumor)
    P(MS)          = P(demyelinating) * P(MS | demyelinating)
    P(NMOSD)       = P(demyelinating) * P(NMOSD | demyelinating)

so they sum to 1. The most likely class is the largest of the four. The confidence is ``"low"``
when a deciding probability (model 1, then the model of the chosen group) lies within the band
around 0.5 that its model's card sets, or when the group chosen by model 1 is not the group of the most likely class
(possible only when model 1 is itself near 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: Classifier roles, in the order of the hierarchy; the pair of classes each one separates.
TUMOR_VS_DEMYELINATING = "tumor_vs_demyelinating"
ASTROCYTOMA_VS_EPENDYMOMA = "astrocytoma_vs_ependymoma"
MS_VS_NMOSD = "ms_vs_nmosd"
ROLE_CLASSES: dict[str, tuple[str, str]] = {
    TUMOR_VS_DEMYELINATING: ("tumor", "demyelinating"),
    ASTROCYTOMA_VS_EPENDYMOMA: ("astrocytoma", "ependymoma"),
    MS_VS_NMOSD: ("MS", "NMOSD"),
}
CLASSES = ("astrocytoma", "ependymoma", "MS", "NMOSD")
GROUP_OF = {"astrocytoma": "tumor", "ependymoma": "tumor", "MS": "demyelinating", "NMOSD": "demyelinating"}
#: The names of the deciding probabilities (``Diagnosis.deciding_probabilities``) and their models.
P_TUMOR, P_ASTROCYTOMA, P_MS = "P(tumor)", "P(astrocytoma | tumor)", "P(MS | demyelinating)"
DECIDING_ROLE = {P_TUMOR: TUMOR_VS_DEMYELINATING, P_ASTROCYTOMA: ASTROCYTOMA_VS_EPENDYMOMA, P_MS: MS_VS_NMOSD}


def role_label(diagnosis: str, role: str) -> str | None:
    """The class of ``role`` a patient with ``diagnosis`` belongs to; None if the model does not apply.

    ``role_label("MS", "tumor_vs_demyelinating") == "demyelinating"``;
    ``role_label("MS", "astrocytoma_vs_ependymoma") is None``.
    """
    label = GROUP_OF[diagnosis] if role == TUMOR_VS_DEMYELINATING else diagnosis
    return label if label in ROLE_CLASSES[role] else None


@dataclass(frozen=True)
class ClassifierResult:
    """What one classifier said about one patient.

    Attributes
    ----------
    role
        One of :data:`ROLE_CLASSES`.
    model_name, model_version, model_sha256
        The model package that produced it.
    positive_class
        The class whose probability the model outputs.
    probability
        Patient probability of ``positive_class`` that the decision uses: ``fused_probability``
        when there is one, else ``calibrated_probability``, else ``densenet_probability``
        (:mod:`sct_lesion_classify.classify.fusion`).
    slice_probabilities
        One probability per slice used, in the order of ``slices_used``.
    slices_used
        Indices of the sagittal slices (canonical axis 0) that were classified.
    densenet_probability
        The network's patient probability: the mean of the slice probabilities (None when built
        without it: then ``probability`` is that mean).
    calibrated_probability
        After the card's temperature scaling; None for an uncalibrated model.
    fused_probability
        The card's late fusion of the calibrated logit with the lesion morphometry; None
        without a fusion head.
    """

    role: str
    model_name: str
    model_version: str
    model_sha256: str
    positive_class: str
    probability: float
    slice_probabilities: tuple[float, ...]
    slices_used: tuple[int, ...]
    densenet_probability: float | None = None
    calibrated_probability: float | None = None
    fused_probability: float | None = None

    def __post_init__(self) -> None:
        if self.densenet_probability is None:
            if self.calibrated_probability is not None or self.fused_probability is not None:
                raise ValueError(f"{self.model_name}: a calibrated or fused probability needs the network's")
            object.__setattr__(self, "densenet_probability", self.probability)
        decided = next(p for p in (self.fused_probability, self.calibrated_probability,
                                   self.densenet_probability) if p is not None)
        if self.probability != decided:
            raise ValueError(f"{self.model_name}: probability {self.probability} is not the fused, else "
                             f"calibrated, else network probability ({decided})")
        if self.role not in ROLE_CLASSES:
            raise ValueError(f"unknown classifier role {self.role!r}")
        if self.positive_class not in ROLE_CLASSES[self.role]:
            raise ValueError(f"{self.model_name}: positive class {self.positive_class!r} is not one of "
                             f"{ROLE_CLASSES[self.role]}")
        for value in (self.densenet_probability, self.calibrated_probability, self.fused_probability):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{self.model_name}: probability {value} outside [0, 1]")
        if len(self.slice_probabilities) != len(self.slices_used):
            raise ValueError(f"{self.model_name}: one probability per slice used is needed")

    def probability_of(self, class_name: str) -> float:
        """Probability of either of the two classes this model separates."""
        first, second = ROLE_CLASSES[self.role]
        if class_name not in (first, second):
            raise ValueError(f"{self.model_name} does not separate {class_name!r}")
        return self.probability if class_name == self.positive_class else 1.0 - self.probability

    def to_json(self) -> dict:
        """The ``classifiers.<role>`` entry of the diagnosis JSON."""
        return {
            "model": self.model_name,
            "version": self.model_version,
            "sha256": self.model_sha256,
            "positive_class": self.positive_class,
            "probability": round(float(self.probability), 6),
            "densenet_probability": round(float(self.densenet_probability), 6),
            "calibrated_probability": _rounded(self.calibrated_probability),
            "fused_probability": _rounded(self.fused_probability),
            "calibrated": self.calibrated,
            "fused": self.fused,
            "slice_probabilities": [round(float(p), 6) for p in self.slice_probabilities],
            "slices_used": [int(i) for i in self.slices_used],
        }

    @property
    def calibrated(self) -> bool:
        """Whether the model's card calibrates its probability."""
        return self.calibrated_probability is not None

    @property
    def fused(self) -> bool:
        """Whether ``probability`` is the fusion of the network with the morphometry."""
        return self.fused_probability is not None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


@dataclass(frozen=True)
class Diagnosis:
    """The four-class diagnosis composed from the three classifiers."""

    probabilities: dict[str, float]
    most_likely_class: str
    group: str
    confidence: str
    deciding_probabilities: dict[str, float]
    low_confidence_bands: dict[str, float]
    reasons: tuple[str, ...]

    def with_low_confidence(self, reason: str) -> "Diagnosis":
        """This diagnosis with confidence ``"low"`` and ``reason`` added to its reasons."""
        return replace(self, confidence="low", reasons=(*self.reasons, reason))

    def to_json(self) -> dict:
        """The ``diagnosis`` object of the diagnosis JSON."""
        return {
            "probabilities": {name: round(float(p), 6) for name, p in self.probabilities.items()},
            "most_likely_class": self.most_likely_class,
            "group": self.group,
            "confidence": self.confidence,
            "deciding_probabilities": {k: round(float(v), 6) for k, v in self.deciding_probabilities.items()},
            "low_confidence_bands": dict(self.low_confidence_bands),
            "low_confidence_reasons": list(self.reasons),
        }


def compose_diagnosis(results: dict[str, ClassifierResult], low_confidence_bands: dict[str, float]) -> Diagnosis:
    """Compose the four class probabilities from the three classifiers' results.

    Parameters
    ----------
    results
        One :class:`ClassifierResult` per role of :data:`ROLE_CLASSES` (all three are needed:
        the composition weighs every branch of the hierarchy).
    low_confidence_bands
        Per role, the card's band: a deciding probability ``p`` of that model with
        ``|p - 0.5| < band`` makes the confidence low.
    """
    missing = [role for role in ROLE_CLASSES if role not in results]
    if missing:
        raise ValueError(f"missing classifier results: {', '.join(missing)}")
    for role in ROLE_CLASSES:
        band = low_confidence_bands.get(role)
        if band is None or not 0.0 <= band < 0.5:
            raise ValueError(f"low-confidence band of {role} must be in [0, 0.5), got {band}")
    p_tumor = results[TUMOR_VS_DEMYELINATING].probability_of("tumor")
    p_astro = results[ASTROCYTOMA_VS_EPENDYMOMA].probability_of("astrocytoma")
    p_ms = results[MS_VS_NMOSD].probability_of("MS")
    probabilities = {
        "astrocytoma": p_tumor * p_astro,
        "ependymoma": p_tumor * (1.0 - p_astro),
        "MS": (1.0 - p_tumor) * p_ms,
        "NMOSD": (1.0 - p_tumor) * (1.0 - p_ms),
    }
    most_likely = max(CLASSES, key=lambda name: probabilities[name])
    group = "tumor" if p_tumor >= 0.5 else "demyelinating"
    deciding = {P_TUMOR: p_tumor, **({P_ASTROCYTOMA: p_astro} if group == "tumor" else {P_MS: p_ms})}
    reasons = [f"{name} = {value:.3f} is within {low_confidence_bands[DECIDING_ROLE[name]]} of 0.5"
               for name, value in deciding.items()
               if abs(value - 0.5) < low_confidence_bands[DECIDING_ROLE[name]]]
    if GROUP_OF[most_likely] != group:
        reasons.append(f"the most likely class ({most_likely}) is not in the group chosen by "
                       f"{TUMOR_VS_DEMYELINATING} ({group})")
    return Diagnosis(
        probabilities=probabilities,
        most_likely_class=most_likely,
        group=group,
        confidence="low" if reasons else "high",
        deciding_probabilities=deciding,
        low_confidence_bands={role: float(low_confidence_bands[role]) for role in ROLE_CLASSES},
        reasons=tuple(reasons),
    )
