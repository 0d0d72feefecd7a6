"""The diagnosis JSON document: validated against the shipped schema before it is written.

:class:`DiagnosisDocument` is the typed document of one image; its :meth:`~DiagnosisDocument.to_json`
is the object the schema (``diagnosis.schema.json``) validates, key for key, in the schema's order.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from sct_lesion_classify import __version__
from sct_lesion_classify.classify.diagnosis import ClassifierResult, Diagnosis
from sct_lesion_classify.errors import ProcessingError
from sct_lesion_classify.io.atomic import write_json_atomic
from sct_lesion_classify.modelpkg.card import JsonRecord

if TYPE_CHECKING:
    from sct_lesion_classify.lesion.morphometry import LesionMorphometry
    from sct_lesion_classify.modelpkg.package import ModelPackage
    from sct_lesion_classify.trust import TrustAssessment

#: The version this package writes; 2 added the ``trust`` section, 3 each classifier's
#: ``densenet_probability``, ``calibrated_probability``, ``fused_probability``, ``calibrated`` and
#: ``fused`` (``probability`` is the one the decision uses). Documents of the earlier versions
#: (:data:`READABLE_SCHEMA_VERSIONS`) still validate, so outputs of an earlier run are read back
#: (batch resume); what they lack is absent.
SCHEMA_VERSION = "3"
READABLE_SCHEMA_VERSIONS = ("1", "2", "3")
SCHEMA_PATH = Path(__file__).with_name("diagnosis.schema.json")
DISCLAIMER = (
    "Research use only. sct_lesion_classify is not a medical device and must not be used for "
    "diagnosis or treatment decisions."
)
SYNTHETIC_WARNING = (
    "model {name} {version} was trained on synthetic phantoms only (no patient data): its output "
    "shows that the pipeline runs, not a diagnosis"
)


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    # the shipped schema itself is checked against its meta-schema by the tests
    # (test_diagnosis.py), not on every run: 0.05 s of each command's start
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def validation_errors(document: dict) -> list[str]:
    """Every way ``document`` breaks the diagnosis schema, as ``path: message`` lines."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]


def write_diagnosis(path: str | Path, document: dict) -> None:
    """Validate ``document`` against the schema, then write it atomically to ``path``.

    Raises
    ------
    ProcessingError
        If the document breaks the schema (nothing is written) or cannot be written.
    """
    problems = validation_errors(document)
    if problems:
        raise ProcessingError(f"{path}: diagnosis JSON breaks its schema ({problems[0]}); nothing written")
    try:
        write_json_atomic(path, document)
    except OSError as exc:
        raise ProcessingError(f"{path}: cannot write ({exc.strerror or exc})") from exc


@dataclass(frozen=True)
class InputRecord(JsonRecord):
    """The ``input`` object: the T2w image (and the cT1w image, if any).

    ``shape`` is kept as ints and ``voxel_size_mm`` as floats, so the JSON has ``[512, 512, 15]``
    and ``[0.6, 0.6, 3.0]`` whatever numbers it was built from.
    """

    path: str
    sha256: str
    shape: tuple[int, ...]
    voxel_size_mm: tuple[float, ...]
    orientation: str
    t1c_path: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "voxel_size_mm", tuple(float(z) for z in self.voxel_size_mm))


@dataclass(frozen=True)
class MaskRecord(JsonRecord):
    """The ``lesion_mask`` / ``cord_mask`` objects: where a mask came from."""

    path: str | None
    source: str  # "user" or "automatic" ("sct" for a cord from SCT)


@dataclass(frozen=True)
class ModelRecord(JsonRecord):
    """One entry of ``provenance.models``."""

    name: str
    version: str
    sha256: str
    synthetic_training_data: bool

    @classmethod
    def of(cls, package: ModelPackage) -> "ModelRecord":
        """The record of a loaded package."""
        return cls(name=package.name, version=package.version, sha256=package.sha256,
                   synthetic_training_data=bool(package.card.training.synthetic_data))


@dataclass(frozen=True)
class Provenance:
    """The ``provenance`` object: this package, the command line, the date, run times and models."""

    command_line: str
    date: str
    runtime_s: Mapping[str, float]
    models: tuple[ModelRecord, ...]

    def to_json(self) -> dict:
        """The ``provenance`` object (run times rounded to 0.1 ms)."""
        return {
            "package": "sct_lesion_classify",
            "version": __version__,
            "command_line": self.command_line,
            "date": self.date,
            "runtime_s": {stage: round(seconds, 4) for stage, seconds in self.runtime_s.items()},
            "models": [model.to_json() for model in self.models],
        }


@dataclass(frozen=True)
class GradcamRecord(JsonRecord):
    """One entry of the ``gradcam`` object (``-gradcam 1``): a written map and how it is scaled."""

    path: str
    model_name: str
    normalization: str


@dataclass(frozen=True)
class DiagnosisDocument:
    """The diagnosis JSON of one image (SPEC section 3), typed.

    Attributes
    ----------
    classifiers
        Role -> result of each classifier that ran (empty for an empty lesion mask).
    diagnosis
        The composed diagnosis; None for an empty lesion mask.
    gradcam
        Role -> written Grad-CAM map with ``-gradcam 1`` (possibly empty); None without it, and the
        JSON then has no ``gradcam`` key.
    trust
        The trust checks that fired and the level (``sct_lesion_classify.trust``).
    """

    input: InputRecord
    lesion_mask: MaskRecord
    cord_mask: MaskRecord | None
    lesions: LesionMorphometry
    classifiers: Mapping[str, ClassifierResult]
    diagnosis: Diagnosis | None
    warnings: tuple[str, ...]
    provenance: Provenance
    trust: TrustAssessment
    gradcam: Mapping[str, GradcamRecord] | None = None

    def to_json(self) -> dict:
        """The JSON object that :func:`write_diagnosis` validates and writes."""
        document = {
            "schema_version": SCHEMA_VERSION,
            "input": self.input.to_json(),
            "lesion_mask": self.lesion_mask.to_json(),
            "cord_mask": None if self.cord_mask is None else self.cord_mask.to_json(),
            "lesions": self.lesions.to_json(),
            "classifiers": {role: result.to_json() for role, result in self.classifiers.items()},
            "diagnosis": None if self.diagnosis is None else self.diagnosis.to_json(),
            "warnings": list(self.warnings),
            "trust": self.trust.to_json(),
            "provenance": self.provenance.to_json(),
            "disclaimer": DISCLAIMER,
        }
        if self.gradcam is not None:
            document["gradcam"] = {role: entry.to_json() for role, entry in self.gradcam.items()}
        return document

    def write(self, path: str | Path) -> None:
        """Validate against the schema and write atomically (:func:`write_diagnosis`)."""
        write_diagnosis(path, self.to_json())
