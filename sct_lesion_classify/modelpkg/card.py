"""The model card: ``<name>.json`` beside ``<name>.onnx`` in a model package (SPEC section 5).

The card is validated twice: against ``card.schema.json`` (JSON Schema draft 2020-12, every key
required, unknown keys are errors) and by :func:`semantic_problems` (consistency between fields,
for example ``positive_class`` in ``classes``). A card that fails either raises
:class:`~sct_lesion_classify.errors.ModelError` with one line naming the file and the field.

The frozen dataclasses below mirror the JSON keys one to one, in the card's documented order, and
are the only description of the card's structure besides the schema: one generic conversion
(:class:`JsonRecord`) turns any of them into JSON and back, guided by the field annotations
(lists become tuples inside the dataclasses and lists again in JSON; ``float`` fields are floats,
``int`` fields ints). ``ModelCard.from_json(doc).to_json()`` gives back ``doc``. Training builds
the same dataclasses (:class:`InputSpec`, :class:`OutputSpec`, ...) and writes them with the same
:meth:`JsonRecord.to_json`.

:class:`Postprocessing` is both the card's ``postprocessing`` section and the settings that
:func:`sct_lesion_classify.lesion.postprocess.postprocess` applies (command-line flags override
the card's defaults with :func:`dataclasses.replace` or a new instance); :func:`parse_size` reads
its ``remove_small`` sizes.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from sct_lesion_classify.errors import InputError, ModelError

CARD_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("card.schema.json")
SEGMENTATION_TASKS = ("cord_localization", "lesion_segmentation")

#: Field metadata of an optional key: absent from the JSON when the value is None.
OPTIONAL_KEY = {"optional_key": True}


class JsonRecord:
    """JSON conversion of a frozen card dataclass, driven by its fields and their annotations.

    ``to_json`` writes one key per field, in field order (a field marked :data:`OPTIONAL_KEY` is
    left out when None); ``from_json`` builds the dataclass from a document already validated
    against the schema (a missing optional key takes the field's default).
    """

    @classmethod
    def from_json(cls, document: Mapping[str, Any]):
        """The dataclass of a (schema-valid) JSON object."""
        return _record_from_json(cls, document)

    def to_json(self) -> dict[str, Any]:
        """The dataclass as a JSON-ready dict (new lists and dicts; keys in field order)."""
        return _value_to_json(self)


@dataclass(frozen=True)
class Architecture(JsonRecord):
    """``architecture``: network name, parameter count, free-form details (e.g. growth rate)."""

    name: str
    parameters: int
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Channel(JsonRecord):
    """One input channel, in the order the network expects them (``input.channels[i]``)."""

    name: str
    description: str


@dataclass(frozen=True)
class Normalization(JsonRecord):
    """``input.normalization``: ``method`` then optional ``clip`` then optional ``rescale``."""

    method: str  # "zscore" | "zscore_nonzero" | "minmax"
    clip: tuple[float, float] | None
    rescale: tuple[float, float] | None


@dataclass(frozen=True)
class InputSpec(JsonRecord):
    """``input``: the tensor contract of the network (NCHW, sagittal slices)."""

    tensor: str
    layout: str  # "NCHW"
    channels: tuple[Channel, ...]
    slicing: str  # "sagittal": data[i] of the canonical RAS array
    spatial_size: tuple[int, int] | None  # fixed (H, W) = (a-p, s-i), or None for any size
    size_divisible_by: int
    spacing_mm: tuple[float, float] | None  # (a-p, s-i) in-plane spacing; None = resize to spatial_size
    normalization: Normalization
    crop_margins_mm: tuple[float, float, float] | None  # (r-l, a-p, s-i) margins around the cord
    min_lesion_area_mm2: float | None  # classifiers: slices with at least this lesion area
    #: Where a fixed grid (``spatial_size`` with ``spacing_mm``) is centred on each slice: None
    #: (left out of the card) = the field of view; ``"lesion"`` = the centre of the lesion's
    #: bounding box in the (A-P, S-I) plane, the same for every slice of a subject (classifiers).
    centred_on: str | None = field(default=None, metadata=OPTIONAL_KEY)

    @property
    def n_channels(self) -> int:
        """Number of input channels."""
        return len(self.channels)


@dataclass(frozen=True)
class OutputSpec(JsonRecord):
    """``output``: tensor name, activation already applied in the graph, classes.

    ``cam_tensor`` (optional key, classifiers): the name of a second output holding the
    class-activation map of the positive class, ``(N, h, w)`` (``-gradcam 1``); None when the
    package has none (packages exported before this field existed still load).
    """

    tensor: str
    activation: str  # "sigmoid" | "softmax" | "none"
    classes: tuple[str, ...]
    positive_class: str | None
    cam_tensor: str | None = field(default=None, metadata=OPTIONAL_KEY)


#: Units of a ``remove_small`` size: a volume in mm3 or a number of voxels.
SIZE_UNITS = ("mm3", "vox")

_SIZE_PATTERN = re.compile(r"^\s*((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(" + "|".join(SIZE_UNITS)
                           + r")\s*$", re.IGNORECASE)


def parse_size(text: str) -> tuple[float, str]:
    """Parse a ``-remove-small`` size: ``"20mm3"`` -> ``(20.0, "mm3")``, ``"5vox"`` -> ``(5.0, "vox")``.

    Raises
    ------
    InputError
        When ``text`` is not a non-negative number followed by ``mm3`` or ``vox``.
    """
    match = _SIZE_PATTERN.match(str(text))
    if not match:
        raise InputError(
            f"-remove-small: invalid size {text!r}; expected a number followed by mm3 or vox"
            " (e.g. 20mm3 or 5vox)"
        )
    value = float(match.group(1))
    if not math.isfinite(value):
        raise InputError(f"-remove-small: invalid size {text!r}")
    return value, match.group(2).lower()


@dataclass(frozen=True)
class Postprocessing(JsonRecord):
    """``postprocessing`` of a segmentation model: the ``sct_deepseg``-style settings.

    The card holds the model's defaults; the commands override them with their flags
    (``-thr``, ``-fill-holes``, ``-largest``, ``-remove-small``), and
    :func:`sct_lesion_classify.lesion.postprocess.postprocess` applies them.

    Attributes
    ----------
    threshold
        Probability threshold in [0, 1]; 0 keeps the soft map and skips the other steps.
    fill_holes
        Fill holes enclosed in each sagittal slice.
    largest
        Keep only the largest connected component.
    remove_small
        Sizes such as ``"20mm3"`` or ``"5vox"``; components smaller than any are removed.
    cord_margin_mm
        Optional key (lesion models): the lesion output is zero farther than this from the cord
        (mm, Euclidean on the voxel grid), since an intramedullary lesion lies inside the cord.
        A property of the model, not a flag: :class:`~sct_lesion_classify.lesion.segment.LesionSegmenter`
        reads it from its card and applies it before the steps above; None (cards written before
        it existed) keeps only the ``input.crop_margins_mm`` region, and without a cord
        (``-no-crop``) nothing constrains the output.

    Raises
    ------
    InputError
        A threshold outside [0, 1] or a size :func:`parse_size` refuses (``-thr`` / ``-remove-small``).
    ValueError
        A negative or non-finite ``cord_margin_mm`` (never a user's input: the card's schema refuses it).
    """

    threshold: float = 0.5
    fill_holes: bool = True
    largest: bool = False
    remove_small: tuple[str, ...] = ()
    cord_margin_mm: float | None = field(default=None, metadata=OPTIONAL_KEY)

    def __post_init__(self) -> None:
        threshold = float(self.threshold)
        if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
            raise InputError(f"-thr: the threshold must be in [0, 1], got {self.threshold!r}")
        object.__setattr__(self, "threshold", threshold)
        remove_small = (self.remove_small,) if isinstance(self.remove_small, str) else self.remove_small
        remove_small = tuple(str(size) for size in remove_small)
        for size in remove_small:
            parse_size(size)
        object.__setattr__(self, "remove_small", remove_small)
        object.__setattr__(self, "fill_holes", bool(self.fill_holes))
        object.__setattr__(self, "largest", bool(self.largest))
        if self.cord_margin_mm is not None:
            margin = float(self.cord_margin_mm)
            if not (math.isfinite(margin) and margin >= 0.0):
                raise ValueError(f"postprocessing.cord_margin_mm must be finite and >= 0, got {self.cord_margin_mm!r}")
            object.__setattr__(self, "cord_margin_mm", margin)

    @property
    def soft(self) -> bool:
        """Whether the soft probability map is kept (``threshold == 0``)."""
        return self.threshold == 0.0


@dataclass(frozen=True)
class Calibration(JsonRecord):
    """``decision.calibration`` (optional): temperature scaling of the patient probability.

    With ``z = logit(p)`` of the patient probability ``p`` (the mean of the slice probabilities),
    the calibrated probability is ``sigmoid(z / temperature)``
    (:func:`sct_lesion_classify.classify.fusion.calibrate`). Fitted by ``train`` on the
    validation split (:mod:`sct_lesion_classify.train.decision_head`); ``ece_before`` and
    ``ece_after`` are the expected calibration errors there, before and after.
    """

    method: str  # "temperature"
    temperature: float
    fitted_on: str
    ece_before: float
    ece_after: float


@dataclass(frozen=True)
class Decision(JsonRecord):
    """``decision`` of a classifier: slice aggregation, the low-confidence band, and the optional
    calibration (None: the card predates it, or training could not fit it; the model is then
    reported as uncalibrated)."""

    aggregation: str  # "mean"
    low_confidence_band: float  # |p - 0.5| < band -> low confidence
    calibration: Calibration | None = field(default=None, metadata=OPTIONAL_KEY)


@dataclass(frozen=True)
class Fusion(JsonRecord):
    """``fusion`` (optional, classifiers): late fusion of the network with lesion morphometry.

    An L2-regularised logistic regression on ``features`` (in this order; the first is the
    calibrated network logit, the others lesion measures of
    :mod:`sct_lesion_classify.classify.fusion`): a missing (NaN) value takes ``impute``, then
    each value is standardised with ``mean`` and ``sd`` and the fused probability is
    ``sigmoid(coefficients . standardised + intercept)``. Fitted by ``train`` on the validation
    split (``fitted_on``) after the calibration.
    """

    method: str  # "logistic_regression"
    features: tuple[str, ...]
    impute: tuple[float, ...]
    mean: tuple[float, ...]
    sd: tuple[float, ...]
    coefficients: tuple[float, ...]
    intercept: float
    l2: float
    fitted_on: str


@dataclass(frozen=True)
class Subjects(JsonRecord):
    """``training.subjects``: subject counts of the training and validation splits."""

    train: int
    val: int


@dataclass(frozen=True)
class Training(JsonRecord):
    """``training``: provenance of the weights (data, command, commit, device, time)."""

    synthetic_data: bool
    data: str
    command: str
    seed: int
    commit: str
    wall_time_s: float
    device: str
    subjects: Subjects
    framework: str


@dataclass(frozen=True)
class ValueRange(JsonRecord):
    """``{"min": ..., "max": ...}``: the smallest and largest value seen in the training data."""

    min: float
    max: float


@dataclass(frozen=True)
class TrainingDataRanges(JsonRecord):
    """``training_data`` (optional): the acquisitions the weights were trained on.

    Written by ``train`` from its training subjects with
    :func:`sct_lesion_classify.trust.acquisition.training_data_ranges`; the fields are those of
    :class:`sct_lesion_classify.trust.measures.AcquisitionMeasures`, which the trust checks compare
    with the ranges at inference. A card without it has no acquisition checks.
    """

    subjects: int
    in_plane_spacing_mm: ValueRange
    slice_thickness_mm: ValueRange
    thickness_ratio: ValueRange
    fov_ap_mm: ValueRange
    fov_si_mm: ValueRange
    cord_csf_ratio: ValueRange


@dataclass(frozen=True)
class Files(JsonRecord):
    """``files``: the ONNX file name (``<name>.onnx``) and its sha256 (64 lowercase hex)."""

    onnx: str
    sha256: str


@dataclass(frozen=True)
class ModelCard(JsonRecord):
    """A validated model card. Build it with :meth:`from_json` or :meth:`load`."""

    card_version: int
    name: str
    version: str
    task: str
    description: str
    architecture: Architecture
    input: InputSpec
    output: OutputSpec
    postprocessing: Postprocessing | None
    decision: Decision | None
    training: Training
    metrics: Mapping[str, Any] = field(compare=False)
    files: Files
    license: str
    intended_use: str
    training_data: TrainingDataRanges | None = field(default=None, metadata=OPTIONAL_KEY)
    fusion: Fusion | None = field(default=None, metadata=OPTIONAL_KEY)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_json(cls, document: Mapping[str, Any], *, source: str | os.PathLike | None = None
                  ) -> "ModelCard":
        """Validate ``document`` (the parsed JSON) and build the card.

        Parameters
        ----------
        document
            The parsed card.
        source
            The card's path, named in error messages (default ``"model card"``).

        Raises
        ------
        ModelError
            One line, ``<source>: invalid model card: <field>: <problem>``.
        """
        where = str(source) if source is not None else "model card"
        problem = schema_problem(document)
        if problem is None:
            problems = semantic_problems(document)
            problem = problems[0] if problems else None
        if problem is not None:
            raise ModelError(f"{where}: invalid model card: {problem}")
        return _record_from_json(cls, copy.deepcopy(dict(document)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ModelCard":
        """Read, validate and build the card in the JSON file ``path``."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelError(f"{path}: model card not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: cannot read the model card ({exc})") from None
        try:
            document = json.loads(text, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise ModelError(f"{path}: the model card is not valid JSON ({exc})") from None
        return cls.from_json(document, source=path)

    @property
    def positive_index(self) -> int | None:
        """Index of ``output.positive_class`` in ``output.classes`` (None without one)."""
        if self.output.positive_class is None:
            return None
        return self.output.classes.index(self.output.positive_class)


# ---------------------------------------------------------------------- validation
@functools.lru_cache(maxsize=1)
def card_schema() -> dict[str, Any]:
    """The card's JSON Schema (``card.schema.json``), parsed once."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    # the shipped schema is checked against its meta-schema by the tests
    # (test_modelpkg_card.py), not on every run
    return jsonschema.Draft202012Validator(card_schema())


def schema_problem(document: Any) -> str | None:
    """The first schema violation of ``document`` as ``<field>: <problem>``, or None."""
    return describe_schema_error(_validator(), document)


def describe_schema_error(validator: Any, document: Any) -> str | None:
    """One line describing the most relevant error of ``validator`` on ``document`` (or None).

    Unknown keys read ``unknown field 'input.foo'``; missing ones ``missing field 'input.tensor'``;
    others ``field 'task': 'x' is not one of [...]``.
    """
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(document))
    if error is None:
        return None
    path = format_path(error.absolute_path)
    prefix = f"{path}." if path else ""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        extras = sorted(key for key in error.instance if key not in known)
        return "unknown field " + ", ".join(repr(prefix + key) for key in extras)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [key for key in error.validator_value if key not in error.instance]
        return "missing field " + ", ".join(repr(prefix + key) for key in missing)
    message = " ".join(error.message.split())
    if len(message) > 200:
        message = message[:197] + "..."
    return f"field {path or '(top level)'!r}: {message}"


def format_path(parts) -> str:
    """``input.channels[0].name`` from a JSON path (keys and list indices)."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def semantic_problems(document: Mapping[str, Any]) -> list[str]:
    """Consistency problems of a schema-valid card (empty when it is consistent)."""
    problems: list[str] = []
    task, name = document["task"], document["name"]
    inp, out = document["input"], document["output"]
    classes, positive = out["classes"], out["positive_class"]
    if positive is not None and positive not in classes:
        problems.append(f"field 'output.positive_class': {positive!r} is not one of the classes "
                        f"{classes}")
    if out["activation"] == "softmax" and len(classes) < 2:
        problems.append("field 'output.classes': a softmax output needs at least 2 classes")
    if document["files"]["onnx"] != f"{name}.onnx":
        problems.append(f"field 'files.onnx': must be {name + '.onnx'!r} (the package name), "
                        f"got {document['files']['onnx']!r}")
    if inp["spatial_size"] is None and inp["spacing_mm"] is None:
        problems.append("field 'input.spacing_mm': null needs a fixed input.spatial_size to resize to")
    if inp.get("centred_on") is not None and (inp["spatial_size"] is None or inp["spacing_mm"] is None):
        problems.append("field 'input.centred_on': a grid centred on the lesion needs both "
                        "input.spatial_size and input.spacing_mm")
    if inp["spatial_size"] is not None:
        divisor = inp["size_divisible_by"]
        if any(size % divisor for size in inp["spatial_size"]):
            problems.append(f"field 'input.spatial_size': {inp['spatial_size']} is not divisible "
                            f"by input.size_divisible_by ({divisor})")
    for key in ("clip", "rescale"):
        bounds = inp["normalization"][key]
        if bounds is not None and not bounds[0] < bounds[1]:
            problems.append(f"field 'input.normalization.{key}': lower bound must be below the "
                            f"upper one, got {bounds}")
    cam = out.get("cam_tensor")
    if cam is not None:
        if task != "classification":
            problems.append(f"field 'output.cam_tensor': only classifiers have a CAM output, "
                            f"the task is {task!r}")
        if cam == out["tensor"]:
            problems.append("field 'output.cam_tensor': must differ from output.tensor")
    if task in SEGMENTATION_TASKS:
        if document["postprocessing"] is None:
            problems.append(f"field 'postprocessing': required (not null) for task {task!r}")
        if document["decision"] is not None:
            problems.append(f"field 'decision': must be null for task {task!r}")
    if task == "classification":
        if document["decision"] is None:
            problems.append("field 'decision': required (not null) for task 'classification'")
        if positive is None:
            problems.append("field 'output.positive_class': required (not null) for task "
                            "'classification'")
        if document["postprocessing"] is not None:
            problems.append("field 'postprocessing': must be null for task 'classification'")
    fusion = document.get("fusion")
    if fusion is not None:
        if task != "classification":
            problems.append(f"field 'fusion': only classifiers have a fusion head, the task is {task!r}")
        n_features = len(fusion["features"])
        for key in ("impute", "mean", "sd", "coefficients"):
            if len(fusion[key]) != n_features:
                problems.append(f"field 'fusion.{key}': {len(fusion[key])} values for {n_features} features")
    return problems


# ---------------------------------------------------------------------- JSON conversion
@functools.lru_cache(maxsize=None)
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _record_from_json(cls: type, document: Mapping[str, Any]) -> Any:
    """Build dataclass ``cls`` from a JSON object (keys = field names; see :class:`JsonRecord`)."""
    types_ = _field_types(cls)
    values = {item.name: _value_from_json(types_[item.name], document[item.name])
              for item in dataclasses.fields(cls) if item.name in document}
    return cls(**values)


def _value_from_json(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):  # "X | None": the schema allowed null already
        (kind,) = [argument for argument in arguments if argument is not type(None)]
        return _value_from_json(kind, value)
    if dataclasses.is_dataclass(kind):
        return _record_from_json(kind, value)
    if origin is tuple:
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return tuple(_value_from_json(arguments[0], item) for item in value)
        return tuple(_value_from_json(item_kind, item) for item_kind, item in zip(arguments, value))
    if kind is float or kind is int:
        return kind(value)
    return value  # str, bool, and free-form mappings (metrics, architecture details)


def _value_to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {item.name: _value_to_json(getattr(value, item.name))
                for item in dataclasses.fields(value)
                if not (item.metadata.get("optional_key") and getattr(value, item.name) is None)}
    if isinstance(value, (tuple, list)):
        return [_value_to_json(item) for item in value]
    if isinstance(value, Mapping):
        return copy.deepcopy(dict(value))
    return value


# ---------------------------------------------------------------------- helpers


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in JSON")
