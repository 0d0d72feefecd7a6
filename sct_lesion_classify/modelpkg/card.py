"""The model card: ``<name>.json`` beside ``<name>.onnx`` in a model package (SPEC section 5).

The card is validated twice: against ``card.schema.json`` (JSON Schema draft 2020-12, every key
required, unknown keys are errors) and by :func:`semantic_problems` (consistency between fields,
for example ``positive_class`` in ``classes``). A card that fails either raises
:class:`~sct_lesion_classify.errors.ModelError` with one line naming the file and the field.

The dataclasses below mirror the JSON keys one to one; ``ModelCard.from_json(doc).to_json()``
gives back ``doc`` (lists become tuples inside the dataclasses and lists again in JSON).
"""

from __future__ import annotations

import copy
import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from sct_lesion_classify.errors import ModelError

CARD_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("card.schema.json")
TASKS = ("cord_localization", "lesion_segmentation", "classification")
SEGMENTATION_TASKS = ("cord_localization", "lesion_segmentation")


@dataclass(frozen=True)
class Architecture:
    """``architecture``: network name, parameter count, free-form details (e.g. growth rate)."""

    name: str
    parameters: int
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Channel:
    """One input channel, in the order the network expects them (``input.channels[i]``)."""

    name: str
    description: str


@dataclass(frozen=True)
class Normalization:
    """``input.normalization``: ``method`` then optional ``clip`` then optional ``rescale``."""

    method: str  # "zscore" | "zscore_nonzero" | "minmax"
    clip: tuple[float, float] | None
    rescale: tuple[float, float] | None


@dataclass(frozen=True)
class InputSpec:
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

    @property
    def n_channels(self) -> int:
        """Number of input channels."""
        return len(self.channels)

    @classmethod
    def from_json(cls, inp: Mapping[str, Any]) -> "InputSpec":
        """The ``input`` section of a card document (already validated against the schema)."""
        norm = inp["normalization"]
        return cls(
            tensor=inp["tensor"],
            layout=inp["layout"],
            channels=tuple(Channel(**channel) for channel in inp["channels"]),
            slicing=inp["slicing"],
            spatial_size=_tuple(inp["spatial_size"], int),
            size_divisible_by=inp["size_divisible_by"],
            spacing_mm=_tuple(inp["spacing_mm"], float),
            normalization=Normalization(method=norm["method"], clip=_tuple(norm["clip"], float),
                                        rescale=_tuple(norm["rescale"], float)),
            crop_margins_mm=_tuple(inp["crop_margins_mm"], float),
            min_lesion_area_mm2=(None if inp["min_lesion_area_mm2"] is None
                                 else float(inp["min_lesion_area_mm2"])),
        )


@dataclass(frozen=True)
class OutputSpec:
    """``output``: tensor name, activation already applied in the graph, classes.

    ``cam_tensor`` (optional key, classifiers): the name of a second output holding the
    class-activation map of the positive class, ``(N, h, w)`` (``-gradcam 1``); None when the
    package has none (packages exported before this field existed still load).
    """

    tensor: str
    activation: str  # "sigmoid" | "softmax" | "none"
    classes: tuple[str, ...]
    positive_class: str | None
    cam_tensor: str | None = None


@dataclass(frozen=True)
class Postprocessing:
    """``postprocessing`` defaults of a segmentation model (``sct_deepseg`` options)."""

    threshold: float
    fill_holes: bool
    largest: bool
    remove_small: tuple[str, ...]  # e.g. ("20mm3",) or ("5vox",)


@dataclass(frozen=True)
class Decision:
    """``decision`` of a classifier: slice aggregation and the low-confidence band."""

    aggregation: str  # "mean"
    low_confidence_band: float  # |p - 0.5| < band -> low confidence


@dataclass(frozen=True)
class Subjects:
    """``training.subjects``: subject counts of the training and validation splits."""

    train: int
    val: int


@dataclass(frozen=True)
class Training:
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
class Files:
    """``files``: the ONNX file name (``<name>.onnx``) and its sha256 (64 lowercase hex)."""

    onnx: str
    sha256: str


@dataclass(frozen=True)
class ModelCard:
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
        return cls._build(copy.deepcopy(dict(document)))

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

    @classmethod
    def _build(cls, doc: dict[str, Any]) -> "ModelCard":
        inp, out = doc["input"], doc["output"]
        post, decision, training = doc["postprocessing"], doc["decision"], doc["training"]
        return cls(
            card_version=doc["card_version"],
            name=doc["name"],
            version=doc["version"],
            task=doc["task"],
            description=doc["description"],
            architecture=Architecture(**doc["architecture"]),
            input=InputSpec.from_json(inp),
            output=OutputSpec(tensor=out["tensor"], activation=out["activation"],
                              classes=tuple(out["classes"]), positive_class=out["positive_class"],
                              cam_tensor=out.get("cam_tensor")),
            postprocessing=None if post is None else Postprocessing(
                threshold=float(post["threshold"]), fill_holes=post["fill_holes"],
                largest=post["largest"], remove_small=tuple(post["remove_small"])),
            decision=None if decision is None else Decision(
                aggregation=decision["aggregation"],
                low_confidence_band=float(decision["low_confidence_band"])),
            training=Training(**{**training, "wall_time_s": float(training["wall_time_s"]),
                                 "subjects": Subjects(**training["subjects"])}),
            metrics=doc["metrics"],
            files=Files(**doc["files"]),
            license=doc["license"],
            intended_use=doc["intended_use"],
        )

    # ------------------------------------------------------------------ export
    def to_json(self) -> dict[str, Any]:
        """The card as a JSON-ready dict (keys in the card's documented order)."""
        inp, out = self.input, self.output
        return {
            "card_version": self.card_version,
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "description": self.description,
            "architecture": {"name": self.architecture.name,
                             "parameters": self.architecture.parameters,
                             "details": copy.deepcopy(dict(self.architecture.details))},
            "input": {
                "tensor": inp.tensor,
                "layout": inp.layout,
                "channels": [{"name": c.name, "description": c.description} for c in inp.channels],
                "slicing": inp.slicing,
                "spatial_size": _list(inp.spatial_size),
                "size_divisible_by": inp.size_divisible_by,
                "spacing_mm": _list(inp.spacing_mm),
                "normalization": {"method": inp.normalization.method,
                                  "clip": _list(inp.normalization.clip),
                                  "rescale": _list(inp.normalization.rescale)},
                "crop_margins_mm": _list(inp.crop_margins_mm),
                "min_lesion_area_mm2": inp.min_lesion_area_mm2,
            },
            "output": {"tensor": out.tensor, "activation": out.activation,
                       "classes": list(out.classes), "positive_class": out.positive_class,
                       **({} if out.cam_tensor is None else {"cam_tensor": out.cam_tensor})},
            "postprocessing": None if self.postprocessing is None else {
                "threshold": self.postprocessing.threshold,
                "fill_holes": self.postprocessing.fill_holes,
                "largest": self.postprocessing.largest,
                "remove_small": list(self.postprocessing.remove_small)},
            "decision": None if self.decision is None else {
                "aggregation": self.decision.aggregation,
                "low_confidence_band": self.decision.low_confidence_band},
            "training": {
                "synthetic_data": self.training.synthetic_data,
                "data": self.training.data,
                "command": self.training.command,
                "seed": self.training.seed,
                "commit": self.training.commit,
                "wall_time_s": self.training.wall_time_s,
                "device": self.training.device,
                "subjects": {"train": self.training.subjects.train,
                             "val": self.training.subjects.val},
                "framework": self.training.framework,
            },
            "metrics": copy.deepcopy(dict(self.metrics)),
            "files": {"onnx": self.files.onnx, "sha256": self.files.sha256},
            "license": self.license,
            "intended_use": self.intended_use,
        }

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

    schema = card_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


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
    return problems


# ---------------------------------------------------------------------- helpers
def _tuple(values: list | None, kind: type) -> tuple | None:
    return None if values is None else tuple(kind(value) for value in values)


def _list(values: tuple | None) -> list | None:
    return None if values is None else list(values)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in JSON")
